package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"
	"time"
)

// testEpoch is the fake "now" of tests that inject time.
var testEpoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is a settable time source for Config.Now.
type clock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newClock() *clock { return &clock{t: testEpoch} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// openTest opens a store in dir (a new temp dir if empty) and registers a
// cleanup that checks consistency (unless the test closed it) and closes it.
func openTest(t testing.TB, dir string, mod func(*Config)) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	cfg := DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() {
		s.mu.RLock()
		closed := s.closed
		s.mu.RUnlock()
		if !s.cfg.ReadOnly && !closed {
			mustCheck(t, s)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// mustCheck fails the test unless the database passes bbolt's check and the
// records/expiry-index invariant.
func mustCheck(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// testKey returns a deterministic key for a name.
func testKey(name string) [32]byte { return sha256.Sum256([]byte("key/" + name)) }

// rec returns a valid record for name with the given version clock, live for
// an hour after testEpoch.
func rec(name string, clock uint64) Record {
	return Record{
		Key:         testKey(name),
		Value:       []byte(fmt.Sprintf("value of %s at %d", name, clock)),
		Expiry:      testEpoch.Add(time.Hour),
		Version:     Version{Clock: clock, Node: 7},
		Primary:     true,
		Replication: 3,
	}
}

func mustPut(t testing.TB, s *Store, r Record) bool {
	t.Helper()
	stored, err := s.Put(context.Background(), r)
	if err != nil {
		t.Fatalf("Put(%x): %v", r.Key[:4], err)
	}
	return stored
}

// sameRecord reports whether two records are equal (times compared with
// Equal).
func sameRecord(a, b Record) bool {
	return a.Key == b.Key && string(a.Value) == string(b.Value) && a.Expiry.Equal(b.Expiry) &&
		a.Version == b.Version && a.Primary == b.Primary && a.Replication == b.Replication
}
