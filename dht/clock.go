package dht

import (
	"encoding/binary"
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

// next returns a version newer than both every version this clock issued and
// prev.
func (c *clock) next(prev store.Version) store.Version {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := uint64(c.now().UnixNano())
	if t <= c.last {
		t = c.last + 1
	}
	if t <= prev.Clock {
		t = prev.Clock + 1
	}
	c.last = t
	return store.Version{Clock: t, Node: c.node}
}
