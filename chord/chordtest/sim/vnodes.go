package main

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto"
)

// Rings of virtual nodes (-vnodes V > 1, sizes -vnodes-n): N physical nodes
// join one at a time, each at V ring positions at its one address, as the
// daemon stands (cmd/dhtd): position 0 first, through a random node, then the
// others, chosen with chord.ChoosePositions from the ring so far (as the
// balance measurement chooses them) and joined through position 0. Each
// position is a chord.Node of its own; those but position 0 run their rounds
// slower (positionConfig). On such a ring, and on the ring of the same N
// nodes at position 0 only (V = 1), the simulator measures cold lookups from
// a random physical node, started at its position nearest before the key (as
// the records layer routes a request, dht's routeFrom) and at its position
// 0, and the ring maintenance calls per physical node per minute.

// physical is a simulated physical node: one address, its ring positions,
// position 0 first.
type physical struct {
	addr  string
	nodes []*chord.Node
}

// nearestBefore returns the position of p a request for key starts from:
// the one nearest before it (the rule of dht's routeFrom).
func (p *physical) nearestBefore(key chord.ID) *chord.Node {
	best := p.nodes[0]
	bestDist := best.Self().ID.Distance(key)
	for _, n := range p.nodes[1:] {
		if d := n.Self().ID.Distance(key); d.Cmp(bestDist) < 0 {
			best, bestDist = n, d
		}
	}
	return best
}

// standsAt reports whether id is one of p's positions.
func (p *physical) standsAt(id chord.ID) bool {
	for _, n := range p.nodes {
		if n.Self().ID == id {
			return true
		}
	}
	return false
}

// positionConfig returns the config of position idx (0: the node ID) of a
// node at v positions, as cmd/dhtd's newPosition sets it
// (chord.Config.FurtherPosition).
func positionConfig(cfg chord.Config, v, idx int) chord.Config {
	if idx == 0 {
		return cfg
	}
	return cfg.FurtherPosition(v)
}

// configOf returns the config of the node at position id.
func (s *sim) configOf(id chord.ID) chord.Config {
	if c, ok := s.cfgs[id]; ok {
		return c
	}
	return s.cfg
}

// physicalNodes returns the positions of each physical node: one each but
// on a ring built by buildVNodes.
func (s *sim) physicalNodes() [][]chord.ID {
	var out [][]chord.ID
	if s.phys == nil {
		for _, id := range s.ring {
			out = append(out, []chord.ID{id})
		}
		return out
	}
	for _, p := range s.phys {
		ids := make([]chord.ID, len(p.nodes))
		for i, n := range p.nodes {
			ids[i] = n.Self().ID
		}
		out = append(out, ids)
	}
	return out
}

// buildVNodes makes a stable ring of size physical nodes of v positions
// each: sequential joins, one position at a time, each followed by a
// stabilise round of its successor-list-length predecessors as in build,
// then the settling rounds of build. A node's candidate positions derive
// from a random key as a certificate's do; its first position joins
// through a random node, the others through the first. With v = 1 the
// ring is that of the same nodes (the same random draws) at position 0
// only.
func (s *sim) buildVNodes(size, v int) error {
	var ring []chord.NodeInfo // every position so far
	for range size {
		key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, s.rng.Uint64()), s.rng.Uint64())
		cands := positionsOf(key, crypto.PositionCandidates)
		p := &physical{addr: "sim-" + cands[0].String()[:16]}
		idx := chord.ChoosePositions(ring, p.addr, cands, []int{0}, v)
		if len(idx) != v {
			return fmt.Errorf("node %s: %d positions chosen, want %d", p.addr, len(idx), v)
		}
		for k, i := range idx {
			info := chord.NodeInfo{ID: cands[i], Addr: p.addr}
			n, err := s.newPosition(info, v, k)
			if err != nil {
				return err
			}
			switch {
			case len(s.ring) == 0:
				err = n.Create()
			case k == 0:
				via := s.randomNode()
				err = n.Join(s.ctx, []string{via.Self().Addr})
			default:
				err = n.JoinThrough(s.ctx, []chord.NodeInfo{p.nodes[0].Self()})
			}
			if err != nil {
				return fmt.Errorf("join position %d of %s: %w", k, p.addr, err)
			}
			p.nodes = append(p.nodes, n)
			ring = append(ring, info)
			s.insert(n)
			s.last = info.ID
			s.stabilizeBefore(info.ID)
		}
		s.phys = append(s.phys, p)
	}
	s.settle()
	return nil
}

// newPosition makes the ring member at info, position k of a node at v
// positions, served at info.Addr.
func (s *sim) newPosition(info chord.NodeInfo, v, k int) (*chord.Node, error) {
	cfg := positionConfig(s.cfg, v, k)
	tr := countingTransport{Transport: s.net.Transport(info), self: info, c: s.calls}
	n, err := chord.New(cfg, info, tr, nil)
	if err != nil {
		return nil, err
	}
	if k == 0 {
		s.net.Listen(info, n)
		return n, nil
	}
	if s.cfgs == nil {
		s.cfgs = make(map[chord.ID]chord.Config)
	}
	s.cfgs[info.ID] = cfg
	s.net.ListenAt(info, n)
	return n, nil
}

// vnodeHops are the cold lookups of a ring of virtual nodes, each of one
// random key from one random physical node, started twice.
type vnodeHops struct {
	// near started at the position nearest before the key, first at
	// position 0.
	near, first stats
	// localOwner are the near lookups whose owner is another position of
	// the requesting node.
	localOwner stats
}

// measureVNodes does count cold lookups (each start's cache emptied first)
// on a ring built by buildVNodes.
func (s *sim) measureVNodes(count int) vnodeHops {
	var h vnodeHops
	for range count {
		p := s.phys[s.rng.IntN(len(s.phys))]
		key := s.randomID()
		owner := s.owner(key)
		near := p.nearestBefore(key)
		near.ForgetCache()
		res, err := near.Lookup(s.ctx, key)
		ok := err == nil && res.Owner.ID == owner
		h.near.add(res.Hops, ok, err)
		if p.standsAt(owner) && owner != near.Self().ID {
			h.localOwner.add(res.Hops, ok, err)
		}
		first := p.nodes[0]
		first.ForgetCache()
		res, err = first.Lookup(s.ctx, key)
		h.first.add(res.Hops, err == nil && res.Owner.ID == owner, err)
	}
	return h
}

// vnodeRow is one ring size's virtual-node figures.
type vnodeRow struct {
	n, v   int
	hops   vnodeHops // the ring at v positions
	hops1  stats     // the same nodes at position 0 only
	maint  maintStats
	maint1 maintStats
}

// measureVNodeRing builds the ring of n physical nodes at position 0 only,
// then at v positions, and measures each.
func measureVNodeRing(o options, n, v int) (vnodeRow, error) {
	row := vnodeRow{n: n, v: v}
	for _, at := range []int{1, v} {
		start := time.Now()
		s, err := newSim(o, n)
		if err != nil {
			return row, err
		}
		if err := s.buildVNodes(n, at); err != nil {
			return row, err
		}
		if bad := s.checkRing(); bad != 0 {
			fmt.Printf("%-6d V=%d ring built with %d positions in a wrong state\n", n, at, bad)
		}
		h := s.measureVNodes(o.lookups)
		var m maintStats
		if o.maintFor > 0 {
			m = s.maintain(o.maintFor)
		}
		if at == 1 {
			row.hops1, row.maint1 = h.near, m
		} else {
			row.hops, row.maint = h, m
		}
		fmt.Fprintf(os.Stderr, "vnodes N=%d V=%d (%d positions) done in %v\n", n, at, len(s.ring), time.Since(start).Round(time.Millisecond))
	}
	return row, nil
}

// vnodeHopsTarget is the most mean hops a cold lookup may take on a ring of
// n physical nodes at any number of positions.
func vnodeHopsTarget(n int) float64 { return 0.5*math.Log2(float64(n)) + 1 }

// vnodeMaintRatio is the most a node's maintenance calls at V positions may
// be, as a multiple of those at one.
const vnodeMaintRatio = 2

func passMiss(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func printVNodeHops(rows []vnodeRow) {
	fmt.Println("# virtual nodes: cold lookups (empty cache) of random keys from random physical nodes; hops = remote positions queried")
	fmt.Println("# near: started at the node's position nearest before the key (as requests start); pos-0: at its position 0; V=1: the same nodes at position 0 only")
	fmt.Printf("%-6s %3s %8s %6s %6s %6s %9s  %-26s %s\n", "N", "V", "lookups", "near", "pos-0", "V=1", "correct", "target", "result")
	for _, r := range rows {
		h := r.hops
		target := vnodeHopsTarget(r.n)
		all := h.near.count + h.first.count
		correct := 0.0
		if all > 0 {
			correct = 100 * float64(h.near.correct+h.first.correct) / float64(all)
		}
		ok := h.near.count > 0 && h.near.mean() <= target && h.near.correct+h.first.correct == all
		fmt.Printf("%-6d %3d %8d %6.2f %6.2f %6.2f %8.2f%%  %-26s %s\n", r.n, r.v, h.near.count, h.near.mean(), h.first.mean(),
			r.hops1.mean(), correct, fmt.Sprintf("near<=%.2f, 100%% correct", target), passMiss(ok))
	}
	for _, r := range rows {
		if lo := r.hops.localOwner; lo.count > 0 {
			fmt.Printf("#   N=%d: %d near lookups (%.1f%%) were for a key owned by another position of the requesting node: %.2f hops mean\n",
				r.n, lo.count, 100*float64(lo.count)/float64(r.hops.near.count), lo.mean())
		}
	}
}

func printVNodeMaint(rows []vnodeRow, d time.Duration) {
	cfg := chord.DefaultConfig()
	fmt.Printf("# virtual nodes: ring maintenance calls per physical node per minute (sent), over %v of virtual time with no requests\n", d)
	fmt.Printf("# position 0 at the intervals of the maintenance table; the further positions stabilise every V*%v, check the predecessor every V*%v, fix a finger every 2V*%v (as dhtd)\n",
		cfg.StabilizeInterval, cfg.CheckPredecessorInterval, cfg.FixFingersInterval)
	fmt.Println("# own-addr: of the calls at V, those to the node's own address (from one of its positions to another)")
	fmt.Printf("%-6s %3s %9s %9s %6s %8s  %-10s %s\n", "N", "V", "V=1", "at V", "ratio", "own-addr", "target", "result")
	for _, r := range rows {
		one, _ := r.maint1.perMinute(r.maint1.sent, "")
		atV, _ := r.maint.perMinute(r.maint.sent, "")
		ratio := 0.0
		if one > 0 {
			ratio = atV / one
		}
		own := 0.0
		if r.maint.n > 0 && r.maint.d > 0 {
			own = float64(r.maint.local) / float64(r.maint.n) / r.maint.d.Minutes()
		}
		fmt.Println(strings.TrimRight(fmt.Sprintf("%-6d %3d %9.2f %9.2f %6.2f %8.2f  %-10s %s", r.n, r.v, one, atV, ratio, own,
			fmt.Sprintf("ratio<=%d", vnodeMaintRatio), passMiss(one > 0 && ratio <= vnodeMaintRatio)), " "))
	}
}
