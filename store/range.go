package store

import (
	"bytes"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// segment is a closed-open description of a linear piece of the ring: keys k
// with lo < k (or lo <= k when incl) and k <= hi.
type segment struct {
	lo   Position
	incl bool // lo itself is included
	hi   Position
}

var maxPosition = Position{
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
}

// InArc reports whether p lies in the arc (from, to] of the circle; from ==
// to is the whole circle.
func InArc(p, from, to Position) bool {
	c := bytes.Compare(from[:], to[:])
	switch {
	case c < 0:
		return bytes.Compare(p[:], from[:]) > 0 && bytes.Compare(p[:], to[:]) <= 0
	case c > 0:
		return bytes.Compare(p[:], from[:]) > 0 || bytes.Compare(p[:], to[:]) <= 0
	}
	return true
}

// arcSegments returns the linear pieces, in ring order, of the part of the
// arc (from, to] that comes after start, where start is from or a position
// in the arc other than to.
func arcSegments(from, to, start Position) []segment {
	if bytes.Compare(from[:], to[:]) < 0 {
		return []segment{{lo: start, hi: to}}
	}
	// Wrapping, or the whole circle: (from, max] then [0, to].
	if start != from && bytes.Compare(start[:], to[:]) <= 0 {
		return []segment{{lo: start, hi: to}} // start is in the second piece
	}
	var segs []segment
	if start != maxPosition {
		segs = append(segs, segment{lo: start, hi: maxPosition})
	}
	return append(segs, segment{lo: Position{}, incl: true, hi: to})
}

// Range calls fn, in ring order, for the live records whose position lies in
// the arc (from, to] (wrapping past zero when from > to; from == to is the
// whole circle), starting after position *after (nil: from the start of the
// arc), at most limit of them (0: no limit). It returns the position to pass
// as after to continue, or nil when the arc is done. Expired records and
// records failing their HMAC (counted) are skipped. fn runs outside any
// database transaction, and a page is not one snapshot: records are read in
// chunks. An error from fn stops the walk and is returned.
func (s *Store) Range(from, to Position, after *Position, limit int, fn func(Record) error) (*Position, error) {
	if s.secret == nil {
		return nil, ErrNoSecret
	}
	if limit < 0 {
		return nil, fmt.Errorf("%w: negative limit %d", ErrInvalidArgument, limit)
	}
	start := from
	if after != nil {
		if !InArc(*after, from, to) {
			return nil, fmt.Errorf("%w: resume position %x not in arc (%x, %x]", ErrInvalidArgument, *after, from, to)
		}
		start = *after
	}
	if start == to && after != nil {
		return nil, nil
	}
	segs := arcSegments(from, to, start)
	returned := 0
	for len(segs) > 0 {
		want := readChunk
		if limit > 0 {
			want = min(want, limit-returned)
		}
		raw, err := s.readSegments(segs, want)
		if err != nil {
			return nil, err
		}
		now := s.now()
		for _, kv := range raw {
			r, err := openRecord(s.key, kv.pos, kv.val)
			if err != nil {
				s.countTampered(kv.pos, err)
			} else if !r.Expired(now) {
				if err := fn(r); err != nil {
					return nil, err
				}
				returned++
			}
			segs = advance(segs, kv.pos)
			if limit > 0 && returned == limit {
				if len(segs) == 0 {
					return nil, nil
				}
				more, err := s.readSegments(segs, 1)
				if err != nil || len(more) == 0 {
					return nil, err
				}
				next := kv.pos
				return &next, nil
			}
		}
		if len(raw) < want {
			return nil, nil
		}
	}
	return nil, nil
}

// advance drops what segs covers up to and including p, a position read
// from segs in order: segments before the one holding p are exhausted.
func advance(segs []segment, p Position) []segment {
	for len(segs) > 0 {
		sg := segs[0]
		c := bytes.Compare(p[:], sg.lo[:])
		if (c < 0 || (c == 0 && !sg.incl)) || bytes.Compare(p[:], sg.hi[:]) > 0 {
			segs = segs[1:]
			continue
		}
		if p == sg.hi {
			return segs[1:]
		}
		segs[0] = segment{lo: p, hi: sg.hi}
		return segs
	}
	return segs
}

type rawRecord struct {
	pos Position
	val []byte
}

// readSegments copies out up to n stored records lying in segs, in order.
func (s *Store) readSegments(segs []segment, n int) ([]rawRecord, error) {
	var out []rawRecord
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		for _, sg := range segs {
			k, v := c.Seek(sg.lo[:])
			if k != nil && !sg.incl && bytes.Equal(k, sg.lo[:]) {
				k, v = c.Next()
			}
			for ; k != nil && len(out) < n && bytes.Compare(k, sg.hi[:]) <= 0; k, v = c.Next() {
				if len(k) != len(Position{}) {
					continue
				}
				out = append(out, rawRecord{pos: Position(k), val: bytes.Clone(v)})
			}
			if len(out) >= n {
				break
			}
		}
		return nil
	})
	return out, err
}

// Entry is one stored record as ForEach sees it, whatever its state.
type Entry struct {
	// Record is the decoded record; zero when the bytes do not decode.
	Record Record
	// Position is the record's key in the database.
	Position Position
	// Expired is set when the record is expired (not yet swept).
	Expired bool
	// Verified is set when its HMAC was checked (the store has the secret).
	Verified bool
	// Tampered is set when it failed to decode or (if Verified) its HMAC.
	Tampered bool
	// Err says why it is tampered.
	Err error
	// Size is the stored size in bytes.
	Size int
}

// ForEach calls fn for every stored record in position order, including
// expired and tampered ones (for dumps and audits). Tampered records are
// not counted in the metrics. fn runs outside any database transaction.
func (s *Store) ForEach(fn func(Entry) error) error {
	segs := []segment{{lo: Position{}, incl: true, hi: maxPosition}}
	for len(segs) > 0 {
		raw, err := s.readSegments(segs, readChunk)
		if err != nil {
			return err
		}
		now := s.now()
		for _, kv := range raw {
			e := Entry{Position: kv.pos, Size: len(kv.val), Verified: s.secret != nil}
			if e.Verified {
				e.Record, e.Err = openRecord(s.key, kv.pos, kv.val)
			} else if e.Record, e.Err = parseRecord(kv.val); e.Err != nil {
				e.Err = fmt.Errorf("%w: %w", ErrTampered, e.Err)
			}
			e.Tampered = e.Err != nil
			if e.Tampered {
				// Show what still decodes, for the operator.
				e.Record, _ = parseRecord(kv.val)
			}
			e.Expired = !e.Record.Expiry.IsZero() && e.Record.Expired(now)
			if err := fn(e); err != nil {
				return err
			}
			segs = advance(segs, kv.pos)
		}
		if len(raw) < readChunk {
			return nil
		}
	}
	return nil
}
