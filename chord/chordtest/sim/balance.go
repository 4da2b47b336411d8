package main

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/durachord/durachord/chord"
)

// The balance of virtual nodes (-vnodes): N nodes join one at a time, each
// choosing its positions with chord.ChoosePositions from the whole ring (what
// a node's walk sees), keeping position 0; then repair rounds as the daemon
// runs them (each node in turn, in a random order, moves one position when it
// is among the most loaded, chord.Overloaded, and chord.BestMove finds a
// move, until a round moves none or after maxRepairRounds); then a quarter of the nodes leave at random, and repair
// rounds again. After each phase: the share of the circle each node owns, and
// the records it holds as owner (primary) and as owner or holder (primary
// plus replica, the first replication distinct nodes from a key's owner), as
// the most loaded node's multiple of the mean, worst over seeds. Records are
// taken as spread evenly over the circle, so a node's records are its arcs'
// length (the expected load of many records).

// maxRepairRounds bounds the repair rounds of one phase (the daemon's fast
// rounds after a start).
const maxRepairRounds = 40

// leaveFraction is the part of the nodes that leave after the first repair.
const leaveFraction = 0.25

// Phases of the balance measurement, in the order they run.
const (
	phaseJoins = iota
	phaseRepair
	phaseLeave
	phaseRepairAfterLeave
	phases
)

var phaseNames = [phases]string{"joins", "repair", "25% leave", "repair"}

// balanceRow is one ring size's worst figures over the seeds, by phase.
type balanceRow struct {
	n      int
	phases [phases]balanceFigures
}

// balanceFigures are one phase's figures: the loads' worst max/mean over
// the seeds and, for a repair, its moves (per node: the mean over seeds;
// most: by one node, over seeds) and rounds (the most over seeds; a last
// round without a move counts).
type balanceFigures struct {
	share, primary, holder float64
	movesPerNode           float64
	mostMoves, rounds      int
}

// balanceNode is a node of the measurement: its candidate positions and the
// indexes of those it stands at.
type balanceNode struct {
	addr  string
	cands []chord.ID
	have  []int
}

// balanceRing is the nodes and their positions, sorted by ID.
type balanceRing struct {
	nodes []*balanceNode
	ring  []chord.NodeInfo
}

func cmpPosition(a, b chord.NodeInfo) int { return a.ID.Cmp(b.ID) }

func (b *balanceRing) add(n chord.NodeInfo) {
	i, _ := slices.BinarySearchFunc(b.ring, n, cmpPosition)
	b.ring = slices.Insert(b.ring, i, n)
}

func (b *balanceRing) remove(id chord.ID) {
	if i, ok := slices.BinarySearchFunc(b.ring, chord.NodeInfo{ID: id}, cmpPosition); ok {
		b.ring = slices.Delete(b.ring, i, i+1)
	}
}

// figures returns the loads' max/mean.
func (b *balanceRing) figures(repl int) balanceFigures {
	p, h := chord.Loads(b.ring, repl)
	share := maxOverMean(p) // a node's primary load is its share
	return balanceFigures{share: share, primary: share, holder: maxOverMean(h)}
}

// repair runs repair rounds and returns the moves by node and the rounds.
func (b *balanceRing) repair(rng *rand.Rand, repl int) (moves map[string]int, rounds int) {
	moves = map[string]int{}
	for rounds < maxRepairRounds {
		rounds++
		moved := false
		for _, i := range rng.Perm(len(b.nodes)) {
			n := b.nodes[i]
			if !chord.Overloaded(b.ring, n.addr, repl) {
				continue // as the daemon: only the most loaded move
			}
			j, c, ok := chord.BestMove(b.ring, n.addr, n.cands, n.have, repl)
			if !ok {
				continue
			}
			b.remove(n.cands[n.have[j]])
			b.add(chord.NodeInfo{ID: n.cands[c], Addr: n.addr})
			n.have[j] = c
			moves[n.addr]++
			moved = true
		}
		if !moved {
			break
		}
	}
	return moves, rounds
}

// leave takes a random fraction of the nodes off the ring.
func (b *balanceRing) leave(rng *rand.Rand, fraction float64) {
	gone := map[string]bool{}
	for _, i := range rng.Perm(len(b.nodes))[:int(fraction*float64(len(b.nodes)))] {
		gone[b.nodes[i].addr] = true
	}
	b.nodes = slices.DeleteFunc(b.nodes, func(n *balanceNode) bool { return gone[n.addr] })
	b.ring = slices.DeleteFunc(b.ring, func(n chord.NodeInfo) bool { return gone[n.Addr] })
}

// positionsOf returns the candidate positions of a node whose public key is
// key, as crypto.PositionID derives them from a certificate.
func positionsOf(key []byte, k int) []chord.ID {
	out := make([]chord.ID, k)
	for i := range k {
		if i == 0 {
			out[i] = chord.ID(sha256.Sum256(key))
			continue
		}
		out[i] = chord.ID(sha256.Sum256(binary.BigEndian.AppendUint32(slices.Clone(key), uint32(i))))
	}
	return out
}

func maxOverMean(m map[string]float64) float64 {
	mx, sum := 0.0, 0.0
	for _, v := range m {
		mx = math.Max(mx, v)
		sum += v
	}
	return mx / (sum / float64(len(m)))
}

// balance runs the -vnodes measurement for n nodes of v positions.
func balance(n, v, repl, seeds int, seed uint64) balanceRow {
	row := balanceRow{n: n}
	worst := func(ph int, f balanceFigures, moves map[string]int, nodes, rounds int) {
		w := &row.phases[ph]
		w.share, w.primary, w.holder = math.Max(w.share, f.share), math.Max(w.primary, f.primary), math.Max(w.holder, f.holder)
		total := 0
		for _, m := range moves {
			total += m
			w.mostMoves = max(w.mostMoves, m)
		}
		w.movesPerNode += float64(total) / float64(nodes) / float64(seeds)
		w.rounds = max(w.rounds, rounds)
	}
	for s := range seeds {
		rng := rand.New(rand.NewPCG(seed+uint64(s), 0x76))
		var b balanceRing
		for i := range n {
			key := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, rng.Uint64()), rng.Uint64())
			node := &balanceNode{addr: fmt.Sprintf("node-%d", i), cands: positionsOf(key, 256)}
			node.have = chord.ChoosePositions(b.ring, node.addr, node.cands, []int{0}, v)
			for _, c := range node.have {
				b.add(chord.NodeInfo{ID: node.cands[c], Addr: node.addr})
			}
			b.nodes = append(b.nodes, node)
		}
		worst(phaseJoins, b.figures(repl), nil, n, 0)
		moves, rounds := b.repair(rng, repl)
		worst(phaseRepair, b.figures(repl), moves, len(b.nodes), rounds)
		b.leave(rng, leaveFraction)
		worst(phaseLeave, b.figures(repl), nil, len(b.nodes), 0)
		moves, rounds = b.repair(rng, repl)
		worst(phaseRepairAfterLeave, b.figures(repl), moves, len(b.nodes), rounds)
	}
	return row
}

func printBalance(sizes []int, v, repl, seeds int, seed uint64) {
	fmt.Printf("# virtual nodes: %d positions per node (position 0 kept, the others by chord.ChoosePositions), sequential joins, "+
		"then repair rounds (chord.Overloaded and chord.BestMove, every node in a random order, until a round moves none, at most %d), "+
		"then %.0f%% of the nodes leave and repair again; worst over %d seeds\n", v, maxRepairRounds, 100*leaveFraction, seeds)
	fmt.Printf("%-6s %-10s %8s %8s %22s %11s %5s %7s  %-7s %s\n", "N", "phase", "share", "primary",
		fmt.Sprintf("primary+replica (r=%d)", repl), "moves/node", "most", "rounds", "target", "result")
	for _, n := range sizes {
		start := time.Now()
		r := balance(n, v, repl, seeds, seed)
		for ph, f := range r.phases {
			moves, most, rounds, target, res := "-", "-", "-", "-", "-"
			if ph == phaseRepair || ph == phaseRepairAfterLeave {
				moves, most, rounds, target = fmt.Sprintf("%.3f", f.movesPerNode), fmt.Sprint(f.mostMoves), fmt.Sprint(f.rounds), "<=1.25"
				res = "PASS"
				if f.share > 1.25 || f.holder > 1.25 {
					res = "MISS"
				}
			}
			fmt.Printf("%-6d %-10s %8.3f %8.3f %22.3f %11s %5s %7s  %-7s %s\n", n, phaseNames[ph], f.share, f.primary, f.holder, moves, most, rounds, target, res)
		}
		fmt.Fprintf(os.Stderr, "balance N=%d done in %v\n", n, time.Since(start).Round(time.Millisecond))
	}
}
