package netutil

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// SourceBudgets gives each source address (an IPv4 address, an IPv6 /64)
// a Budget of its own, so that one address cannot spend the whole of a
// server's budget. A connection takes its address's budget with Open and
// gives it back with Close once it has finished every request: the budget
// lives while a connection of its address does. Safe for concurrent use.
type SourceBudgets struct {
	size  int64
	waits atomic.Int64

	mu sync.Mutex // guards m
	m  map[netip.Prefix]*sourceBudget
}

type sourceBudget struct {
	b    *Budget
	refs int
}

// NewSourceBudgets returns budgets of size bytes, at least 1, per address.
func NewSourceBudgets(size int64) (*SourceBudgets, error) {
	if size < 1 {
		return nil, fmt.Errorf("netutil: budget of %d bytes per address: must be at least 1", size)
	}
	return &SourceBudgets{size: size, m: make(map[netip.Prefix]*sourceBudget)}, nil
}

// Waits returns how many Acquire calls on any address's budget had to wait.
func (s *SourceBudgets) Waits() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.waits.Load()
	for _, sb := range s.m {
		n += sb.b.Waits()
	}
	return n
}

// Open returns the budget of remote's source address, and the function that
// gives it back (call it once, when the connection's requests are done).
func (s *SourceBudgets) Open(remote net.Addr) (*Budget, func()) {
	key := sourceKey(remote)
	s.mu.Lock()
	defer s.mu.Unlock()
	sb := s.m[key]
	if sb == nil {
		b, _ := NewBudget(s.size) // size checked by NewSourceBudgets
		sb = &sourceBudget{b: b}
		s.m[key] = sb
	}
	sb.refs++
	var once sync.Once
	return sb.b, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			sb.refs--
			if sb.refs == 0 {
				s.waits.Add(sb.b.Waits())
				delete(s.m, key)
			}
		})
	}
}
