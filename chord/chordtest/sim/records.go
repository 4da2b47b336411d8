package main

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/dht"
	"github.com/durachord/durachord/store"
)

// memRecords keeps a node's records in memory: the records layer of a
// simulated node, which thousands of bbolt files could not be. It keeps the
// store's rules that the request paths rely on (put-if-newer, no expired
// record returned).
type memRecords struct {
	mu   sync.Mutex // guards recs
	recs map[[32]byte]store.Record
}

var _ dht.Records = (*memRecords)(nil)

func newMemRecords() *memRecords { return &memRecords{recs: make(map[[32]byte]store.Record)} }

func (m *memRecords) Put(_ context.Context, r store.Record) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !r.Expiry.After(time.Now()) {
		return false, nil
	}
	if old, ok := m.recs[r.Key]; ok && old.Version.Compare(r.Version) >= 0 {
		return false, nil
	}
	r.Value = slices.Clone(r.Value)
	m.recs[r.Key] = r
	return true, nil
}

func (m *memRecords) PutAll(ctx context.Context, recs []store.Record) (int, error) {
	n := 0
	for _, r := range recs {
		if ok, _ := m.Put(ctx, r); ok {
			n++
		}
	}
	return n, nil
}

func (m *memRecords) Get(key [32]byte) (store.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[key]
	if !ok || r.Expired(time.Now()) {
		return store.Record{}, store.ErrNotFound
	}
	return r, nil
}

func (m *memRecords) Delete(_ context.Context, key [32]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.recs, key)
	return nil
}

// Range walks the records of the arc (from, to] in position order after
// `after`; the simulator runs no maintenance, so a full scan will do.
func (m *memRecords) Range(from, to store.Position, after *store.Position, limit int, fn func(store.Record) error) (*store.Position, error) {
	m.mu.Lock()
	var recs []store.Record
	for _, r := range m.recs {
		if store.InArc(r.Position(), from, to) {
			recs = append(recs, r)
		}
	}
	m.mu.Unlock()
	start := chord.ID(from)
	if after != nil {
		start = chord.ID(*after)
	}
	slices.SortFunc(recs, func(a, b store.Record) int {
		return start.Distance(chord.ID(a.Position())).Cmp(start.Distance(chord.ID(b.Position())))
	})
	for i, r := range recs {
		p := r.Position()
		if after != nil && p == *after {
			continue
		}
		if i >= limit {
			return &p, nil
		}
		if err := fn(r); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

func (m *memRecords) SetPrimary(_ context.Context, key [32]byte, primary bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.recs[key]; ok {
		r.Primary = primary
		m.recs[key] = r
	}
	return nil
}

// DeleteUpTo deletes the record of key if its version is v or older.
func (m *memRecords) DeleteUpTo(_ context.Context, key [32]byte, v store.Version) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.recs[key]
	if !ok || r.Version.Compare(v) > 0 {
		return false, nil
	}
	delete(m.recs, key)
	return true, nil
}

// SetPrimaryUpTo is SetPrimary for a record at version v or older.
func (m *memRecords) SetPrimaryUpTo(_ context.Context, key [32]byte, primary bool, v store.Version) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok := m.recs[key]; ok && r.Version.Compare(v) <= 0 {
		r.Primary = primary
		m.recs[key] = r
	}
	return nil
}

func (m *memRecords) Sweep(_ context.Context, now time.Time, _ int) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for k, r := range m.recs {
		if r.Expired(now) {
			delete(m.recs, k)
			n++
		}
	}
	return n, nil
}

// countingTransport counts the calls a node (one ring position) makes, by
// method.
type countingTransport struct {
	chord.Transport
	self chord.NodeInfo
	c    *callCounter
}

func (t countingTransport) Call(ctx context.Context, to chord.NodeInfo, method string, args, reply any) error {
	t.c.add(t.self.ID, to.ID, method, to.Addr == t.self.Addr)
	return t.Transport.Call(ctx, to, method, args, reply)
}

// callCounter counts calls by method across all nodes and, while byNode is
// on, by the node that made each call and the node it went to. It also
// counts apart the calls to the caller's own address: from one position of
// a node to another of the same node (virtual nodes).
type callCounter struct {
	mu    sync.Mutex // guards n, local, sent and recv
	n     map[string]int
	local int
	sent  map[chord.ID]map[string]int // nil: not counted by node
	recv  map[chord.ID]map[string]int
}

func (c *callCounter) add(from, to chord.ID, method string, local bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[method]++
	if local {
		c.local++
	}
	if c.sent != nil {
		tally(c.sent, from, method)
		tally(c.recv, to, method)
	}
}

func tally(m map[chord.ID]map[string]int, id chord.ID, method string) {
	if m[id] == nil {
		m[id] = make(map[string]int)
	}
	m[id][method]++
}

// take returns the counts since the last take and resets them.
func (c *callCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = make(map[string]int)
	return n
}

// takeLocal returns the number of calls to the caller's own address since
// the last takeLocal and resets it.
func (c *callCounter) takeLocal() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.local
	c.local = 0
	return n
}

// byNode starts counting calls by node, from zero.
func (c *callCounter) byNode() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = make(map[chord.ID]map[string]int)
	c.recv = make(map[chord.ID]map[string]int)
}

// takeByNode returns the counts by node since byNode (calls made, calls
// received) and stops counting by node.
func (c *callCounter) takeByNode() (sent, recv map[chord.ID]map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sent, recv = c.sent, c.recv
	c.sent, c.recv = nil, nil
	return sent, recv
}
