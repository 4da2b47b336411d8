package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestPutCancelled(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if stored, err := s.Put(ctx, rec("c", 1)); stored || !errors.Is(err, context.Canceled) {
		t.Errorf("Put(cancelled) = %v, %v; want false, context.Canceled", stored, err)
	}
	if _, err := s.Get(testKey("c")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after cancelled Put = %v; want ErrNotFound", err)
	}
}

// Close during concurrent puts: each put either succeeds (and its record is
// there after a reopen) or fails with ErrClosed; none hangs.
func TestCloseDuringPuts(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s, err := Open(dir, Config{Timeout: DefaultConfig().Timeout, MaxBatch: 16, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // guards ok
	var ok []string
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := 0; ; i++ {
				name := fmt.Sprint(w, "/", i)
				_, err := s.Put(context.Background(), rec(name, 1))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				mu.Lock()
				ok = append(ok, name)
				mu.Unlock()
			}
		})
	}
	// Close once some puts went through.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no 50 puts within 30s")
		}
		mu.Lock()
		n := len(ok)
		mu.Unlock()
		if n >= 50 {
			break
		}
		if _, err := s.Get(testKey("never")); err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
	s = openTest(t, dir, withClock(c))
	for _, name := range ok {
		if _, err := s.Get(testKey(name)); err != nil {
			t.Fatalf("acknowledged %s: Get = %v", name, err)
		}
	}
}
