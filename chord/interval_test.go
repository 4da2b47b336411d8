package chord

import (
	"math/big"
	"testing"
)

func idFromHex(t testing.TB, s string) ID {
	t.Helper()
	for len(s) < 2*IDBytes {
		s = "0" + s
	}
	id, err := ParseID(s)
	if err != nil {
		t.Fatalf("ParseID(%q) = %v", s, err)
	}
	return id
}

func maxID() ID {
	var m ID
	for i := range m {
		m[i] = 0xff
	}
	return m
}

func TestIntervals(t *testing.T) {
	zero := ID{}
	top := maxID()
	one := ID{}
	one[IDBytes-1] = 1
	mid := ID{0x80}
	tests := []struct {
		name           string
		x, a, b        ID
		open, halfOpen bool
	}{
		{"inside", one, zero, mid, true, true},
		{"at right end", mid, zero, mid, false, true},
		{"at left end", zero, zero, mid, false, false},
		{"outside", top, zero, mid, false, false},
		{"wrap inside high", top, mid, one, true, true},
		{"wrap inside zero", zero, mid, one, true, true},
		{"wrap at right end", one, mid, one, false, true},
		{"wrap at left end", mid, mid, one, false, false},
		{"wrap outside", ID{0x40}, mid, one, false, false},
		{"equal endpoints, x elsewhere", one, mid, mid, true, true},
		{"equal endpoints, x at them", mid, mid, mid, false, true},
		{"equal endpoints at zero", top, zero, zero, true, true},
		{"top to zero empty open", one, top, zero, false, false},
		{"top to zero right end", zero, top, zero, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.x.InOpen(tc.a, tc.b); got != tc.open {
				t.Errorf("%s.InOpen(%s, %s) = %v; want %v", tc.x.Short(), tc.a.Short(), tc.b.Short(), got, tc.open)
			}
			if got := tc.x.InHalfOpen(tc.a, tc.b); got != tc.halfOpen {
				t.Errorf("%s.InHalfOpen(%s, %s) = %v; want %v", tc.x.Short(), tc.a.Short(), tc.b.Short(), got, tc.halfOpen)
			}
		})
	}
}

func TestAddPow2(t *testing.T) {
	tests := []struct {
		id   string
		k    int
		want string
	}{
		{"0", 0, "1"},
		{"ff", 0, "100"},
		{"0", 255, "8" + zeros(63)},
		{"8" + zeros(63), 255, "0"},
		{"f" + repeat("f", 63), 0, "0"},
		{"f" + repeat("f", 63), 8, "ff"},
	}
	for _, tc := range tests {
		id := idFromHex(t, tc.id)
		want := idFromHex(t, tc.want)
		if got := id.AddPow2(tc.k); got != want {
			t.Errorf("AddPow2(%s, %d) = %s; want %s", tc.id, tc.k, got, want)
		}
	}
}

func zeros(n int) string { return repeat("0", n) }

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

var circle = new(big.Int).Lsh(big.NewInt(1), 256)

func toBig(id ID) *big.Int { return new(big.Int).SetBytes(id[:]) }

func fromBig(b *big.Int) ID {
	var id ID
	m := new(big.Int).Mod(b, circle)
	m.FillBytes(id[:])
	return id
}

// refInOpen is the reference: x in (a, b) iff 0 < (x-a) mod 2^256 < (b-a) mod 2^256,
// with (b-a) = 0 meaning the whole circle.
func refDistances(x, a, b ID) (dx, db *big.Int) {
	dx = new(big.Int).Mod(new(big.Int).Sub(toBig(x), toBig(a)), circle)
	db = new(big.Int).Mod(new(big.Int).Sub(toBig(b), toBig(a)), circle)
	if db.Sign() == 0 {
		db = new(big.Int).Set(circle)
	}
	return dx, db
}

func FuzzIntervals(f *testing.F) {
	f.Add([]byte{0}, []byte{0}, []byte{0}, uint8(0))
	f.Add([]byte{0xff}, []byte{0x80}, []byte{0x01}, uint8(255))
	f.Add([]byte{0x80}, []byte{0x80}, []byte{0x80}, uint8(7))
	f.Fuzz(func(t *testing.T, xb, ab, bb []byte, k uint8) {
		var x, a, b ID
		copy(x[:], xb)
		copy(a[:], ab)
		copy(b[:], bb)
		dx, db := refDistances(x, a, b)
		wantOpen := dx.Sign() > 0 && dx.Cmp(db) < 0
		wantHalf := dx.Sign() > 0 && dx.Cmp(db) <= 0
		if a == b {
			wantHalf = true // (a, a] is the whole circle
		}
		if got := x.InOpen(a, b); got != wantOpen {
			t.Errorf("%s.InOpen(%s, %s) = %v; want %v", x, a, b, got, wantOpen)
		}
		if got := x.InHalfOpen(a, b); got != wantHalf {
			t.Errorf("%s.InHalfOpen(%s, %s) = %v; want %v", x, a, b, got, wantHalf)
		}
		wantAdd := fromBig(new(big.Int).Add(toBig(x), new(big.Int).Lsh(big.NewInt(1), uint(k))))
		if got := x.AddPow2(int(k)); got != wantAdd {
			t.Errorf("AddPow2(%s, %d) = %s; want %s", x, k, got, wantAdd)
		}
		wantDist := fromBig(new(big.Int).Sub(toBig(b), toBig(a)))
		if got := a.Distance(b); got != wantDist {
			t.Errorf("Distance(%s, %s) = %s; want %s", a, b, got, wantDist)
		}
		if got, want := a.Cmp(b), toBig(a).Cmp(toBig(b)); got != want {
			t.Errorf("Cmp(%s, %s) = %d; want %d", a, b, got, want)
		}
	})
}
