package dht

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// blockingSender records the batches sent and holds each call until the test
// releases it.
type blockingSender struct {
	release chan struct{}
	mu      sync.Mutex
	batches []int
}

func (b *blockingSender) send(_ chord.NodeInfo, recs []store.Record) ([]chord.ID, error) {
	<-b.release
	b.mu.Lock()
	b.batches = append(b.batches, len(recs))
	b.mu.Unlock()
	return nil, nil
}

// TestPushQueuesBatch: pushes queued for a holder while its calls are busy
// leave together, and every push is answered once.
func TestPushQueuesBatch(t *testing.T) {
	q := newPushQueues(1000, 1<<20)
	b := &blockingSender{release: make(chan struct{})}
	peer := chord.NodeInfo{ID: chord.ID{1}, Addr: "holder"}
	const n = 300
	var done atomic.Int64
	for i := range n {
		rec := store.Record{Key: key(i), Value: []byte("v")}
		err := q.push(context.Background(), peer, rec, func(err error) {
			if err != nil {
				t.Errorf("push %d: %v", i, err)
			}
			done.Add(1)
		}, b.send)
		if err != nil {
			t.Fatal(err)
		}
	}
	close(b.release)
	q.wait()
	if got := done.Load(); got != n {
		t.Fatalf("%d pushes answered; want %d", got, n)
	}
	total := 0
	for _, c := range b.batches {
		total += c
	}
	// At most pushesPerBatch calls start before the rest is queued; the
	// rest leaves in one batch after each of them.
	if total != n || len(b.batches) > 2*pushesPerBatch {
		t.Errorf("batches %v: %d records in %d calls; want %d records in at most %d calls",
			b.batches, total, len(b.batches), n, 2*pushesPerBatch)
	}
	// A drain started for a push that another drain served finds nothing
	// and ends on its own; the queue goes with the last one.
	left := 1
	for deadline := time.Now().Add(5 * time.Second); left != 0 && time.Now().Before(deadline); {
		q.mu.Lock()
		left = len(q.queues)
		q.mu.Unlock()
		if left != 0 {
			time.Sleep(time.Millisecond)
		}
	}
	if left != 0 {
		t.Errorf("%d holder queues left after the pushes ended; want 0", left)
	}
}

// TestPushQueuesBatchBytes: a batch carries at most the page's value bytes
// (one record more when the first alone is larger).
func TestPushQueuesBatchBytes(t *testing.T) {
	q := newPushQueues(1000, 100)
	b := &blockingSender{release: make(chan struct{})}
	peer := chord.NodeInfo{ID: chord.ID{1}}
	for i := range 20 {
		rec := store.Record{Key: key(i), Value: make([]byte, 30)}
		if err := q.push(context.Background(), peer, rec, func(error) {}, b.send); err != nil {
			t.Fatal(err)
		}
	}
	close(b.release)
	q.wait()
	for _, c := range b.batches {
		if c > 3 {
			t.Errorf("batches %v: one of %d records of 30 bytes; want at most 3 under 100 bytes", b.batches, c)
		}
	}
}

// TestPushQueuesBackPressure: a full holder queue makes the next push wait
// for room, not fail; it fails only when its own context ends first, and a
// slow holder does not hold up another's queue.
func TestPushQueuesBackPressure(t *testing.T) {
	q := newPushQueues(4, 1<<20)
	slow := &blockingSender{release: make(chan struct{})}
	peer := chord.NodeInfo{ID: chord.ID{1}}
	for i := range 4 {
		if err := q.push(context.Background(), peer, store.Record{Key: key(i), Value: []byte("v")}, func(error) {}, slow.send); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := q.push(ctx, peer, store.Record{Key: key(4)}, func(error) { t.Error("done called for a push that was refused") }, slow.send); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("push into a full queue = %v; want it to wait until its deadline", err)
	}
	// Another holder's queue is free.
	fast := &blockingSender{release: make(chan struct{})}
	close(fast.release)
	other := chord.NodeInfo{ID: chord.ID{2}}
	got := make(chan error, 1)
	if err := q.push(context.Background(), other, store.Record{Key: key(5)}, func(err error) { got <- err }, fast.send); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	// The waiting push goes in once the slow holder answers.
	waited := make(chan error, 1)
	go func() {
		waited <- q.push(context.Background(), peer, store.Record{Key: key(6)}, func(error) {}, slow.send)
	}()
	close(slow.release)
	if err := <-waited; err != nil {
		t.Fatalf("push after room was made = %v", err)
	}
	q.wait()
}

// TestPushQueuesRefusedCopy: a copy the holder names as refused in its reply
// is a failed push (the PUT's quorum does not count it); the rest of the
// batch succeeded.
func TestPushQueuesRefusedCopy(t *testing.T) {
	q := newPushQueues(1000, 1<<20)
	peer := chord.NodeInfo{ID: chord.ID{1}}
	refuse := func(_ chord.NodeInfo, recs []store.Record) ([]chord.ID, error) {
		return []chord.ID{chord.ID(key(1))}, nil
	}
	results := make(map[int]error)
	var mu sync.Mutex
	for i := range 3 {
		err := q.push(context.Background(), peer, store.Record{Key: key(i)}, func(err error) {
			mu.Lock()
			results[i] = err
			mu.Unlock()
		}, refuse)
		if err != nil {
			t.Fatal(err)
		}
	}
	q.wait()
	if len(results) != 3 {
		t.Fatalf("%d of 3 pushes ended", len(results))
	}
	for i := range 3 {
		if err := results[i]; (i == 1) != errors.Is(err, errCopyRefused) || (i != 1 && err != nil) {
			t.Errorf("push of record %d ended with %v; want %v only for record 1", i, err, errCopyRefused)
		}
	}
}
