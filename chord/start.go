package chord

import (
	"context"
	"errors"
	"slices"
	"time"
)

const (
	// rejoinGrace is how long a restarted node tries to rejoin through the
	// peers it remembers before it starts a ring of its own.
	rejoinGrace = 30 * time.Second
	// startBackoff is the pause after Start's first failed attempt; it
	// doubles after each failure up to maxStartBackoff.
	startBackoff    = 200 * time.Millisecond
	maxStartBackoff = 5 * time.Second
)

// Start enters a ring: through the bootstrap addresses when given, else
// through the peers remembered from the last run, else as the first node of
// a new ring. It retries, with a backoff from 200 ms doubling to 5 s and each
// attempt bounded by LookupTimeout + CallTimeout, until it succeeds or ctx
// ends (it then returns ctx's error), so that nodes started together find
// each other whatever their order.
//
// When a whole ring restarts at once, no remembered peer has joined yet and
// every rejoin fails. The node with the lowest ID among itself and the peers
// it saved then starts the ring: every other node saved its predecessor,
// which is lower, so exactly one node does so, and the rest join it. A node
// that has not rejoined within rejoinGrace (30 s) starts a ring too. Either
// way it keeps probing the peers it saved (RememberSaved), and merges into
// their ring once they answer, as long as Run runs its probe round.
func (n *Node) Start(ctx context.Context, bootstrap []string) error {
	started := time.Now()
	attempt := func(ctx context.Context) error {
		if len(bootstrap) > 0 {
			return n.Join(ctx, bootstrap)
		}
		err := n.Rejoin(ctx)
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrNoPeers) {
			n.log.Info("no bootstrap peer and none remembered: starting a new ring")
			return n.Create()
		}
		seed, serr := n.isSeed()
		switch {
		case serr != nil:
			return errors.Join(err, serr)
		case seed:
			n.log.Info("no remembered peer has joined and this node has the lowest ID: starting the ring", "rejoin-error", err)
		case time.Since(started) > rejoinGrace:
			n.log.Warn("no remembered peer answered in time: starting a ring and probing them", "waited", rejoinGrace, "rejoin-error", err)
		default:
			return err
		}
		if err := n.Create(); err != nil {
			return err
		}
		return n.RememberSaved()
	}
	return n.retryJoin(ctx, attempt)
}

// StartThrough enters the ring through peers (JoinThrough), retrying as
// Start does: a further position of a node joins through one of its others.
func (n *Node) StartThrough(ctx context.Context, peers []NodeInfo) error {
	return n.retryJoin(ctx, func(ctx context.Context) error { return n.JoinThrough(ctx, peers) })
}

// retryJoin runs attempt, each bounded by LookupTimeout + CallTimeout, with
// Start's backoff until it succeeds or ctx ends.
func (n *Node) retryJoin(ctx context.Context, attempt func(context.Context) error) error {
	backoff := startBackoff
	for {
		actx, cancel := context.WithTimeout(ctx, n.cfg.LookupTimeout+n.cfg.CallTimeout)
		err := attempt(actx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n.log.Warn("join failed; retrying", "error", err, "retry-in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		backoff = min(2*backoff, maxStartBackoff)
	}
}

// SetSeedRule replaces the whole-ring restart rule of Start (is this node's
// ID below every saved peer's) with fn, for a process at several positions
// (LowestOfAll over them). Call it before Start.
func (n *Node) SetSeedRule(fn func() (bool, error)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seedRule = fn
}

func (n *Node) isSeed() (bool, error) {
	n.mu.Lock()
	fn := n.seedRule
	n.mu.Unlock()
	if fn != nil {
		return fn()
	}
	return n.lowestOfSaved()
}

// LowestOfAll is the whole-ring restart rule for a process that stands at
// the positions ps (virtual nodes; its SetSeedRule): it starts the ring if
// its lowest position is below every peer that any of its positions saved
// (its own positions aside). Each other process's lowest position saved its
// predecessor, which is lower, so exactly one process of a ring restarted
// at once starts it.
func LowestOfAll(ps []*Node) (bool, error) {
	if len(ps) == 0 {
		return false, nil
	}
	mine := make([]ID, len(ps))
	low := ps[0].self.ID
	for i, n := range ps {
		mine[i] = n.self.ID
		if mine[i].Cmp(low) < 0 {
			low = mine[i]
		}
	}
	for _, n := range ps {
		peers, err := n.SavedPeers()
		if err != nil {
			return false, err
		}
		for _, p := range peers {
			if !slices.Contains(mine, p.ID) && p.ID.Cmp(low) < 0 {
				return false, nil
			}
		}
	}
	return true, nil
}

// lowestOfSaved reports whether this node's ID is below every saved peer's.
func (n *Node) lowestOfSaved() (bool, error) {
	peers, err := n.SavedPeers()
	if err != nil {
		return false, err
	}
	for _, p := range peers {
		if p.ID != n.self.ID && p.ID.Cmp(n.self.ID) < 0 {
			return false, nil
		}
	}
	return true, nil
}
