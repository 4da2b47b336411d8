package chord

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Run runs the periodic rounds (stabilise, fix fingers, check predecessor,
// probe evicted peers) until ctx ends, and returns nil after every loop has
// stopped. Each loop starts after a random stagger within its interval and
// runs one round per tick under RoundTimeout.
func (n *Node) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	loops := []struct {
		name     string
		interval time.Duration
		round    func(context.Context) error
	}{
		{"stabilize", n.cfg.StabilizeInterval, n.Stabilize},
		{"fix-fingers", n.cfg.FixFingersInterval, n.FixFingers},
		{"check-predecessor", n.cfg.CheckPredecessorInterval, n.CheckPredecessor},
		{"probe", n.cfg.ProbeInterval, n.ProbeEvicted},
	}
	for _, l := range loops {
		n.mu.Lock()
		stagger := time.Duration(n.rng.Int64N(int64(l.interval)))
		n.mu.Unlock()
		wg.Go(func() { n.loop(ctx, l.name, stagger, l.interval, l.round) })
	}
	wg.Wait()
	return nil
}

func (n *Node) loop(ctx context.Context, name string, stagger, interval time.Duration, round func(context.Context) error) {
	t := time.NewTimer(stagger)
	select {
	case <-ctx.Done():
		t.Stop()
		return
	case <-t.C:
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, n.cfg.RoundTimeout)
		if err := round(rctx); err != nil && ctx.Err() == nil {
			n.log.Debug("round failed", "round", name, "error", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Joined reports whether the node has joined a ring (and not left it): its
// tables can route. Ready says more: its successor answers too.
func (n *Node) Joined() bool { return n.joined() }

func (n *Node) joined() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.state == stateJoined
}

// Stabilize runs one stabilise round: ask the first live successor for its
// predecessor and successor list, adopt that predecessor if it sits between
// this node and the successor, rebuild the successor list and notify the
// successor. A successor that fails SuspectAfter calls in a row is evicted and
// the next one tried.
func (n *Node) Stabilize(ctx context.Context) error {
	if !n.joined() {
		return nil
	}
	n.m.stabilizeRounds.Inc()
	defer n.savePeers()
	for range n.cfg.SuccessorListLen + fingerCount {
		n.mu.Lock()
		s := n.succs[0]
		pred, hasPred := n.pred, n.hasPred
		n.mu.Unlock()
		if s.ID == n.self.ID {
			if hasPred && pred.ID != n.self.ID {
				// Alone but notified: the predecessor is also the successor.
				n.setSuccessors([]NodeInfo{pred})
				continue
			}
			n.markSuccOK()
			return nil
		}
		var nb Neighbours
		err, evict := n.callConfirm(ctx, s, methodNeighbours, nil, &nb)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			if !evict {
				return err
			}
			n.evictSuccessor(s)
			continue
		}
		if x := nb.Predecessor; x != nil && x.Addr != "" && x.ID != n.self.ID && x.ID.InOpen(n.self.ID, s.ID) {
			var nbx Neighbours
			if err := n.call(ctx, *x, methodNeighbours, nil, &nbx); err == nil {
				n.noteSuccess(*x)
				s, nb = *x, nbx
			} else if isPeerFailure(err) {
				n.noteFailure(*x)
			}
		}
		// The successor's list ends where it reaches this node: past that
		// it wraps around the ring, and stale entries would circulate.
		rest := nb.Successors
		if i := slices.IndexFunc(rest, func(x NodeInfo) bool { return x.ID == n.self.ID }); i >= 0 {
			rest = rest[:i]
		}
		// Only entries in ring order after the successor are kept: s
		// answered, the rest are its word.
		next, dropped := n.ringOrder(append([]NodeInfo{s}, rest...))
		if dropped > 0 {
			n.m.refused.WithLabelValues(refusedOrder).Add(float64(dropped))
			n.refusals.warn(n.log, refusedOrder, s.ID, "successor list out of ring order", "peer", s.String(), "dropped", dropped)
		}
		next = n.checkList(ctx, next)
		n.setSuccessors(next)
		n.markSuccOK()
		if err := n.call(ctx, s, methodNotify, notifyArgs{Node: n.self}, nil); err != nil {
			n.log.Debug("notify failed", "peer", s.String(), "error", err)
		}
		// The successor's predecessor still precedes this node: it has not
		// heard of this node yet (a fresh join). Tell it at once rather than
		// at its next stabilise round.
		if p := nb.Predecessor; p != nil && p.Addr != "" && p.ID != n.self.ID && p.ID != s.ID && n.self.ID.InOpen(p.ID, s.ID) {
			if err := n.call(ctx, *p, methodNotify, notifyArgs{Node: n.self, Role: roleSuccessor}, nil); err != nil {
				n.log.Debug("notify predecessor failed", "peer", p.String(), "error", err)
			}
		}
		return nil
	}
	return nil
}

// checkList returns list (a successor and the list it gave, in ring order)
// as this node adopts it. The nodes it names that this node does not know
// yet are adopted only if they answer a ping, so that a successor that
// names nodes nobody serves gets none of them adopted; the nodes of this
// node's own list past the successor that the successor's list leaves out
// are kept if they answer, so that a successor that leaves live nodes out
// does not cut this node off from them (a node that died does not answer,
// and goes). On a settled ring nobody is asked.
func (n *Node) checkList(ctx context.Context, list []NodeInfo) []NodeInfo {
	s := list[0]
	n.mu.Lock()
	known := slices.Clone(n.succs)
	n.mu.Unlock()
	var fresh, left []NodeInfo
	for _, x := range list[1:] {
		if !hasNode(known, x.ID) {
			fresh = append(fresh, x)
		}
	}
	for _, x := range known {
		if x.ID != n.self.ID && x.ID.InOpen(s.ID, n.self.ID) && !hasNode(list, x.ID) {
			left = append(left, x)
		}
	}
	if len(fresh) == 0 && len(left) == 0 {
		return list
	}
	_, ok := n.answering(ctx, nil, append(fresh, left...))
	out := slices.DeleteFunc(slices.Clone(list), func(x NodeInfo) bool {
		return x.ID != s.ID && hasNode(fresh, x.ID) && !hasNode(ok, x.ID)
	})
	for _, x := range left {
		if hasNode(ok, x.ID) {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(a, b NodeInfo) int { return n.self.ID.Distance(a.ID).Cmp(n.self.ID.Distance(b.ID)) })
	return n.successorList(out)
}

func (n *Node) markSuccOK() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.lastSuccOK = time.Now()
}

// evictSuccessor drops s from the successor list. When the list runs empty
// the known fingers (nearest first) stand in until stabilisation corrects
// them; with none left the node is alone.
func (n *Node) evictSuccessor(s NodeInfo) {
	n.m.evictions.Inc()
	n.log.Warn("successor evicted", "peer", s.String())
	n.mu.Lock()
	n.rememberLocked(s)
	next := slices.DeleteFunc(slices.Clone(n.succs), func(x NodeInfo) bool { return x.ID == s.ID })
	if len(next) == 0 {
		for _, f := range n.distinctFingersLocked() {
			if f.ID != s.ID && !n.suspected(f.ID) {
				next = append(next, f)
			}
		}
		next = n.successorList(next)
	}
	n.mu.Unlock()
	n.setSuccessors(next)
}

// FixFingers runs one fix-fingers round: it looks up the owner of the next
// finger's start and points that finger, and every following finger whose
// start the same owner covers, at it.
func (n *Node) FixFingers(ctx context.Context) error {
	n.mu.Lock()
	if n.state != stateJoined {
		n.mu.Unlock()
		return nil
	}
	i := n.nextFinger
	succ := n.succs[0]
	n.mu.Unlock()
	start := n.self.ID.AddPow2(i)
	var owner NodeInfo
	if succ.ID == n.self.ID || start.InHalfOpen(n.self.ID, succ.ID) {
		owner = succ
	} else {
		res, err := n.lookup(ctx, start, nil, false)
		if err != nil {
			n.mu.Lock()
			n.nextFinger = (i + 1) % fingerCount
			n.mu.Unlock()
			return err
		}
		owner = res.Owner
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fingers[i] = owner
	j := i + 1
	if owner.ID != n.self.ID {
		for ; j < fingerCount && n.self.ID.AddPow2(j).InHalfOpen(n.self.ID, owner.ID); j++ {
			n.fingers[j] = owner
		}
	} else {
		// Alone (or the arc up to self): every later finger is self too.
		for ; j < fingerCount; j++ {
			n.fingers[j] = owner
		}
	}
	n.nextFinger = j % fingerCount
	return nil
}

// CheckPredecessor runs one check-predecessor round: ping the predecessor and
// forget it after SuspectAfter failed pings in a row.
func (n *Node) CheckPredecessor(ctx context.Context) error {
	n.mu.Lock()
	p, ok := n.pred, n.hasPred && n.state == stateJoined
	n.mu.Unlock()
	if !ok || p.ID == n.self.ID {
		return nil
	}
	err, evict := n.callConfirm(ctx, p, methodPing, nil, nil)
	if !evict {
		return err
	}
	n.m.evictions.Inc()
	n.log.Warn("predecessor evicted", "peer", p.String())
	n.mu.Lock()
	if !n.hasPred || n.pred.ID != p.ID {
		n.mu.Unlock()
		return err
	}
	n.hasPred = false
	n.rememberLocked(p)
	ch, fns := n.changeLocked()
	n.mu.Unlock()
	n.fire(ch, fns)
	return err
}

// ProbeEvicted runs one probe round: up to ProbeCount remembered (evicted)
// peers are asked, by a lookup through them, for this node's successor in
// their ring. A closer successor than the current one is adopted and
// notified, which merges rings that a partition split. Peers remembered for
// longer than RememberFor are forgotten; a peer that answers is forgotten too
// once it is in this node's ring again.
func (n *Node) ProbeEvicted(ctx context.Context) error {
	n.mu.Lock()
	if n.state != stateJoined {
		n.mu.Unlock()
		return nil
	}
	var peers []NodeInfo
	for id, r := range n.evicted {
		if time.Since(r.at) > n.cfg.RememberFor {
			delete(n.evicted, id)
			continue
		}
		peers = append(peers, r.info)
	}
	slices.SortFunc(peers, func(a, b NodeInfo) int { return a.ID.Cmp(b.ID) })
	n.rng.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
	peers = peers[:min(len(peers), n.cfg.ProbeCount)]
	n.mu.Unlock()
	target := n.self.ID.AddPow2(0)
	for _, p := range peers {
		res, err := n.lookup(ctx, target, []NodeInfo{p}, false)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			continue
		}
		n.mu.Lock()
		succ := n.succs[0]
		n.mu.Unlock()
		o := res.Owner
		if o.ID == n.self.ID || o.ID == succ.ID {
			n.forget(p)
			continue
		}
		if succ.ID == n.self.ID || o.ID.InOpen(n.self.ID, succ.ID) {
			if !n.answers(ctx, o, "successor") {
				continue
			}
			n.m.probeMerges.Inc()
			n.log.Info("found closer successor through remembered peer", "peer", p.String(), "successor", o.String())
			n.mu.Lock()
			next := n.successorList(append([]NodeInfo{o}, n.succs...))
			delete(n.failures, o.ID)
			n.mu.Unlock()
			n.setSuccessors(next)
			if err := n.call(ctx, o, methodNotify, notifyArgs{Node: n.self}, nil); err != nil {
				n.log.Debug("notify failed", "peer", o.String(), "error", err)
			}
		}
	}
	return nil
}

func (n *Node) forget(p NodeInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.evicted, p.ID)
}
