package chord

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Wire method names.
const (
	methodFindSuccessor = "chord.find_successor"
	methodNeighbours    = "chord.neighbours"
	methodPing          = "chord.ping"
	methodNotify        = "chord.notify"
	methodLeave         = "chord.leave"
	methodStatus        = "chord.status"
)

// closerCount is the number of closer nodes a find_successor reply carries.
const closerCount = 8

func isBuiltin(method string) bool { return strings.HasPrefix(method, "chord.") }

// findArgs are the params of chord.find_successor. Skip lists nodes the
// asking lookup found dead: the answer treats them as absent.
type findArgs struct {
	ID   *ID  `json:"id"`
	Skip []ID `json:"skip,omitempty"`
}

// maxSkip bounds findArgs.Skip (a lookup queries at most MaxHops nodes).
const maxSkip = 64

// Referral is what a node knows of the owner of an identifier: its answer to
// chord.find_successor, and to a request for an identifier it does not own
// (see Route and Refer). Owner is set when the answering node knows the
// owner: itself (OwnerIsSelf) or its first successor; Successors then holds
// the owner's successors as far as the answering node knows them. Otherwise
// Closer lists known nodes between the answering node and the identifier,
// closest to the identifier first. Predecessor is the answering node's
// predecessor, when it has one.
type Referral struct {
	Owner       *NodeInfo  `json:"owner,omitempty"`
	OwnerIsSelf bool       `json:"owner_is_self,omitempty"`
	Successors  []NodeInfo `json:"successors,omitempty"`
	Closer      []NodeInfo `json:"closer,omitempty"`
	Predecessor *NodeInfo  `json:"predecessor,omitempty"`
}

// Neighbours are a node's predecessor (nil if unknown) and successor list:
// the answer to chord.neighbours, and what an owner tells a node that routed
// a request to it and asked (see Asker).
type Neighbours struct {
	Predecessor *NodeInfo  `json:"predecessor"`
	Successors  []NodeInfo `json:"successors"`
}

// notifyArgs are the params of chord.notify. Role "successor" says that Node
// has just joined between the receiver and the receiver's successor; any
// other value (normally absent) says Node may be the receiver's predecessor.
type notifyArgs struct {
	Node NodeInfo `json:"node"`
	Role string   `json:"role,omitempty"`
}

const roleSuccessor = "successor"

type leaveArgs struct {
	Node        NodeInfo   `json:"node"`
	Predecessor *NodeInfo  `json:"predecessor"`
	Successors  []NodeInfo `json:"successors"`
}

// decodeParams decodes params strictly into v.
func decodeParams(params json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return nil
}

func validNode(x NodeInfo) error {
	if x.Addr == "" || x.ID.IsZero() {
		return fmt.Errorf("%w: node needs an id and an address", ErrBadRequest)
	}
	return nil
}

// ServeRPC implements Handler: the ring's own methods, then those registered
// with Handle.
func (n *Node) ServeRPC(ctx context.Context, from ID, method string, params json.RawMessage) (any, error) {
	n.mu.Lock()
	state := n.state
	h := n.handlers[method]
	n.mu.Unlock()
	if state == stateLeft {
		return nil, ErrShuttingDown
	}
	switch method {
	case methodPing:
		return struct{}{}, nil
	case methodStatus:
		return n.Status(), nil
	case methodFindSuccessor:
		var a findArgs
		if err := decodeParams(params, &a); err != nil {
			return nil, err
		}
		if a.ID == nil {
			return nil, fmt.Errorf("%w: id missing", ErrBadRequest)
		}
		if len(a.Skip) > maxSkip {
			return nil, fmt.Errorf("%w: %d nodes to skip, at most %d", ErrBadRequest, len(a.Skip), maxSkip)
		}
		if state != stateJoined {
			return nil, ErrNotReady
		}
		return n.answer(*a.ID, closerCount, a.Skip), nil
	case methodNeighbours:
		if state != stateJoined {
			return nil, ErrNotReady
		}
		return n.Neighbours(), nil
	case methodNotify:
		var a notifyArgs
		if err := decodeParams(params, &a); err != nil {
			return nil, err
		}
		if err := validNode(a.Node); err != nil {
			return nil, err
		}
		if a.Node.ID != from || from == n.self.ID {
			return nil, fmt.Errorf("%w: notify from %s names %s", ErrBadRequest, from.Short(), a.Node.ID.Short())
		}
		if state != stateJoined {
			return nil, ErrNotReady
		}
		if a.Role == roleSuccessor {
			n.newSuccessor(ctx, a.Node)
		} else {
			n.notified(ctx, a.Node)
		}
		return struct{}{}, nil
	case methodLeave:
		var a leaveArgs
		if err := decodeParams(params, &a); err != nil {
			return nil, err
		}
		if err := validNode(a.Node); err != nil {
			return nil, err
		}
		if a.Node.ID != from || from == n.self.ID {
			return nil, fmt.Errorf("%w: leave from %s names %s", ErrBadRequest, from.Short(), a.Node.ID.Short())
		}
		if a.Predecessor != nil {
			if err := validNode(*a.Predecessor); err != nil {
				return nil, err
			}
		}
		for _, s := range a.Successors {
			if err := validNode(s); err != nil {
				return nil, err
			}
		}
		n.peerLeft(ctx, a)
		return struct{}{}, nil
	}
	if h != nil {
		return h(ctx, from, method, params)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownMethod, method)
}

// answer is find_successor on local knowledge, used both to serve peers and
// as the first step of this node's own lookups. Nodes in skip are treated as
// absent.
func (n *Node) answer(id ID, maxCloser int, skip []ID) Referral {
	n.mu.Lock()
	defer n.mu.Unlock()
	var r Referral
	if n.hasPred {
		p := n.pred
		r.Predecessor = &p
	}
	succs := slices.DeleteFunc(slices.Clone(n.succs), func(x NodeInfo) bool { return slices.Contains(skip, x.ID) })
	alone := n.succs[0].ID == n.self.ID
	predOK := n.hasPred && !slices.Contains(skip, n.pred.ID)
	if alone || (predOK && id.InHalfOpen(n.pred.ID, n.self.ID)) {
		self := n.self
		r.Owner, r.OwnerIsSelf = &self, true
		if !alone {
			r.Successors = succs
		}
		return r
	}
	// Only the first live successor, which this node checks every stabilise
	// round, is named as owner; deeper successor-list entries may be stale
	// (a failed node not yet evicted, a newcomer not yet learned), so they
	// are offered as closer nodes and the lookup asks them.
	if len(succs) > 0 && id.InHalfOpen(n.self.ID, succs[0].ID) {
		owner := succs[0]
		r.Owner = &owner
		r.Successors = succs[1:]
		return r
	}
	r.Closer = n.closestPrecedingLocked(id, maxCloser, skip)
	return r
}

// closestPrecedingLocked returns up to max known nodes in (self, id), closest
// to id first; suspects come after every node that is not suspected.
func (n *Node) closestPrecedingLocked(id ID, max int, skip []ID) []NodeInfo {
	type cand struct {
		info    NodeInfo
		dist    ID
		suspect bool
	}
	var cands []cand
	seen := make(map[ID]bool)
	consider := func(x NodeInfo) {
		if x.Addr == "" || seen[x.ID] || x.ID == n.self.ID || !x.ID.InOpen(n.self.ID, id) || slices.Contains(skip, x.ID) {
			return
		}
		seen[x.ID] = true
		cands = append(cands, cand{info: x, dist: x.ID.Distance(id), suspect: n.suspected(x.ID)})
	}
	for _, s := range n.succs {
		consider(s)
	}
	for _, f := range n.fingers {
		consider(f)
	}
	n.cache.each(consider)
	slices.SortFunc(cands, func(a, b cand) int {
		if a.suspect != b.suspect {
			if a.suspect {
				return 1
			}
			return -1
		}
		return a.dist.Cmp(b.dist)
	})
	out := make([]NodeInfo, 0, min(max, len(cands)))
	for _, c := range cands[:min(max, len(cands))] {
		out = append(out, c.info)
	}
	return out
}

// notified handles chord.notify: x thinks it might be our predecessor. It is
// adopted if it lies between the predecessor and this node (or the
// predecessor is unknown or suspected), and answers a ping: the notifier
// proved its ID, not that it serves at the address it names.
func (n *Node) notified(ctx context.Context, x NodeInfo) {
	n.mu.Lock()
	adopt := n.adoptsPredLocked(x) || n.succs[0].ID == n.self.ID
	n.mu.Unlock()
	if !adopt || !n.answers(ctx, x, "predecessor") {
		return
	}
	n.mu.Lock()
	changed := false
	if n.adoptsPredLocked(x) {
		n.pred, n.hasPred = x, true
		changed = true
	}
	if n.succs[0].ID == n.self.ID {
		// Alone until now: the notifier is the only other node we know.
		n.succs = []NodeInfo{x}
		n.updateLowFingersLocked()
		changed = true
	}
	if !changed {
		n.mu.Unlock()
		return
	}
	ch, fns := n.changeLocked()
	n.mu.Unlock()
	n.fire(ch, fns)
}

// adoptsPredLocked reports whether x would replace the predecessor:
// Chord's rule, x in (predecessor, self), or no live predecessor.
func (n *Node) adoptsPredLocked(x NodeInfo) bool {
	if n.hasPred && n.pred == x {
		return false
	}
	return !n.hasPred || n.pred.ID == n.self.ID || x.ID.InOpen(n.pred.ID, n.self.ID) || n.suspected(n.pred.ID)
}

// newSuccessor handles chord.notify with role successor: x joined between
// this node and its successor, and is adopted at once if it lies there and
// answers a ping.
func (n *Node) newSuccessor(ctx context.Context, x NodeInfo) {
	between := func() bool {
		n.mu.Lock()
		defer n.mu.Unlock()
		s := n.succs[0]
		return s.ID == n.self.ID || x.ID.InOpen(n.self.ID, s.ID)
	}
	if !between() || !n.answers(ctx, x, "successor") || !between() {
		return
	}
	n.mu.Lock()
	next := n.successorList(append([]NodeInfo{x}, n.succs...))
	n.mu.Unlock()
	n.setSuccessors(next)
}

// peerLeft handles chord.leave: a neighbour leaves gracefully and hands over
// its predecessor (to its successor) and its successors (to its
// predecessor). Only what answers a ping is adopted, and of the successors
// only those that follow the leaving node in ring order before this node.
func (n *Node) peerLeft(ctx context.Context, a leaveArgs) {
	left := a.Node.ID
	n.mu.Lock()
	wasPred := n.hasPred && n.pred.ID == left
	i := slices.IndexFunc(n.succs, func(x NodeInfo) bool { return x.ID == left })
	known := slices.Clone(n.succs)
	n.mu.Unlock()
	var newPred *NodeInfo
	var handed []NodeInfo
	if wasPred && a.Predecessor != nil && a.Predecessor.ID != n.self.ID && a.Predecessor.ID != left {
		newPred = a.Predecessor
	}
	if i >= 0 {
		for _, x := range a.Successors[:min(len(a.Successors), n.cfg.SuccessorListLen)] {
			if x.ID.InOpen(left, n.self.ID) && !hasNode(known, x.ID) {
				handed = append(handed, x)
			}
		}
	}
	newPred, handed = n.answering(ctx, newPred, handed)

	n.mu.Lock()
	changed := false
	if n.hasPred && n.pred.ID == left {
		changed = true
		if newPred != nil {
			n.pred = *newPred
		} else {
			n.hasPred = false
		}
	}
	if i := slices.IndexFunc(n.succs, func(x NodeInfo) bool { return x.ID == left }); i >= 0 {
		changed = true
		next := slices.DeleteFunc(append(slices.Clone(n.succs), handed...), func(x NodeInfo) bool { return x.ID == left })
		// Ring order from this node: the handed-over entries go where
		// they belong among the known ones.
		slices.SortFunc(next, func(x, y NodeInfo) int { return n.self.ID.Distance(x.ID).Cmp(n.self.ID.Distance(y.ID)) })
		next = n.successorList(next)
		if len(next) == 0 {
			next = []NodeInfo{n.self}
		}
		n.succs = next
		n.updateLowFingersLocked()
	}
	for i := range n.fingers {
		if n.fingers[i].ID == left {
			n.fingers[i] = NodeInfo{}
		}
	}
	n.cache.remove(left)
	n.owners.remove(left)
	delete(n.failures, left)
	if !changed {
		n.mu.Unlock()
		return
	}
	ch, fns := n.changeLocked()
	n.mu.Unlock()
	n.fire(ch, fns)
}

// answering pings pred (if not nil) and the nodes in succs at once, each
// within the call timeout, and returns those that answered: pred or nil, and
// succs in their order.
func (n *Node) answering(ctx context.Context, pred *NodeInfo, succs []NodeInfo) (*NodeInfo, []NodeInfo) {
	all := slices.Clone(succs)
	if pred != nil {
		all = append(all, *pred)
	}
	ok := make([]bool, len(all))
	var wg sync.WaitGroup
	for k, x := range all {
		wg.Go(func() { ok[k] = n.answers(ctx, x, "handed-over") })
	}
	wg.Wait()
	var out []NodeInfo
	for k, x := range succs {
		if ok[k] {
			out = append(out, x)
		}
	}
	if pred != nil && !ok[len(all)-1] {
		pred = nil
	}
	return pred, out
}
