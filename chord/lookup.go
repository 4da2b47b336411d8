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
	n.mu.Lock()
	state := n.state
	n.mu.Unlock()
	if state != stateJoined {
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
	var cands []NodeInfo
	var lastOK NodeInfo // the last node that answered (self: its own tables)
	if start == nil {
		r := n.answer(id, 2*n.cfg.SuccessorListLen, nil)
		if r.Owner != nil {
			return LookupResult{Owner: *r.Owner, Successors: r.Successors}, nil
		}
		cands = r.Closer
		lastOK = n.self
	} else {
		cands = slices.Clone(start)
	}
	queried := make(map[NodeInfo]bool)
	var skip []ID         // nodes found dead or suspected by this lookup
	var passed []NodeInfo // suspects skipped without a call
	lastOKSkips := 0      // len(skip) when lastOK answered
	hops := 0
	var lastErr error
	for {
		c, ok := n.pickCandidate(id, cands, queried)
		if ok && !c.ID.IsZero() && len(skip) < maxSkip && n.isSuspect(c.ID) {
			// Known to have failed lately: skip it without waiting on it,
			// and let the next node asked skip it too.
			queried[c] = true
			skip = append(skip, c.ID)
			passed = append(passed, c)
			continue
		}
		if lastOK.Addr != "" && len(skip) > lastOKSkips && (!ok || lastOK.ID.Distance(id).Cmp(c.ID.Distance(id)) < 0) {
			// The last node that answered is closer than any candidate
			// left: ask it again, now that it can skip the dead nodes.
			c, ok = lastOK, true
			if c.ID == n.self.ID {
				// That was this node's own tables: no call needed.
				lastOKSkips = len(skip)
				r := n.answer(id, 2*n.cfg.SuccessorListLen, skip)
				if r.Owner != nil {
					return LookupResult{Owner: *r.Owner, Successors: r.Successors, Hops: hops}, nil
				}
				cands = append(cands, r.Closer...)
				continue
			}
		}
		if !ok && len(passed) > 0 {
			// Nothing else left: try the suspects after all, nearest first.
			c, ok = passed[len(passed)-1], true
			passed = passed[:len(passed)-1]
			skip = slices.DeleteFunc(skip, func(x ID) bool { return x == c.ID })
		}
		if !ok {
			if lastErr == nil {
				lastErr = errors.New("no candidate left")
			}
			return LookupResult{Hops: hops}, fmt.Errorf("%w: %s after %d hops: %w", ErrLookupFailed, id.Short(), hops, lastErr)
		}
		if hops >= n.cfg.MaxHops {
			return LookupResult{Hops: hops}, fmt.Errorf("%w: %s: hop limit %d", ErrLookupFailed, id.Short(), n.cfg.MaxHops)
		}
		queried[c] = true
		hops++
		var rep findReply
		err := n.call(ctx, c, methodFindSuccessor, findArgs{ID: &id, Skip: skip}, &rep)
		if err != nil {
			if ctx.Err() != nil {
				return LookupResult{Hops: hops}, fmt.Errorf("lookup %s via %s: %w", id.Short(), c.Addr, err)
			}
			lastErr = fmt.Errorf("via %s: %w", c.Addr, err)
			if !c.ID.IsZero() && isPeerFailure(err) {
				n.noteFailure(c)
				if len(skip) < maxSkip {
					skip = append(skip, c.ID)
				}
			} else if !c.ID.IsZero() && errors.Is(err, ErrNotReady) && len(skip) < maxSkip {
				// Alive but not (yet) in the ring, as a node that is
				// restarting: route around it without holding it against it.
				skip = append(skip, c.ID)
			}
			continue
		}
		if !c.ID.IsZero() {
			n.noteSuccess(c)
			lastOK, lastOKSkips = c, len(skip)
		}
		if learn {
			n.learn(rep)
		}
		if rep.Owner != nil {
			if err := validNode(*rep.Owner); err != nil {
				lastErr = fmt.Errorf("via %s: %w", c.Addr, err)
				continue
			}
			return LookupResult{Owner: *rep.Owner, Successors: rep.Successors, Hops: hops}, nil
		}
		for _, x := range rep.Closer {
			// Only nodes strictly between the queried node and id make
			// progress; a bootstrap's ID is unknown, so anything goes.
			if x.Addr != "" && (c.ID.IsZero() || x.ID.InOpen(c.ID, id)) {
				cands = append(cands, x)
			}
		}
	}
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

// learn adds the nodes named in a reply to the cache.
func (n *Node) learn(r findReply) {
	n.mu.Lock()
	defer n.mu.Unlock()
	add := func(x NodeInfo) {
		if x.ID != n.self.ID && x.Addr != "" && !x.ID.IsZero() {
			n.cache.add(x)
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
}
