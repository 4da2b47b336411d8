package chord

import "bytes"

// Cmp compares two identifiers as unsigned 256-bit integers: -1 if id < other,
// 0 if equal, +1 if id > other.
func (id ID) Cmp(other ID) int { return bytes.Compare(id[:], other[:]) }

// InOpen reports whether id lies in the open arc (a, b), walking clockwise
// from a to b. With a == b the arc is the whole circle except a.
func (id ID) InOpen(a, b ID) bool {
	switch c := a.Cmp(b); {
	case c < 0:
		return a.Cmp(id) < 0 && id.Cmp(b) < 0
	case c > 0:
		return a.Cmp(id) < 0 || id.Cmp(b) < 0
	default:
		return id != a
	}
}

// InHalfOpen reports whether id lies in the arc (a, b], walking clockwise from
// a to b. With a == b the arc is the whole circle. This is the arc a node b
// with predecessor a is responsible for.
func (id ID) InHalfOpen(a, b ID) bool {
	switch c := a.Cmp(b); {
	case c < 0:
		return a.Cmp(id) < 0 && id.Cmp(b) <= 0
	case c > 0:
		return a.Cmp(id) < 0 || id.Cmp(b) <= 0
	default:
		return true
	}
}

// AddPow2 returns id + 2^k modulo 2^256, the start of finger k (0 <= k < 256).
// It panics if k is out of range.
func (id ID) AddPow2(k int) ID {
	if k < 0 || k >= 8*IDBytes {
		panic("chord: AddPow2 exponent out of range")
	}
	out := id
	i := IDBytes - 1 - k/8
	carry := uint16(1) << (k % 8)
	for ; i >= 0 && carry != 0; i-- {
		s := uint16(out[i]) + carry
		out[i] = byte(s)
		carry = s >> 8
	}
	return out
}

// Distance returns the clockwise distance from id to other, (other - id)
// modulo 2^256.
func (id ID) Distance(other ID) ID {
	var out ID
	borrow := 0
	for i := IDBytes - 1; i >= 0; i-- {
		d := int(other[i]) - int(id[i]) - borrow
		borrow = 0
		if d < 0 {
			d += 256
			borrow = 1
		}
		out[i] = byte(d)
	}
	return out
}
