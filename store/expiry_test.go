package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestExpiry(t *testing.T) {
	c := newClock()
	s := openTest(t, "", withClock(c))
	ctx := context.Background()
	var keys [][32]byte
	for i := range 50 {
		r := rec(fmt.Sprint(i), 1)
		r.Expiry = testEpoch.Add(time.Duration(i+1) * time.Second)
		mustPut(t, s, r)
		keys = append(keys, r.Key)
	}
	// Overwrite key 0 with a later expiry: its old index entry must go.
	r0 := rec("0", 2)
	r0.Expiry = testEpoch.Add(time.Hour)
	mustPut(t, s, r0)
	mustCheck(t, s)

	tests := []struct {
		at        time.Duration
		maxPerTx  int
		wantSwept int
		wantLive  int
	}{
		{0, 10, 0, 50},
		{10 * time.Second, 3, 9, 41}, // keys 1..9 expire (key 0 was extended)
		{10 * time.Second, 3, 0, 41},
		{30*time.Second + 1, 0, 20, 21},
		{time.Hour, 7, 21, 0}, // key 0 expires exactly now
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.at, "/", tt.maxPerTx), func(t *testing.T) {
			now := testEpoch.Add(tt.at)
			c.Set(now)
			// Before sweeping, expired records are already invisible.
			live := 0
			for _, k := range keys {
				r, err := s.Get(k)
				switch {
				case err == nil:
					if r.Expired(now) {
						t.Errorf("Get returned a record expired at %s", r.Expiry)
					}
					live++
				case !errors.Is(err, ErrNotFound):
					t.Fatalf("Get: %v", err)
				}
			}
			if live != tt.wantLive {
				t.Errorf("live records at +%s = %d; want %d", tt.at, live, tt.wantLive)
			}
			n, err := s.Sweep(ctx, now, tt.maxPerTx)
			if err != nil || n != tt.wantSwept {
				t.Errorf("Sweep(+%s, %d) = %d, %v; want %d", tt.at, tt.maxPerTx, n, err, tt.wantSwept)
			}
			stored := 0
			if err := s.ForEach(func(e Entry) error {
				if e.Expired {
					t.Errorf("record %x still stored after sweep", e.Position[:4])
				}
				stored++
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if stored != tt.wantLive {
				t.Errorf("stored after sweep = %d; want %d", stored, tt.wantLive)
			}
			mustCheck(t, s)
		})
	}
}

func TestSweepCancelled(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	mustPut(t, s, rec("a", 1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := s.Sweep(ctx, testEpoch.Add(2*time.Hour), 1); !errors.Is(err, context.Canceled) || n != 0 {
		t.Errorf("Sweep(cancelled) = %d, %v; want 0, context.Canceled", n, err)
	}
}
