package chord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Asker sends one request about an identifier to the node to. to is this
// node itself when its own tables say it owns the identifier: the Asker then
// serves the request locally, with no call. With learn set, an owner that
// serves the request should also tell its neighbours (Reply.Neighbours), so
// that this node learns the arcs around it.
type Asker func(ctx context.Context, to NodeInfo, learn bool) (Reply, error)

// Reply is how a request sent by an Asker went, when it got an answer.
type Reply struct {
	// Referral is set when to does not own the identifier: its answer (see
	// Refer). Nil means that to served the request.
	Referral *Referral
	// Neighbours are those of the owner that served the request, if it
	// was asked for them and told them.
	Neighbours *Neighbours
}

// RouteResult is the outcome of Route.
type RouteResult struct {
	// Owner is the node that served the request; when Route fails, the last
	// node it was sent to (zero if none).
	Owner NodeInfo
	// Successors are Owner's successors as last named to this node.
	Successors []NodeInfo
	// Known lists, in the order heard of, every node named as the owner
	// during the route and the successors named with it: where the holders
	// of the identifier are, for a caller whose request found no owner.
	Known []NodeInfo
	// Calls is the number of remote calls made: lookup hops and requests.
	Calls int
}

// maxKnown bounds RouteResult.Known.
const maxKnown = 32

// Route sends a request about id straight to the node this node believes
// owns id, and follows the referral of a node that does not, so that the
// lookup is folded into the request: in a warm ring it costs one call.
//
// The owner comes from this node's own tables (itself, or its first
// successor), else from the owner cache (arcs learned from earlier answers),
// else from an iterative lookup. A referral is checked against id before it
// is followed: an owner it names must follow the referring node with id in
// between, a predecessor it names must lie in [id, referring node), closer
// nodes strictly between the referring node and id. A node that cannot be
// reached is skipped, and the lookup continues around it. Everything is
// bounded as a lookup is: MaxHops calls in all and LookupTimeout. Any other
// error (see routeOn) is the owner's answer: it ends the route and is
// returned as it is.
func (n *Node) Route(ctx context.Context, id ID, ask Asker) (RouteResult, error) {
	if !n.joined() {
		return RouteResult{}, fmt.Errorf("route %s: %w", id.Short(), ErrNotReady)
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > n.cfg.LookupTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.cfg.LookupTimeout)
		defer cancel()
	}
	// The warm path (one request to a believed owner that serves it)
	// allocates nothing here: the walk and the lists stay on the stack
	// until a referral or a failure needs them.
	w := walk{n: n, id: id, learn: true}
	var triedBuf [4]LookupResult
	tried := triedBuf[:0] // the owners asked, in order
	next, cached, learn, ok := n.believedOwner(id)
	for {
		if !ok {
			r, err := w.owner(ctx)
			if err != nil {
				return n.routeFailed(w.calls, tried, err)
			}
			next, cached, learn = r, false, n.wantsNeighbours(r.Owner)
		}
		ok = false
		to := next.Owner
		if slices.ContainsFunc(tried, func(t LookupResult) bool { return t.Owner.ID == to.ID }) {
			// Named again after it referred us on: the views disagree.
			return n.routeFailed(w.calls, tried, w.fail(fmt.Errorf("%s named owner again: %w", to, ErrNotOwner)))
		}
		remote := to.ID != n.self.ID
		if remote {
			if w.calls >= n.cfg.MaxHops {
				return n.routeFailed(w.calls, tried, w.fail(fmt.Errorf("hop limit %d", n.cfg.MaxHops)))
			}
			w.calls++
		}
		if cached {
			next.Successors = n.cachedSuccessors(to.ID)
		}
		tried = append(tried, next)
		rep, err := ask(ctx, to, learn)
		switch {
		case err == nil && rep.Referral == nil:
			if remote {
				n.noteSuccess(to)
			}
			if learn && rep.Neighbours != nil {
				n.learnNeighbours(to, *rep.Neighbours)
			}
			return RouteResult{Owner: to, Successors: next.Successors, Calls: w.calls}, nil
		case err != nil:
			if ctx.Err() != nil || !remote || !routeOn(err) {
				return n.routeFailed(w.calls, tried, err)
			}
			if errors.Is(err, context.DeadlineExceeded) {
				// Slow rather than dead (a busy disk, a long queue): route
				// around it without counting it against it, as the
				// requests' own timeouts are not the ring's.
				w.lastErr = fmt.Errorf("via %s: %w", to.Addr, err)
				w.skipNode(to)
			} else {
				w.failed(to, err)
			}
			n.m.routeRedirects.Inc()
		default:
			n.noteSuccess(to)
			n.m.routeRedirects.Inc()
			next, ok = w.referred(to, *rep.Referral)
			cached, learn = false, ok && n.wantsNeighbours(next.Owner)
		}
	}
}

// routeFailed returns the result of a route that ends with err after calls
// calls, having asked the owners in tried.
func (n *Node) routeFailed(calls int, tried []LookupResult, err error) (RouteResult, error) {
	res := RouteResult{Calls: calls}
	for _, t := range tried {
		res.Owner, res.Successors = t.Owner, t.Successors
		res.Known = appendKnown(res.Known, t.Owner)
		res.Known = appendKnown(res.Known, t.Successors...)
	}
	return res, err
}

// routeOn reports whether a request that failed with err goes on to another
// node: the node could not be reached, was not itself (identity), is
// leaving, no longer stands at the position called (virtual nodes: it moved
// it), not in the ring yet, or too slow. Any other error is the owner's
// answer (an Asker may translate it, as not found), returned to the caller.
func routeOn(err error) bool {
	for _, e := range []error{ErrUnreachable, ErrIdentityMismatch, ErrShuttingDown, ErrNoPosition, ErrNotReady, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func appendKnown(known []NodeInfo, xs ...NodeInfo) []NodeInfo {
	for _, x := range xs {
		if len(known) < maxKnown && x.Addr != "" && !hasNode(known, x.ID) {
			known = append(known, x)
		}
	}
	return known
}

// referred takes in the referral of to, a node that does not own the walk's
// id, and returns the node to send the request to next, if the referral
// names one: the owner, when it follows to with the id in between; or to's
// predecessor, when it lies in [id, to), a node that joined between the id
// and to and likely owns the id. Closer nodes become lookup candidates.
func (w *walk) referred(to NodeInfo, ref Referral) (LookupResult, bool) {
	if w.queried == nil {
		w.queried = make(map[NodeInfo]bool)
	}
	w.queried[to] = true
	if ref.OwnerIsSelf {
		// It owns the id after all (its predecessor changed meanwhile);
		// it has been asked, so this says nothing new.
		ref.Owner, ref.Successors = nil, nil
	}
	r, ok, err := w.heard(to, ref)
	if err != nil {
		w.refused(to, err)
		return LookupResult{}, false
	}
	w.lastOK, w.lastOKSkips = to, len(w.skip)
	if ok && !slices.Contains(w.skip, r.Owner.ID) {
		return r, true
	}
	if p := ref.Predecessor; p != nil && validNode(*p) == nil && !slices.Contains(w.skip, p.ID) &&
		(p.ID == w.id || p.ID.InOpen(w.id, to.ID)) {
		return LookupResult{Owner: *p, Successors: []NodeInfo{to}}, true
	}
	return LookupResult{}, false
}

// believedOwner returns the node this node believes owns id without asking
// anyone: itself or one of its successors by its own tables, or the owner of
// a cached arc that holds id (not a suspect; cached is then true and the
// successors are left out, see cachedSuccessors). learn says whether to ask
// the owner for its neighbours (see wantsNeighbours).
func (n *Node) believedOwner(id ID) (r LookupResult, cached, learn, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.succs[0].ID == n.self.ID || (n.hasPred && id.InHalfOpen(n.pred.ID, n.self.ID)) {
		r.Owner = n.self
		if n.succs[0].ID != n.self.ID {
			r.Successors = n.succs // replaced wholesale, never changed in place
		}
		return r, false, false, true
	}
	prev := n.self.ID
	for i, x := range n.succs {
		// Deeper entries may be stale (a newcomer not learned yet): the
		// node asked checks, and refers to its predecessor if so.
		if id.InHalfOpen(prev, x.ID) {
			return LookupResult{Owner: x, Successors: n.succs[i+1:]}, false, false, true
		}
		prev = x.ID
	}
	if o, _, ok := n.owners.owner(id); ok && !n.suspected(o.ID) {
		n.m.ownerCache.hit.Inc()
		return LookupResult{Owner: o}, true, n.wantsNeighboursLocked(o), true
	}
	n.m.ownerCache.miss.Inc()
	return LookupResult{}, false, false, false
}

// cachedSuccessors returns the successors of owner as far as the owner cache
// knows them: the owners of the arcs that follow its arc without a gap.
func (n *Node) cachedSuccessors(owner ID) []NodeInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	i, found := n.owners.search(owner)
	if !found {
		return nil
	}
	return n.owners.following(i, n.cfg.SuccessorListLen)
}

// wantsNeighbours reports whether a request to to should ask for its
// neighbours: to is neither this node nor one of its successors (whose arcs
// it knows), and the owner cache lacks one of the arcs to's neighbours
// reveal (its own and those of its successors), so they are yet to be
// learned.
func (n *Node) wantsNeighbours(to NodeInfo) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.wantsNeighboursLocked(to)
}

func (n *Node) wantsNeighboursLocked(to NodeInfo) bool {
	if to.ID == n.self.ID || hasNode(n.succs, to.ID) {
		return false
	}
	return !n.owners.knowsRun(to.ID, n.cfg.SuccessorListLen-1)
}

// learnNeighbours adds the arcs an owner's neighbours reveal to the owner
// cache: its own, after its predecessor, and one per pair of successive
// successors.
func (n *Node) learnNeighbours(owner NodeInfo, nb Neighbours) {
	r := Referral{Owner: &owner, OwnerIsSelf: true, Successors: nb.Successors, Predecessor: nb.Predecessor}
	n.learn(owner, r)
}

// Neighbours returns this node's predecessor and a copy of its successor
// list.
func (n *Node) Neighbours() Neighbours {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := Neighbours{Successors: slices.Clone(n.succs)}
	if n.hasPred {
		p := n.pred
		r.Predecessor = &p
	}
	return r
}

// Refer returns what this node knows of the owner of id, for the answer to a
// request about an identifier it does not own (see Route): what
// chord.find_successor would answer.
func (n *Node) Refer(id ID) (Referral, error) {
	if !n.joined() {
		return Referral{}, ErrNotReady
	}
	return n.answer(id, closerCount, nil), nil
}
