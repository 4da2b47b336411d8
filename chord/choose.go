package chord

import (
	"encoding/binary"
	"math"
	"slices"
	"sort"
)

// Choosing positions (virtual nodes, docs/vnodes.md). A node may stand at
// any of the candidate positions its certificate proves; it takes v of them,
// chosen when it first joins by the rule measured there (TOPX): each pick
// aims at the node's remaining target share of the circle, 1/(n+1) of it
// with n the other physical nodes, taken from the most loaded owner it can
// reach, where an owner above the target may lose its whole excess in one
// take while the joiner stays at most 1.15 times the target.

// topxLo, topxHi and topxCap are the rule's bounds: a pick takes between
// topxLo and topxHi times its aim, and the joiner stays at most topxCap
// times its target.
const (
	topxLo  = 0.5
	topxHi  = 1.5
	topxCap = 1.15
)

type choiceEntry struct {
	pos   uint64
	owner string
}

// ChoosePositions returns the indexes of cands (the node's candidate
// positions, by index) that a node at address self should stand at to hold
// v positions, given the positions on the ring now (ring, any order; those
// at self are the node's own) and the indexes it stands at already (have,
// kept and returned first). Positions are compared by their top 64 bits.
func ChoosePositions(ring []NodeInfo, self string, cands []ID, have []int, v int) []int {
	top := func(id ID) uint64 { return binary.BigEndian.Uint64(id[:8]) }
	var e []choiceEntry
	shares := map[string]float64{}
	owners := map[string]bool{}
	seen := map[uint64]bool{}
	for _, n := range ring {
		if n.Addr != self {
			owners[n.Addr] = true
		}
		if p := top(n.ID); !seen[p] {
			seen[p] = true
			e = append(e, choiceEntry{p, n.Addr})
		}
	}
	chosen := slices.Clone(have)
	for _, i := range have {
		if p := top(cands[i]); !seen[p] {
			seen[p] = true
			e = append(e, choiceEntry{p, self})
		}
	}
	slices.SortFunc(e, func(a, b choiceEntry) int { return cmpU64(a.pos, b.pos) })
	frac := func(d uint64) float64 { return float64(d) / 18446744073709551616.0 }
	pred := func(i int) uint64 { return e[(i+len(e)-1)%len(e)].pos }
	recount := func() {
		clear(shares)
		if len(e) == 1 {
			shares[e[0].owner] = 1
			return
		}
		for i, c := range e {
			shares[c.owner] += frac(c.pos - pred(i))
		}
	}
	succIdx := func(p uint64) int {
		i := sort.Search(len(e), func(i int) bool { return e[i].pos >= p })
		if i == len(e) {
			i = 0
		}
		return i
	}
	recount()
	target := 1 / float64(len(owners)+1)
	for len(chosen) < v {
		if len(e) == 0 {
			chosen = append(chosen, 0)
			e = append(e, choiceEntry{top(cands[0]), self})
			recount()
			continue
		}
		mine := shares[self]
		aim := max((target-mine)/float64(v-len(chosen)), target/float64(4*v))
		best, b1, b2 := -1, 0.0, 0.0
		for ci, c := range cands {
			p := top(c)
			if slices.Contains(chosen, ci) {
				continue
			}
			s := succIdx(p)
			if e[s].pos == p {
				continue
			}
			o := e[s].owner
			arc := frac(e[s].pos - pred(s))
			take := frac(p - pred(s))
			var p1, p2 float64
			if len(e) == 1 {
				arc = 1 // one position owns the whole circle
			}
			if o == self {
				// Splitting its own arc gains nothing but an even spread
				// (a node alone on the ring): the smaller piece, the
				// better the larger it is.
				p1, p2 = -1e300, min(take, arc-take)
			} else {
				os := shares[o]
				hiTake := math.Max(topxHi*aim, math.Min(os-target, topxCap*target-mine))
				if take >= topxLo*aim && take <= hiTake {
					p1, p2 = os, -math.Abs(take-aim)
				} else {
					p1, p2 = -1e200, take*(os-mine-take)
				}
			}
			if best < 0 || p1 > b1 || (p1 == b1 && p2 > b2) {
				best, b1, b2 = ci, p1, p2
			}
		}
		if best < 0 {
			break // fewer candidates than positions wanted
		}
		chosen = append(chosen, best)
		i := sort.Search(len(e), func(i int) bool { return e[i].pos >= top(cands[best]) })
		e = slices.Insert(e, i, choiceEntry{top(cands[best]), self})
		recount()
	}
	return chosen
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Loads returns, for a ring of positions, each address's load as owner
// (primary: its share of the circle) and as owner or holder (the first repl
// distinct addresses from each position hold its arc), as fractions of the
// circle.
func Loads(ring []NodeInfo, repl int) (primary, holder map[string]float64) {
	ring = slices.Clone(ring)
	slices.SortFunc(ring, func(a, b NodeInfo) int { return a.ID.Cmp(b.ID) })
	top := func(id ID) uint64 { return binary.BigEndian.Uint64(id[:8]) }
	primary, holder = map[string]float64{}, map[string]float64{}
	k := len(ring)
	for i, n := range ring {
		arc := float64(top(n.ID)-top(ring[(i+k-1)%k].ID)) / 18446744073709551616.0
		if k == 1 {
			arc = 1
		}
		primary[n.Addr] += arc
		var seen []string
		for j := 0; j < k && len(seen) < repl; j++ {
			if a := ring[(i+j)%k].Addr; !slices.Contains(seen, a) {
				seen = append(seen, a)
				holder[a] += arc
			}
		}
	}
	return primary, holder
}

// loadScore is the sum, over both loads, of each address's load as a
// multiple of the mean, to the 8th power: it falls most when the most
// loaded lose load.
func loadScore(ring []NodeInfo, repl int) float64 {
	p, h := Loads(ring, repl)
	s := 0.0
	for _, m := range []map[string]float64{p, h} {
		mean := 0.0
		for _, v := range m {
			mean += v
		}
		mean /= float64(len(m))
		for _, v := range m {
			s += math.Pow(v/mean, 8)
		}
	}
	return s
}

// minGain is the fraction by which a move must lower the load score.
const minGain = 0.01

// BestMove returns the move of one of the positions a node at address self
// stands at (have: indexes of cands, position 0 first, which never moves)
// to another of its candidates that most evens out the loads of the ring
// (ring: every position, the node's own included), both as owner and as
// owner or holder with replication repl: the index in have of the position
// to leave and the candidate to take. ok is false when no move lowers the
// load score by at least minGain.
func BestMove(ring []NodeInfo, self string, cands []ID, have []int, repl int) (from, to int, ok bool) {
	cur := loadScore(ring, repl)
	best := cur * (1 - minGain)
	for j := 1; j < len(have); j++ {
		old := cands[have[j]]
		base := slices.DeleteFunc(slices.Clone(ring), func(n NodeInfo) bool { return n.ID == old })
		try := append(base, NodeInfo{})
		for ci, c := range cands {
			if slices.Contains(have, ci) || slices.ContainsFunc(base, func(n NodeInfo) bool { return n.ID == c }) {
				continue
			}
			try[len(try)-1] = NodeInfo{ID: c, Addr: self}
			if s := loadScore(try, repl); s < best {
				best, from, to, ok = s, j, ci, true
			}
		}
	}
	return from, to, ok
}
