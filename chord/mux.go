package chord

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
)

// PositionHandler serves the calls that reach a node standing at several
// positions of the ring (virtual nodes): to is the position a call is for,
// from the caller's position, both proved by certificates (see
// crypto.PositionID).
type PositionHandler interface {
	Handler
	ServeRPCAt(ctx context.Context, to, from ID, method string, params json.RawMessage) (any, error)
}

// Mux is the PositionHandler of one process: a Handler per position.
// ServeRPC serves the calls that name no position, as its first position.
// A Mux is safe for concurrent use.
type Mux struct {
	mu    sync.RWMutex
	first ID
	byID  map[ID]Handler
}

var _ PositionHandler = (*Mux)(nil)

// NewMux returns a Mux whose first position, for calls that name none, is
// first.
func NewMux(first ID) *Mux {
	return &Mux{first: first, byID: make(map[ID]Handler)}
}

// Add serves the calls for position id with h (replacing any before).
func (m *Mux) Add(id ID, h Handler) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byID[id] = h
}

// Remove stops serving position id: calls for it fail with ErrNoPosition.
func (m *Mux) Remove(id ID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.byID, id)
}

// ServeRPC serves a call that names no position, at the first position.
func (m *Mux) ServeRPC(ctx context.Context, from ID, method string, params json.RawMessage) (any, error) {
	return m.ServeRPCAt(ctx, m.first, from, method, params)
}

// ServeRPCAt serves a call for position to.
func (m *Mux) ServeRPCAt(ctx context.Context, to, from ID, method string, params json.RawMessage) (any, error) {
	m.mu.RLock()
	h := m.byID[to]
	m.mu.RUnlock()
	if h == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoPosition, to.Short())
	}
	return h.ServeRPC(ctx, from, method, params)
}
