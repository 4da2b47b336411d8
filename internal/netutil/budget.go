package netutil

import (
	"context"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// Budget bounds the bytes held by requests read from the network and not
// yet answered. A reader acquires a message's size before it reads the
// message's body and releases it once the request is finished: over budget,
// the reader waits (reading stops, nothing is dropped). Safe for concurrent
// use.
type Budget struct {
	size  int64
	sem   *semaphore.Weighted
	held  atomic.Int64
	waits atomic.Int64
}

// NewBudget returns a budget of size bytes, at least 1.
func NewBudget(size int64) (*Budget, error) {
	if size < 1 {
		return nil, fmt.Errorf("netutil: budget of %d bytes: must be at least 1", size)
	}
	return &Budget{size: size, sem: semaphore.NewWeighted(size)}, nil
}

// Size returns the budget in bytes.
func (b *Budget) Size() int64 { return b.size }

// Held returns the bytes acquired and not yet released.
func (b *Budget) Held() int64 { return b.held.Load() }

// Waits returns how many Acquire calls had to wait.
func (b *Budget) Waits() int64 { return b.waits.Load() }

// Acquire takes n bytes, waiting while they are not free, and returns the
// amount taken, to be passed to Release. A message larger than the whole
// budget takes all of it: it waits until nothing else is held, so it is
// still served, alone. It fails only if ctx ends first.
func (b *Budget) Acquire(ctx context.Context, n int) (int64, error) {
	w := min(max(int64(n), 0), b.size)
	if w == 0 {
		return 0, nil
	}
	if !b.sem.TryAcquire(w) {
		b.waits.Add(1)
		if err := b.sem.Acquire(ctx, w); err != nil {
			return 0, err
		}
	}
	b.held.Add(w)
	return w, nil
}

// Release gives back what Acquire returned.
func (b *Budget) Release(w int64) {
	if w == 0 {
		return
	}
	b.held.Add(-w)
	b.sem.Release(w)
}
