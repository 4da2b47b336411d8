package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// PutAll stores a batch with newer-wins per record, drops expired ones,
// and shares commits among the batch.
func TestPutAll(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openTest(t, "", func(c *Config) { c.Metrics = reg; c.Now = newClock().Now })
	ctx := context.Background()
	mustPut(t, s, rec("r5", 9)) // newer than the batch's r5
	var batch []Record
	for i := range 1000 {
		batch = append(batch, rec(fmt.Sprint("r", i), 2))
	}
	expired := rec("gone", 5)
	expired.Expiry = testEpoch.Add(-time.Second)
	batch = append(batch, expired)
	before, _ := counterValue(t, reg, "durachord_store_commits_total", "")
	stored, err := s.PutAll(ctx, batch)
	if err != nil {
		t.Fatalf("PutAll: %v", err)
	}
	if stored != 999 {
		t.Errorf("PutAll stored %d; want 999 (r5 is older than the stored one, gone is expired)", stored)
	}
	// One writer queueing 1000 records may not pay for 1000 fsyncs: at
	// least four records share each commit on average.
	after, _ := counterValue(t, reg, "durachord_store_commits_total", "")
	if commits := after - before; commits > 250 {
		t.Errorf("PutAll of 1000 records took %v commits; want them shared", commits)
	}
	for i := range 1000 {
		name := fmt.Sprint("r", i)
		got, err := s.Get(testKey(name))
		want := rec(name, 2)
		if i == 5 {
			want = rec(name, 9)
		}
		if err != nil || !sameRecord(got, want) {
			t.Fatalf("Get(%s) = %+v, %v; want %+v", name, got, err, want)
		}
	}
	if _, err := s.Get(expired.Key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(expired) = %v; want ErrNotFound", err)
	}
	// A second delivery of the same batch stores nothing.
	if stored, err := s.PutAll(ctx, batch); err != nil || stored != 0 {
		t.Errorf("PutAll again = %d, %v; want 0, nil", stored, err)
	}
}

func TestPutAllInvalidAndCancelled(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	bad := rec("bad", 1)
	bad.Value = nil
	if n, err := s.PutAll(context.Background(), []Record{rec("a", 1), bad}); err == nil || n != 0 {
		t.Errorf("PutAll with an empty value = %d, %v; want 0 and an error", n, err)
	}
	if _, err := s.Get(testKey("a")); !errors.Is(err, ErrNotFound) {
		t.Errorf("a batch with an invalid record stored part of it: Get = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if n, err := s.PutAll(ctx, []Record{rec("c", 1)}); n != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("PutAll(cancelled) = %d, %v; want 0, context.Canceled", n, err)
	}
	if n, err := s.PutAll(context.Background(), nil); n != 0 || err != nil {
		t.Errorf("PutAll(nil) = %d, %v; want 0, nil", n, err)
	}
}
