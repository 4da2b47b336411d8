package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

func pos(b ...byte) Position {
	var p Position
	copy(p[:], b)
	return p
}

func TestInArc(t *testing.T) {
	tests := []struct {
		p, from, to Position
		want        bool
	}{
		{pos(5), pos(1), pos(9), true},
		{pos(1), pos(1), pos(9), false}, // from is excluded
		{pos(9), pos(1), pos(9), true},  // to is included
		{pos(10), pos(1), pos(9), false},
		{pos(0xf0), pos(0xe0), pos(0x10), true}, // wraps past zero
		{pos(0x05), pos(0xe0), pos(0x10), true},
		{Position{}, pos(0xe0), pos(0x10), true},
		{maxPosition, pos(0xe0), pos(0x10), true},
		{pos(0x50), pos(0xe0), pos(0x10), false},
		{pos(0xe0), pos(0xe0), pos(0x10), false},
		{pos(0x42), pos(0x42), pos(0x42), true}, // equal endpoints: the whole circle
		{pos(0x01), pos(0x42), pos(0x42), true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%x_%x_%x", tt.p[0], tt.from[0], tt.to[0]), func(t *testing.T) {
			if got := InArc(tt.p, tt.from, tt.to); got != tt.want {
				t.Errorf("InArc(%x, %x, %x) = %v; want %v", tt.p[:1], tt.from[:1], tt.to[:1], got, tt.want)
			}
		})
	}
}

// modelRange is the expected order of positions of a Range over the arc.
func modelRange(all []Position, from, to Position) []Position {
	var in []Position
	for _, p := range all {
		if InArc(p, from, to) {
			in = append(in, p)
		}
	}
	rank := func(p Position) int {
		if bytes.Compare(p[:], from[:]) > 0 {
			return 0
		}
		return 1
	}
	slices.SortFunc(in, func(a, b Position) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return bytes.Compare(a[:], b[:])
	})
	return in
}

func TestRange(t *testing.T) {
	c := newClock()
	s := openTest(t, "", withClock(c))
	var all []Position
	for i := range 600 { // more than one read chunk
		r := rec(fmt.Sprint(i), 1)
		mustPut(t, s, r)
		all = append(all, r.Position())
	}
	sorted := slices.Clone(all)
	slices.SortFunc(sorted, func(a, b Position) int { return bytes.Compare(a[:], b[:]) })
	lo, mid, hi := sorted[10], sorted[300], sorted[590]
	tests := []struct {
		name     string
		from, to Position
	}{
		{"whole circle from zero", Position{}, Position{}},
		{"whole circle from a record", mid, mid},
		{"whole circle from max", maxPosition, maxPosition},
		{"plain arc", lo, hi},
		{"plain arc between records", pos(0x20), pos(0x90)},
		{"wraps around zero", hi, lo},
		{"wraps from max", maxPosition, mid},
		{"to max", mid, maxPosition},
		{"from zero", Position{}, mid},
		{"empty arc", sorted[5], inc(sorted[5])},
		{"single record", sorted[4], sorted[5]},
	}
	for _, tt := range tests {
		want := modelRange(all, tt.from, tt.to)
		for _, limit := range []int{0, 1, 7, 256, 1000} {
			t.Run(fmt.Sprintf("%s/limit=%d", tt.name, limit), func(t *testing.T) {
				var got []Position
				var after *Position
				for pages := 0; ; pages++ {
					if pages > len(all)+1 {
						t.Fatalf("paging does not end")
					}
					n := 0
					next, err := s.Range(tt.from, tt.to, after, limit, func(r Record) error {
						got = append(got, r.Position())
						n++
						return nil
					})
					if err != nil {
						t.Fatalf("Range: %v", err)
					}
					if limit > 0 && n > limit {
						t.Fatalf("Range returned %d records; limit %d", n, limit)
					}
					if next == nil {
						break
					}
					if n != limit {
						t.Fatalf("Range returned %d < limit %d records with a next position", n, limit)
					}
					after = next
				}
				if !slices.Equal(got, want) {
					t.Errorf("Range(%x, %x) = %d records; want %d (first differing order)", tt.from[:2], tt.to[:2], len(got), len(want))
				}
			})
		}
	}
}

// inc returns p+1 (mod 2^256).
func inc(p Position) Position {
	for i := len(p) - 1; i >= 0; i-- {
		p[i]++
		if p[i] != 0 {
			break
		}
	}
	return p
}

func TestRangeSkipsExpiredAndErrors(t *testing.T) {
	c := newClock()
	s := openTest(t, "", withClock(c))
	short := rec("short", 1)
	short.Expiry = testEpoch.Add(time.Minute)
	mustPut(t, s, short)
	mustPut(t, s, rec("long", 1))
	c.Set(testEpoch.Add(time.Minute))
	var got []string
	if _, err := s.Range(Position{}, Position{}, nil, 0, func(r Record) error {
		got = append(got, string(r.Value))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{string(rec("long", 1).Value)}; !slices.Equal(got, want) {
		t.Errorf("Range after expiry = %q; want %q", got, want)
	}
	stop := errors.New("stop")
	if _, err := s.Range(Position{}, Position{}, nil, 0, func(Record) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Range with failing fn = %v; want %v", err, stop)
	}
	outside := pos(0x80)
	if _, err := s.Range(pos(0x10), pos(0x20), &outside, 0, func(Record) error { return nil }); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Range resuming outside the arc = %v; want ErrInvalidArgument", err)
	}
}
