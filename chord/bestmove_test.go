package chord

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// referenceBestMove is BestMove the straightforward way: the loads of the
// ring after each move counted afresh, and scored as BestMove says.
func referenceBestMove(ring []NodeInfo, self string, cands []ID, have []int, repl int) (from, to int, ok bool) {
	order := referenceOrder(ring, self)
	best := referenceScore(ring, repl, order) * (1 - gain(addresses(ring)))
	for j := 1; j < len(have); j++ {
		old := cands[have[j]]
		base := slices.DeleteFunc(slices.Clone(ring), func(n NodeInfo) bool { return n.ID == old })
		try := append(base, NodeInfo{})
		for ci, c := range cands {
			if slices.Contains(have, ci) || slices.ContainsFunc(base, func(n NodeInfo) bool { return n.ID == c }) {
				continue
			}
			try[len(try)-1] = NodeInfo{ID: c, Addr: self}
			if s := referenceScore(try, repl, order); s < best {
				best, from, to, ok = s, j, ci, true
			}
		}
	}
	return from, to, ok
}

// referenceOrder returns the addresses in the order they first appear on
// the ring sorted by ID (then address), self last if it is not on it.
func referenceOrder(ring []NodeInfo, self string) []string {
	ring = slices.Clone(ring)
	slices.SortFunc(ring, cmpNode)
	var order []string
	for _, n := range ring {
		if !slices.Contains(order, n.Addr) {
			order = append(order, n.Addr)
		}
	}
	if !slices.Contains(order, self) {
		order = append(order, self)
	}
	return order
}

// referenceScore returns the load score of a ring: each address's terms
// in the order given, added pairwise.
func referenceScore(ring []NodeInfo, repl int, order []string) float64 {
	ring = slices.Clone(ring)
	slices.SortFunc(ring, cmpNode)
	top := func(i int) uint64 { return binary.BigEndian.Uint64(ring[i].ID[:8]) }
	primary, holder := map[string]u128{}, map[string]u128{}
	var totalP, totalH u128
	k := len(ring)
	for i, n := range ring {
		arc := u128{0, top(i) - top((i+k-1)%k)}
		if k == 1 {
			arc = u128{1, 0}
		}
		primary[n.Addr] = primary[n.Addr].add(arc)
		totalP = totalP.add(arc)
		var seen []string
		for j := 0; j < k && len(seen) < repl; j++ {
			if a := ring[(i+j)%k].Addr; !slices.Contains(seen, a) {
				seen = append(seen, a)
				holder[a] = holder[a].add(arc)
				totalH = totalH.add(arc)
			}
		}
	}
	terms := func(m map[string]u128, total u128) float64 {
		xs := make([]float64, len(order))
		for i, a := range order {
			if v, ok := m[a]; ok {
				xs[i] = scoreTerm(v, meanLoad(total, len(m)))
			}
		}
		return pairwiseSum(xs)
	}
	return terms(primary, totalP) + terms(holder, totalH)
}

// pairwiseSum adds xs (padded with zeros to a power of two) in pairs, the
// pairs in pairs, and so on.
func pairwiseSum(xs []float64) float64 {
	n := 1
	for n < len(xs) {
		n *= 2
	}
	ys := make([]float64, n)
	copy(ys, xs)
	for ; n > 1; n /= 2 {
		for i := range n / 2 {
			ys[i] = ys[2*i] + ys[2*i+1]
		}
	}
	return ys[0]
}

// randomID returns a random ID whose top 64 bits are top.
func randomID(rng *rand.Rand, top uint64) ID {
	var id ID
	binary.BigEndian.PutUint64(id[:8], top)
	for i := 8; i < IDBytes; i += 8 {
		binary.BigEndian.PutUint64(id[i:], rng.Uint64())
	}
	return id
}

// moveCase is a ring and one node on it that looks for a move.
type moveCase struct {
	ring  []NodeInfo
	self  string
	cands []ID
	have  []int
	repl  int
}

// randomMoveCase returns a ring of 1 to 40 nodes of 2 to 6 positions each,
// the moving node's candidates and positions, replication 1 to 4. Some
// rings have the moving node's candidates in one narrow arc (its positions
// next to each other), some have positions on a coarse grid (equal top 64
// bits, arcs of length 0, and rings whose arcs do not add up to the
// circle), and some have another node standing at one of the moving node's
// candidates. The ring comes sorted, sorted from some position on (as a walk
// gives it) or shuffled.
func randomMoveCase(rng *rand.Rand) moveCase {
	n, v, repl := 1+rng.IntN(40), 2+rng.IntN(5), 1+rng.IntN(4)
	if rng.IntN(4) == 0 {
		n = 1 + rng.IntN(3) // one node holds everything, or each holds all
	}
	mode := rng.IntN(5) // 0: self's candidates in one arc, 1: coarse grid, else random
	pos := func(self bool) ID {
		switch {
		case mode == 0 && self:
			return randomID(rng, 1<<60+rng.Uint64N(1<<40))
		case mode == 1:
			return randomID(rng, rng.Uint64N(8)<<61)
		}
		return randomID(rng, rng.Uint64())
	}
	c := moveCase{self: "node-0", repl: repl}
	c.cands = make([]ID, v+rng.IntN(40))
	for i := range c.cands {
		c.cands[i] = pos(true)
	}
	c.have = rng.Perm(len(c.cands))[:v]
	for _, i := range c.have {
		c.ring = append(c.ring, NodeInfo{ID: c.cands[i], Addr: c.self})
	}
	for i := 1; i < n; i++ {
		for range v {
			c.ring = append(c.ring, NodeInfo{ID: pos(false), Addr: fmt.Sprintf("node-%d", i)})
		}
	}
	if n > 1 && rng.IntN(5) == 0 {
		c.ring[len(c.ring)-1].ID = c.cands[rng.IntN(len(c.cands))] // on a candidate of self
	}
	switch rng.IntN(3) {
	case 0: // sorted
		slices.SortFunc(c.ring, cmpNode)
	case 1: // as a walk gives it: sorted from some position on
		slices.SortFunc(c.ring, cmpNode)
		d := rng.IntN(len(c.ring))
		c.ring = append(c.ring[d:], c.ring[:d]...)
	default:
		rng.Shuffle(len(c.ring), func(i, j int) { c.ring[i], c.ring[j] = c.ring[j], c.ring[i] })
	}
	return c
}

// TestBestMoveIsTheReference: on random rings BestMove, which scores a
// move from the few loads it changes, finds the same move as scoring
// every move's ring afresh.
func TestBestMoveIsTheReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 17))
	moves := 0
	const cases = 1000
	for i := range cases {
		c := randomMoveCase(rng)
		j, k, ok := BestMove(c.ring, c.self, c.cands, c.have, c.repl)
		wj, wk, wok := referenceBestMove(c.ring, c.self, c.cands, c.have, c.repl)
		if j != wj || k != wk || ok != wok {
			t.Fatalf("case %d (%d positions, repl %d, have %v): BestMove = %d, %d, %v; want %d, %d, %v",
				i, len(c.ring), c.repl, c.have, j, k, ok, wj, wk, wok)
		}
		if ok {
			moves++
		}
	}
	t.Logf("%d of %d rings have a move", moves, cases)
	if moves < cases/10 || moves > cases*9/10 {
		t.Errorf("%d of %d rings have a move: the cases do not tell a move from none", moves, cases)
	}
}

// joinedRing returns a ring of n nodes that joined one at a time with v
// positions each chosen by ChoosePositions, with every node's candidates
// and the indexes it stands at.
func joinedRing(n, v int, seed uint64) (ring []NodeInfo, cands map[string][]ID, have map[string][]int) {
	rng := rand.New(rand.NewPCG(seed, 13))
	cands, have = map[string][]ID{}, map[string][]int{}
	for i := range n {
		addr := fmt.Sprintf("node-%d", i)
		cands[addr] = testCandidates(binary.BigEndian.AppendUint64(nil, rng.Uint64()), 256)
		have[addr] = ChoosePositions(ring, addr, cands[addr], []int{0}, v)
		for _, c := range have[addr] {
			ring = append(ring, NodeInfo{ID: cands[addr][c], Addr: addr})
		}
	}
	return ring, cands, have
}

// TestBestMoveIsTheReferenceJoined: the same on rings of nodes that joined
// with ChoosePositions, 256 candidates each, for every node.
func TestBestMoveIsTheReferenceJoined(t *testing.T) {
	for _, n := range []int{3, 16} {
		ring, cands, have := joinedRing(n, 4, uint64(n))
		for repl := 1; repl <= 4; repl++ {
			for i := range n {
				addr := fmt.Sprintf("node-%d", i)
				j, k, ok := BestMove(ring, addr, cands[addr], have[addr], repl)
				wj, wk, wok := referenceBestMove(ring, addr, cands[addr], have[addr], repl)
				if j != wj || k != wk || ok != wok {
					t.Errorf("n %d repl %d %s: BestMove = %d, %d, %v; want %d, %d, %v", n, repl, addr, j, k, ok, wj, wk, wok)
				}
			}
		}
	}
}

// BenchmarkBestMove: one node's BestMove on a ring of 1024 nodes of 4
// positions each (4096 positions), replication 3.
func BenchmarkBestMove(b *testing.B) {
	ring, cands, have := joinedRing(1024, 4, 1)
	for b.Loop() {
		BestMove(ring, "node-0", cands["node-0"], have["node-0"], 3)
	}
}
