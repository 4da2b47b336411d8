package chord

import (
	"context"
	"fmt"
	"slices"
)

// Status is a node's view of its neighbourhood, as served by chord.status and
// the admin /status endpoint.
type Status struct {
	ID          ID           `json:"id"`
	Address     string       `json:"address"`
	Predecessor *NodeInfo    `json:"predecessor"`
	Successors  []NodeInfo   `json:"successors"`
	Fingers     []NodeInfo   `json:"fingers"` // distinct known fingers in finger order
	Records     RecordCounts `json:"records"`
	Ready       bool         `json:"ready"`
	// Requests counts the client requests the node has answered since it
	// started, RequestRate those per second over the last 10 s; Admin is its
	// admin HTTP address, omitted if it has none.
	Requests    uint64  `json:"requests"`
	RequestRate float64 `json:"request_rate"`
	Admin       string  `json:"admin,omitempty"`
	// Positions are every ring position of the node's process, its node ID
	// first (virtual nodes); omitted for a process at one position.
	Positions []ID `json:"positions,omitempty"`
}

// Status returns the node's current view.
func (n *Node) Status() Status {
	n.mu.Lock()
	st := Status{
		ID:         n.self.ID,
		Address:    n.self.Addr,
		Successors: slices.Clone(n.succs),
		Fingers:    n.distinctFingersLocked(),
		Ready:      n.readyLocked(),
	}
	if n.state != stateJoined {
		st.Successors = []NodeInfo{}
	}
	if st.Fingers == nil {
		st.Fingers = []NodeInfo{}
	}
	if n.hasPred {
		p := n.pred
		st.Predecessor = &p
	}
	report := n.report
	n.mu.Unlock()
	if report != nil {
		r := report()
		st.Records, st.Requests, st.RequestRate, st.Admin, st.Positions = r.Records, r.Requests, r.RequestRate, r.Admin, r.Positions
	}
	return st
}

// Walk returns the statuses of up to max nodes in ring order, starting with
// this node, by asking each successor for its status (chord.status). It stops
// when the walk comes back to this node; a node that does not answer is
// skipped in favour of the next entry of the previous node's successor list.
func (n *Node) Walk(ctx context.Context, max int) ([]Status, error) {
	if max < 1 {
		return nil, nil
	}
	return walkRing(ctx, n.Status(), max, func(ctx context.Context, to NodeInfo, st *Status) error {
		return n.call(ctx, to, methodStatus, nil, st)
	})
}

// WalkFrom is Walk for a process that is not (yet) on the ring: it starts
// at the member at addr (any ID) and calls through tr.
func WalkFrom(ctx context.Context, tr Transport, addr string, max int) ([]Status, error) {
	if max < 1 {
		return nil, nil
	}
	var first Status
	if err := tr.Call(ctx, NodeInfo{Addr: addr}, methodStatus, nil, &first); err != nil {
		return nil, fmt.Errorf("walk: status of %s: %w", addr, err)
	}
	return walkRing(ctx, first, max, func(ctx context.Context, to NodeInfo, st *Status) error {
		return tr.Call(ctx, to, methodStatus, nil, st)
	})
}

func walkRing(ctx context.Context, cur Status, max int, status func(context.Context, NodeInfo, *Status) error) ([]Status, error) {
	start := cur.ID
	out := []Status{cur}
	seen := map[ID]bool{start: true}
	for len(out) < max {
		var next *Status
		for _, s := range cur.Successors {
			if s.ID == start {
				return out, nil
			}
			if seen[s.ID] {
				return out, fmt.Errorf("walk: ring loops back to %s before reaching this node: %w", s, ErrInternal)
			}
			var st Status
			if err := status(ctx, s, &st); err != nil {
				if ctx.Err() != nil {
					return out, err
				}
				continue
			}
			next = &st
			break
		}
		if next == nil {
			if len(cur.Successors) == 0 {
				return out, nil
			}
			return out, fmt.Errorf("walk: no successor of %s answered: %w", cur.ID.Short(), ErrUnreachable)
		}
		seen[next.ID] = true
		out = append(out, *next)
		cur = *next
	}
	return out, nil
}
