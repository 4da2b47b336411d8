package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/dht"
	"github.com/durachord/durachord/internal/ctxutil"
)

// Virtual nodes in the daemon: the node stands at ring.vnodes positions, the
// indexes of its certificate's candidates (crypto.PositionID) recorded in
// its data directory under metaPositions. Position 0, the node ID, is always
// one and enters the ring first (chord.Node.Start, with the whole-ring
// restart rule); the others join through it. Positions the directory does
// not record yet are chosen once position 0 is on the ring, from a walk of
// the ring (chord.ChoosePositions), recorded, and then joined: that is how a
// node first gets them and how a running node's ring.vnodes is raised.

// metaPositions is the store meta key of the recorded position indexes.
const metaPositions = "ring.positions"

// recordedPositions returns the position indexes the data directory
// records: [0] for one that records none (every node before virtual nodes).
func (d *daemon) recordedPositions() ([]int, error) {
	b, err := d.db.Meta(metaPositions)
	if err != nil {
		return nil, fmt.Errorf("data_dir: read the ring positions: %w", err)
	}
	if b == nil {
		return []int{0}, nil
	}
	var idx []int
	if err := json.Unmarshal(b, &idx); err != nil || len(idx) == 0 || idx[0] != 0 {
		return nil, fmt.Errorf("data_dir: the recorded ring positions %q are not a list starting with 0", b)
	}
	for _, i := range idx {
		if i < 0 || i >= crypto.PositionCandidates {
			return nil, fmt.Errorf("data_dir: recorded ring position %d is outside [0, %d)", i, crypto.PositionCandidates)
		}
	}
	return idx, nil
}

// checkPositions refuses a data directory that stands at more positions
// than ring.vnodes.
func checkPositions(recorded []int, vnodes int) error {
	if len(recorded) > vnodes {
		return fmt.Errorf("ring.vnodes is %d, but this data directory stands at %d ring positions: lowering ring.vnodes is not supported (set it back to %d; docs/operations.md, section Virtual nodes)",
			vnodes, len(recorded), len(recorded))
	}
	return nil
}

// newPosition returns the ring member for position index idx, on the
// daemon's client, store and config (ncfg).
func (d *daemon) newPosition(ncfg chord.Config, idx int) (*chord.Node, error) {
	self := chord.NodeInfo{ID: crypto.PositionID(d.id.Leaf, idx), Addr: d.self.Addr}
	tr := d.transport(idx)
	if idx > 0 {
		// The further positions run their rounds less often.
		ncfg = ncfg.FurtherPosition(d.cfg.Ring.VNodes)
		ncfg.MetaKey = fmt.Sprintf("chord.peers.%d", idx)
		ncfg.Metrics = nil // the node's ring metrics are position 0's
		ncfg.Logger = ncfg.Logger.With("position", idx)
	}
	n, err := chord.New(ncfg, self, tr, d.db)
	if err != nil {
		return nil, fmt.Errorf("ring position %d: %w", idx, err)
	}
	n.SetReport(d.report)
	return n, nil
}

// transport returns the transport of calls made from position index idx.
func (d *daemon) transport(idx int) chord.Transport {
	if idx == 0 {
		return d.client
	}
	return d.client.As(idx)
}

// candidates returns the node's candidate positions, by index.
func (d *daemon) candidates() []chord.ID {
	cands := make([]chord.ID, crypto.PositionCandidates)
	for i := range cands {
		cands[i] = crypto.PositionID(d.id.Leaf, i)
	}
	return cands
}

// joinPositions brings every position but the first onto the ring through
// the first, which has joined, then chooses, records and joins the ones
// ring.vnodes adds, then runs the repair loop; run starts each position's
// loops once it has joined. It retries until ctx ends.
func (d *daemon) joinPositions(ctx context.Context, run func(*chord.Node)) error {
	if err := d.joinAll(ctx, run); err != nil {
		return err
	}
	if d.cfg.Ring.VNodes < 2 {
		return nil
	}
	return d.repairLoop(ctx, run)
}

// joinAll is joinPositions but the repair loop.
func (d *daemon) joinAll(ctx context.Context, run func(*chord.Node)) error {
	for _, n := range d.nodes[1:] {
		if err := d.joinThrough(ctx, n); err != nil {
			return err
		}
		run(n)
	}
	want := d.cfg.Ring.VNodes
	if len(d.positionIdx) >= want {
		return nil
	}
	if err := d.waitToChoose(ctx); err != nil {
		return err
	}
	idx, err := d.choosePositions(ctx, want)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(idx)
	if err := d.db.SetMeta(metaPositions, b); err != nil {
		return fmt.Errorf("record the ring positions: %w", err)
	}
	d.log.Info("ring positions chosen", "positions", idx)
	for _, i := range idx[len(d.positionIdx):] {
		if _, err := d.addPosition(ctx, i, run); err != nil {
			return err
		}
	}
	return nil
}

// addPosition brings the position at candidate idx onto the ring through
// position 0 and starts its loops.
func (d *daemon) addPosition(ctx context.Context, idx int, run func(*chord.Node)) (*chord.Node, error) {
	n, err := d.newPosition(d.ncfg, idx)
	if err != nil {
		return nil, err
	}
	d.mux.Add(n.Self().ID, n)
	if err := d.svc.AddPosition(dht.Position{Node: n, Transport: d.transport(idx)}); err != nil {
		d.mux.Remove(n.Self().ID)
		return nil, err
	}
	d.posMu.Lock()
	d.nodes = append(d.nodes, n)
	d.positionIdx = append(d.positionIdx, idx)
	d.posMu.Unlock()
	if err := d.joinThrough(ctx, n); err != nil {
		return nil, err
	}
	run(n)
	return n, nil
}

// Repair (docs/vnodes.md): the positions chosen at join leave the records a
// node owns or holds far less even than its share of the circle, and
// departures change the shares again. So a node at several positions looks
// at the ring every repairEvery stabilise intervals (plus a random part of
// as many) and moves at most one of its positions (never position 0) to
// another of its candidates when that evens out the loads of the ring
// (chord.BestMove), if it is among the most loaded (chord.Overloaded). It keeps
// that pace while the ring is still evening out: until repairQuiet rounds in
// a row saw no move to make, at most repairRounds rounds; then it looks
// every repairLater.
const (
	repairEvery  = 30
	repairQuiet  = 3
	repairRounds = 40
	repairLater  = 10 * time.Minute
)

// repairLoop runs the repair rounds until ctx ends.
func (d *daemon) repairLoop(ctx context.Context, run func(*chord.Node)) error {
	every := time.Duration(repairEvery) * d.cfg.Ring.StabilizeInterval.Duration
	quiet := 0
	for round := 0; ; round++ {
		wait := every + time.Duration(rand.Int64N(int64(every)+1))
		if round >= repairRounds || quiet >= repairQuiet {
			wait = repairLater
		}
		if err := ctxutil.Sleep(ctx, wait); err != nil {
			return err
		}
		busy, err := d.repairOnce(ctx, run)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.log.Warn("ring position move failed; the next round tries again", "error", err)
		}
		if busy || err != nil {
			quiet = 0
		} else {
			quiet++
		}
	}
}

// repairOnce makes the best move, if there is one, on a settled view of the
// ring: a move computed from a walk that missed positions (others still
// joining or moving theirs) would aim at loads that are not there. busy
// reports a round that moved, or found the ring in motion.
func (d *daemon) repairOnce(ctx context.Context, run func(*chord.Node)) (busy bool, err error) {
	ring, ok, err := d.settledRing(ctx)
	if err != nil {
		return false, err
	}
	if !ok {
		return true, nil // the ring is in motion
	}
	repl := d.cfg.Records.DefaultReplication
	if !chord.Overloaded(ring, d.self.Addr, repl) {
		return false, nil
	}
	d.posMu.Lock()
	have := slices.Clone(d.positionIdx)
	d.posMu.Unlock()
	from, to, ok := chord.BestMove(ring, d.self.Addr, d.candidates(), have, repl)
	if !ok {
		return false, nil
	}
	return true, d.movePosition(ctx, from, to, len(ring), run)
}

// settledRing walks the ring twice, settleEvery stabilise intervals apart,
// and returns the positions seen when both walks completed and saw the
// same ones (ok false otherwise: a ring in motion).
func (d *daemon) settledRing(ctx context.Context) ([]chord.NodeInfo, bool, error) {
	walk := func() ([]chord.NodeInfo, error) {
		ring, err := d.walkRing(ctx)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(ring, func(a, b chord.NodeInfo) int { return a.ID.Cmp(b.ID) })
		return ring, nil
	}
	first, err := walk()
	if err != nil {
		return nil, false, ctx.Err()
	}
	if err := ctxutil.Sleep(ctx, time.Duration(settleEvery)*d.cfg.Ring.StabilizeInterval.Duration); err != nil {
		return nil, false, err
	}
	second, err := walk()
	if err != nil || !slices.Equal(first, second) {
		return nil, false, ctx.Err()
	}
	return second, true, nil
}

// movePosition moves the position at positionIdx[from] to candidate to (on a
// walk that saw seen positions): the
// new position joins first, then the old one hands its records over and
// leaves the ring, then the data directory records the change. A crash in
// between leaves the directory at the old positions, and the records the
// new one took in the store, where the next start places them.
func (d *daemon) movePosition(ctx context.Context, from, to, seen int, run func(*chord.Node)) error {
	d.posMu.Lock()
	old, oldIdx := d.nodes[from], d.positionIdx[from]
	d.posMu.Unlock()
	if _, err := d.addPosition(ctx, to, run); err != nil {
		return fmt.Errorf("move ring position %d to %d: %w", oldIdx, to, err)
	}
	lctx, cancel := context.WithTimeout(ctx, d.cfg.ShutdownTimeout.Duration)
	defer cancel()
	if err := d.svc.RemovePosition(lctx, old); err != nil {
		return fmt.Errorf("move ring position %d to %d: hand over: %w", oldIdx, to, err)
	}
	if err := old.Leave(lctx); err != nil {
		d.log.Warn("moved ring position's leave incomplete; its neighbours find out by themselves", "position", oldIdx, "error", err)
	}
	d.mux.Remove(old.Self().ID)
	d.posMu.Lock()
	if stop := d.stops[old]; stop != nil {
		stop()
		delete(d.stops, old)
	}
	i := slices.Index(d.nodes, old)
	d.nodes = slices.Delete(d.nodes, i, i+1)
	d.positionIdx = slices.Delete(d.positionIdx, i, i+1)
	idx := slices.Clone(d.positionIdx)
	d.posMu.Unlock()
	b, _ := json.Marshal(idx)
	if err := d.db.SetMeta(metaPositions, b); err != nil {
		return fmt.Errorf("record the ring positions: %w", err)
	}
	d.moves.Inc()
	d.log.Info("ring position moved to even out the ring", "from", oldIdx, "to", to, "positions", idx, "ring-positions-seen", seen)
	return nil
}

// Nodes started together would choose their positions from the same view
// and take from the same owners, aiming at shares for a ring smaller than
// the one they form. So a node waits until the nodes it sees have stopped
// changing (settleWalks walks in a row, settleEvery stabilise intervals
// apart, at most maxSettle of them), then a random part of chooseJitter
// stabilise intervals, so that nodes of one start choose one after another.
const (
	settleWalks  = 3
	settleEvery  = 3
	maxSettle    = 20
	chooseJitter = 25
)

// waitToChoose waits as above, or until ctx ends.
func (d *daemon) waitToChoose(ctx context.Context) error {
	step := time.Duration(settleEvery) * d.cfg.Ring.StabilizeInterval.Duration
	last, same := -1, 0
	for range maxSettle {
		wctx, cancel := context.WithTimeout(ctx, ringWalkTimeout)
		sts, _ := d.node.Walk(wctx, maxRingWalk)
		cancel()
		n := len(sts)
		if n == last {
			if same++; same >= settleWalks-1 {
				break
			}
		} else {
			last, same = n, 0
		}
		if err := ctxutil.Sleep(ctx, step); err != nil {
			return err
		}
	}
	return ctxutil.Sleep(ctx, time.Duration(rand.Int64N(int64(chooseJitter*d.cfg.Ring.StabilizeInterval.Duration)+1)))
}

// choosePositions walks the ring from position 0 and returns the indexes to
// stand at: those recorded, then the ones ChoosePositions adds.
func (d *daemon) choosePositions(ctx context.Context, want int) ([]int, error) {
	ring, err := d.walkRing(ctx)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		// A walk that came back to a position it had seen has seen the
		// whole ring but this node's own position, which its predecessor
		// does not name yet.
		d.log.Info("ring walk ended early; choosing positions from what it saw", "positions-seen", len(ring), "error", err)
	}
	return chord.ChoosePositions(ring, d.self.Addr, d.candidates(), d.positionIdx, want), nil
}

// walkRing walks the ring from position 0 and returns the positions it saw
// (those before an error too), in walk order.
func (d *daemon) walkRing(ctx context.Context) ([]chord.NodeInfo, error) {
	wctx, cancel := context.WithTimeout(ctx, ringWalkTimeout)
	defer cancel()
	sts, err := d.node.Walk(wctx, maxRingWalk)
	ring := make([]chord.NodeInfo, 0, len(sts))
	for _, st := range sts {
		ring = append(ring, chord.NodeInfo{ID: st.ID, Addr: st.Address})
	}
	return ring, err
}

// joinThrough joins n through position 0, retrying until it succeeds or
// ctx ends.
func (d *daemon) joinThrough(ctx context.Context, n *chord.Node) error {
	return n.StartThrough(ctx, []chord.NodeInfo{d.node.Self()})
}

// positions returns the ring members of the node's positions, position 0
// first.
func (d *daemon) positions() []*chord.Node {
	d.posMu.Lock()
	defer d.posMu.Unlock()
	return append([]*chord.Node(nil), d.nodes...)
}

// nodeStatus is /status: position 0's view (SPEC's fields, and the IDs of
// every position when there are several) and each position's view.
type nodeStatus struct {
	chord.Status
	PositionStatus []chord.Status `json:"position_status"`
}

func (d *daemon) status() nodeStatus {
	st := nodeStatus{Status: d.node.Status()}
	for _, n := range d.positions() {
		st.PositionStatus = append(st.PositionStatus, n.Status())
	}
	return st
}

// leavePositions has every position but the first leave the ring (the first
// has handed the records over and left already).
func (d *daemon) leavePositions(ctx context.Context) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range d.positions()[1:] {
		wg.Go(func() {
			if err := n.Leave(ctx); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("position %s: %w", n.Self().ID.Short(), err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
