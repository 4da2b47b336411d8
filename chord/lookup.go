package chord

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// LookupResult is the outcome of a lookup.
type LookupResult struct {
	// Owner is the node responsible for the identifier: its successor.
	Owner NodeInfo `json:"owner"`
	// Successors are the owner's successors as known by the node that named
	// the owner (the replica holders). It may be shorter than the successor
	// list when that node knew fewer.
	Successors []NodeInfo `json:"successors"`
	// Hops is the number of remote nodes the lookup queried (answered or
	// not); 0 when this node's own tables named the owner.
	Hops int `json:"hops"`
}

// Lookup finds the owner of id. It is iterative: this node queries one peer at
// a time, each naming the owner or closer nodes, within MaxHops queries and
// LookupTimeout. A peer that fails is skipped and not queried again by this
// lookup; nodes learned from replies go into the cache.
func (n *Node) Lookup(ctx context.Context, id ID) (LookupResult, error) {
	if !n.joined() {
		return LookupResult{}, fmt.Errorf("lookup %s: %w", id.Short(), ErrNotReady)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.LookupTimeout)
	defer cancel()
	res, err := n.lookup(ctx, id, nil, true)
	if err != nil {
		n.m.lookups.WithLabelValues("error").Inc()
		return res, err
	}
	n.m.lookups.WithLabelValues("ok").Inc()
	n.m.lookupHops.Observe(float64(res.Hops))
	return res, nil
}

// lookup runs an iterative lookup for id. With start nil it begins with the
// node's own tables; otherwise it queries the start nodes first (a join
// through a bootstrap address or a probe of another ring). learn adds the
// nodes of every reply to the cache.
func (n *Node) lookup(ctx context.Context, id ID, start []NodeInfo, learn bool) (LookupResult, error) {
	w := walk{n: n, id: id, learn: learn, start: start}
	res, err := w.owner(ctx)
	res.Hops = w.calls
	return res, err
}

// walk is the state of one iterative lookup: the candidates heard of, those
// queried, the nodes found dead. Route keeps one walk across the requests it
// sends, so that what a referral teaches and the nodes found dead carry over,
// and one hop limit bounds the lookups and the requests together.
type walk struct {
	n     *Node
	id    ID
	learn bool
	// started: the walk has begun (with its own tables or its start nodes).
	started bool
	start   []NodeInfo
	cands   []NodeInfo
	queried map[NodeInfo]bool // made on first use
	skip    []ID              // nodes found dead or suspected by this walk
	passed  []NodeInfo        // suspects skipped without a call
	// lastOK is the last node that answered (self: its own tables), and
	// lastOKSkips len(skip) when it did.
	lastOK      NodeInfo
	lastOKSkips int
	// calls counts the remote calls: lookup hops and, in Route, requests.
	calls   int
	lastErr error
}

// skipNode makes the rest of the walk, and the nodes it asks, treat x as
// absent.
func (w *walk) skipNode(x NodeInfo) {
	if !x.ID.IsZero() && len(w.skip) < maxSkip && !slices.Contains(w.skip, x.ID) {
		w.skip = append(w.skip, x.ID)
	}
}

// failed notes that a call to c failed with err (ctx still live): a dead
// peer becomes a suspect and is skipped; a peer that is not in the ring yet
// is routed around without holding it against it.
func (w *walk) failed(c NodeInfo, err error) {
	w.lastErr = fmt.Errorf("via %s: %w", c.Addr, err)
	if c.ID.IsZero() {
		return
	}
	if isPeerFailure(err) {
		w.n.noteFailure(c)
		w.skipNode(c)
	} else if errors.Is(err, ErrNotReady) {
		w.skipNode(c)
	}
}

// fail returns the walk's error for a lookup that could not name the owner.
func (w *walk) fail(why error) error {
	return fmt.Errorf("%w: %s after %d calls: %w", ErrLookupFailed, w.id.Short(), w.calls, why)
}

// owner queries nodes with chord.find_successor until one names the owner of
// the walk's id, within MaxHops calls in all.
func (w *walk) owner(ctx context.Context) (LookupResult, error) {
	n, id := w.n, w.id
	if w.queried == nil {
		w.queried = make(map[NodeInfo]bool)
	}
	if !w.started {
		w.started = true
		if w.start == nil {
			if r, ok := w.ownTables(); ok {
				return r, nil
			}
		} else {
			w.cands = slices.Clone(w.start)
		}
	}
	for {
		c, ok := n.pickCandidate(id, w.cands, w.queried)
		if ok && !c.ID.IsZero() && len(w.skip) < maxSkip && n.isSuspect(c.ID) {
			// Known to have failed lately: skip it without waiting on it,
			// and let the next node asked skip it too.
			w.queried[c] = true
			w.skip = append(w.skip, c.ID)
			w.passed = append(w.passed, c)
			continue
		}
		if w.lastOK.Addr != "" && len(w.skip) > w.lastOKSkips && (!ok || w.lastOK.ID.Distance(id).Cmp(c.ID.Distance(id)) < 0) {
			// The last node that answered is closer than any candidate
			// left: ask it again, now that it can skip the dead nodes.
			c, ok = w.lastOK, true
			if c.ID == n.self.ID {
				// That was this node's own tables: no call needed.
				if r, ok := w.ownTables(); ok {
					return r, nil
				}
				continue
			}
		}
		if !ok && len(w.passed) > 0 {
			// Nothing else left: try the suspects after all, nearest first.
			c, ok = w.passed[len(w.passed)-1], true
			w.passed = w.passed[:len(w.passed)-1]
			w.skip = slices.DeleteFunc(w.skip, func(x ID) bool { return x == c.ID })
		}
		if !ok {
			if w.lastErr == nil {
				w.lastErr = errors.New("no candidate left")
			}
			return LookupResult{}, w.fail(w.lastErr)
		}
		if w.calls >= n.cfg.MaxHops {
			return LookupResult{}, w.fail(fmt.Errorf("hop limit %d", n.cfg.MaxHops))
		}
		w.queried[c] = true
		w.calls++
		var rep Referral
		err := n.call(ctx, c, methodFindSuccessor, findArgs{ID: &id, Skip: w.skip}, &rep)
		if err != nil {
			if ctx.Err() != nil {
				return LookupResult{}, fmt.Errorf("lookup %s via %s: %w", id.Short(), c.Addr, err)
			}
			w.failed(c, err)
			continue
		}
		if !c.ID.IsZero() {
			n.noteSuccess(c)
		}
		r, ok, err := w.heard(c, rep)
		if err != nil {
			w.refused(c, err)
			continue
		}
		if !c.ID.IsZero() {
			w.lastOK, w.lastOKSkips = c, len(w.skip)
		}
		if ok {
			return r, nil
		}
		w.skipOwnEarlierRun(rep)
	}
}

// skipOwnEarlierRun handles a referral to this node's own ID while it is
// not joined: the ring still lists its earlier run (a restart before the
// ring noticed). pickCandidate never asks it, and a node whose successor it
// is may offer nothing else (its predecessor, for a join's self+1), so the
// walk asks the ring to route around it: the node that answered is asked
// again with this node skipped.
func (w *walk) skipOwnEarlierRun(rep Referral) {
	self := w.n.self.ID
	if w.n.joined() || slices.Contains(w.skip, self) {
		return
	}
	if slices.ContainsFunc(rep.Closer, func(x NodeInfo) bool { return x.ID == self }) {
		w.skipNode(w.n.self)
	}
}

// ownTables answers the walk from this node's own tables, skipping the
// nodes found dead: the owner if they name it, otherwise closer nodes as
// candidates.
func (w *walk) ownTables() (LookupResult, bool) {
	n := w.n
	w.lastOK, w.lastOKSkips = n.self, len(w.skip)
	r := n.answer(w.id, 2*n.cfg.SuccessorListLen, w.skip)
	if r.Owner != nil {
		return LookupResult{Owner: *r.Owner, Successors: r.Successors}, true
	}
	w.cands = append(w.cands, r.Closer...)
	return LookupResult{}, false
}

// heard takes in the answer of c, a find_successor reply or a referral, after
// checking it against the interval asked about (see checkAnswer). It returns
// the owner when the answer names one, and an error, with nothing taken in,
// when the answer fails the check.
func (w *walk) heard(c NodeInfo, rep Referral) (LookupResult, bool, error) {
	if err := w.checkAnswer(c, rep); err != nil {
		return LookupResult{}, false, err
	}
	if w.learn {
		w.n.learn(c, rep)
	}
	w.cands = append(w.cands, rep.Closer...)
	if rep.Owner == nil {
		return LookupResult{}, false, nil
	}
	return LookupResult{Owner: *rep.Owner, Successors: rep.Successors}, true, nil
}

// checkAnswer checks an answer of c against the walk's id: an owner named by
// c must follow c with the id in between (c itself when c says it is the
// owner), the successors named with it must follow it in ring order, and
// closer nodes must lie strictly between c and the id. A bootstrap's ID is
// unknown, so only the nodes' form and the successors' order are checked
// then.
func (w *walk) checkAnswer(c NodeInfo, rep Referral) error {
	id := w.id
	bad := func(format string, args ...any) error {
		return fmt.Errorf("via %s: %w: %s", c.Addr, ErrBadRequest, fmt.Sprintf(format, args...))
	}
	if o := rep.Owner; o != nil {
		if err := validNode(*o); err != nil {
			return fmt.Errorf("via %s: owner: %w", c.Addr, err)
		}
		switch {
		case c.ID.IsZero():
		case rep.OwnerIsSelf && o.ID != c.ID:
			return bad("names %s as itself", o)
		case !rep.OwnerIsSelf && !id.InHalfOpen(c.ID, o.ID):
			return bad("owner %s does not follow %s", o, id.Short())
		}
		prev := o.ID
		for _, s := range rep.Successors {
			if err := validNode(s); err != nil {
				return fmt.Errorf("via %s: successor: %w", c.Addr, err)
			}
			if !s.ID.InOpen(prev, o.ID) {
				return bad("successor %s of %s out of ring order", s, o)
			}
			prev = s.ID
		}
	}
	for _, x := range rep.Closer {
		if err := validNode(x); err != nil {
			return fmt.Errorf("via %s: closer node: %w", c.Addr, err)
		}
		if !c.ID.IsZero() && !x.ID.InOpen(c.ID, id) {
			return bad("closer node %s not between it and %s", x, id.Short())
		}
	}
	return nil
}

// refused notes that the answer of c failed its check with err: c is
// skipped for the rest of the walk, as a node that failed is, and the
// refusal is counted.
func (w *walk) refused(c NodeInfo, err error) {
	w.lastErr = err
	w.skipNode(c)
	w.n.m.refused.WithLabelValues(refusedAnswer).Inc()
	w.n.refusals.warn(w.n.log, refusedAnswer, c.ID, "lookup answer refused", "peer", c.String(), "error", err)
}

// pickCandidate returns the unqueried candidate closest before id;
// candidates with an unknown ID (bootstrap addresses) come last.
func (n *Node) pickCandidate(id ID, cands []NodeInfo, queried map[NodeInfo]bool) (NodeInfo, bool) {
	best, found := NodeInfo{}, false
	var bestDist ID
	bestZero := false
	for _, x := range cands {
		if queried[x] || x.Addr == "" || (x.ID == n.self.ID && !x.ID.IsZero()) {
			continue
		}
		zero := x.ID.IsZero()
		d := x.ID.Distance(id)
		better := !found || (bestZero && !zero) || (bestZero == zero && d.Cmp(bestDist) < 0)
		if better {
			best, bestDist, bestZero, found = x, d, zero, true
		}
	}
	return best, found
}

func (n *Node) isSuspect(id ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.suspected(id)
}

// learn adds the nodes named in an answer of from to the cache, and the arcs
// it reveals to the owner cache: the arc of an owner follows the node before
// it, so an owner named by its predecessor, a node's own predecessor and
// every pair of successive successors each give one. The answer has passed
// its check (see checkAnswer).
func (n *Node) learn(from NodeInfo, r Referral) {
	n.mu.Lock()
	defer n.mu.Unlock()
	add := func(x NodeInfo) {
		if x.ID != n.self.ID && x.Addr != "" && !x.ID.IsZero() {
			n.cache.add(x)
		}
	}
	arc := func(owner NodeInfo, pred ID) {
		if owner.ID != n.self.ID && validNode(owner) == nil && pred != owner.ID {
			n.owners.add(owner, pred)
		}
	}
	for _, x := range r.Closer {
		add(x)
	}
	for _, x := range r.Successors {
		add(x)
	}
	if r.Predecessor != nil {
		add(*r.Predecessor)
	}
	if r.Owner != nil {
		add(*r.Owner)
	}
	if from.ID.IsZero() {
		return // a bootstrap address: nothing to anchor an arc on
	}
	if r.Predecessor != nil && validNode(*r.Predecessor) == nil {
		arc(from, r.Predecessor.ID)
	}
	if r.Owner == nil {
		return
	}
	prev := r.Owner.ID
	if !r.OwnerIsSelf {
		arc(*r.Owner, from.ID)
	}
	for _, s := range r.Successors {
		if s.ID == prev || s.ID == from.ID {
			break // a list that wraps around or repeats says nothing more
		}
		arc(s, prev)
		prev = s.ID
	}
}
