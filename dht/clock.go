package dht

import (
	"encoding/binary"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// clock issues versions: wall-clock nanoseconds, strictly increasing on this
// node, and above any version they replace.
type clock struct {
	node uint64
	now  func() time.Time

	mu   sync.Mutex // guards last
	last uint64
}

func newClock(self chord.ID, now func() time.Time) *clock {
	return &clock{node: binary.BigEndian.Uint64(self[:8]), now: now}
}

// errClockExhausted: a version would have to go past the largest clock
// value. Records that come from other nodes cannot get there (admit refuses
// versions far ahead of this node's clock); only a database written before
// that rule could hold one.
var errClockExhausted = errors.New("dht: no version above the stored one (clock at its maximum)")

// next returns a version newer than both every version this clock issued and
// prev. The clock never wraps: with prev at the largest clock value it fails.
func (c *clock) next(prev store.Version) (store.Version, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev.Clock == math.MaxUint64 || c.last == math.MaxUint64 {
		return store.Version{}, errClockExhausted
	}
	t := uint64(c.now().UnixNano())
	if t <= c.last {
		t = c.last + 1
	}
	if t <= prev.Clock {
		t = prev.Clock + 1
	}
	c.last = t
	return store.Version{Clock: t, Node: c.node}, nil
}
