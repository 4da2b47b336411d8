package chord

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strings"
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

// minGain is the fraction by which a move must lower the load score on a
// ring of up to 16 nodes; on a larger ring of n nodes, minGain·16/n (gain):
// the score sums a term per node, a move changes a few of them, and a fixed
// fraction of the whole would let no move count on a ring of a thousand.
const minGain = 0.01

// gain returns the fraction by which a move must lower the load score of a
// ring of n nodes (addresses).
func gain(n int) float64 {
	if n <= 16 {
		return minGain
	}
	return minGain * 16 / float64(n)
}

// MoveAbove is the load, as a multiple of the mean, from which a node moves
// a position (Overloaded): only the most loaded nodes move, so that nodes
// that all see the same ring do not all move at once and chase each
// other's moves.
const MoveAbove = 1.05

// Overloaded reports whether the node at address self owns, or owns or
// holds (replication repl), at least MoveAbove times the mean on ring: the
// nodes that look for a move (BestMove).
func Overloaded(ring []NodeInfo, self string, repl int) bool {
	p, h := Loads(ring, repl)
	for _, m := range []map[string]float64{p, h} {
		sum := 0.0
		for _, v := range m {
			sum += v
		}
		if len(m) > 0 && m[self] >= MoveAbove*sum/float64(len(m)) {
			return true
		}
	}
	return false
}

// addresses returns the number of distinct addresses on ring.
func addresses(ring []NodeInfo) int {
	seen := make(map[string]struct{}, len(ring))
	for _, n := range ring {
		seen[n.Addr] = struct{}{}
	}
	return len(seen)
}

// BestMove returns the move of one of the positions a node at address self
// stands at (have: indexes of cands, position 0 first, which never moves)
// to another of its candidates that most evens out the loads of the ring
// (ring: every position, the node's own included, in any order), both as
// owner and as owner or holder with replication repl: the index in have of
// the position to leave and the candidate to take. ok is false when no
// move lowers the load score by at least gain (1 % up to 16 nodes).
//
// The load score is the sum, over both loads (those of Loads, counted
// exactly in 2^-64ths of the circle), of each address's load as a multiple
// of the mean, to the 8th power: it falls most when the most loaded lose
// load. The terms are added pairwise in a fixed order of the addresses (the
// order in which they first appear on the ring sorted by ID, self last if
// it is not on it), so that a move's score comes out the same to the last
// bit whether every term is added afresh or only those the move changes
// are updated. Of moves with equal scores the first wins: the lowest index
// in have, then the lowest candidate.
//
// A move changes the loads of few addresses: the owners of the position
// that leaves, of the one that arrives and of their successors, and the
// holders of the positions at most repl distinct addresses before each.
// BestMove takes each position that may leave off the ring once and then
// tries each candidate by updating only those, so a ring of 4096 positions
// costs milliseconds where counting every candidate's ring afresh took
// seconds.
func BestMove(ring []NodeInfo, self string, cands []ID, have []int, repl int) (from, to int, ok bool) {
	if len(have) < 2 {
		return 0, 0, false
	}
	m := newMover(ring, self, repl)
	best := m.ringScore() * (1 - gain(addresses(ring)))
	skip := make([]bool, len(cands))
	for _, i := range have {
		if i >= 0 && i < len(cands) {
			skip[i] = true
		}
	}
	for j := 1; j < len(have); j++ {
		old := cands[have[j]]
		lo, hi := m.removeBase(old)
		for ci, c := range cands {
			if skip[ci] {
				continue
			}
			// t: where c goes on the ring without old; c must not be on it.
			t, found := m.find(c)
			if found && c != old {
				continue
			}
			if t >= hi {
				t -= hi - lo
			}
			if s := m.moveScore(t, binary.BigEndian.Uint64(c[:8])); s < best {
				best, from, to, ok = s, j, ci, true
			}
		}
	}
	return from, to, ok
}

// u128 is an exact load: a whole number of 2^-64ths of the circle (a whole
// circle is 2^64, and with replication totals exceed it), modulo 2^128.
type u128 struct{ hi, lo uint64 }

func (x u128) add(y u128) u128 {
	lo, c := bits.Add64(x.lo, y.lo, 0)
	hi, _ := bits.Add64(x.hi, y.hi, c)
	return u128{hi, lo}
}

func (x u128) sub(y u128) u128 {
	lo, b := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, b)
	return u128{hi, lo}
}

func (x u128) float() float64 { return float64(x.hi)*0x1p64 + float64(x.lo) }

// meanLoad is the mean of n loads that add up to total.
func meanLoad(total u128, n int) float64 { return total.float() / float64(n) }

// scoreTerm is one address's part of the load score: its load as a multiple
// of the mean, to the 8th power.
func scoreTerm(v u128, mean float64) float64 {
	x := v.float() / mean
	x *= x
	x *= x
	return x * x
}

// sumTree adds its leaves pairwise: node i (from 1) is the sum of nodes 2i
// and 2i+1, and the leaves (padded with zeros to a power of two) are the
// second half, so that a changed leaf changes only the nodes above it.
type sumTree []float64

func newSumTree(n int) sumTree {
	size := 1
	for size < n {
		size *= 2
	}
	return make(sumTree, 2*size)
}

// build sets every node above the leaves.
func (t sumTree) build() {
	for j := len(t)/2 - 1; j >= 1; j-- {
		t[j] = t[2*j] + t[2*j+1]
	}
}

func (t sumTree) sum() float64 { return t[1] }

// ringView is a ring sorted by position, with one more position added at
// index at (at < 0: none). Addresses are indexes.
type ringView struct {
	top    []uint64
	addr   []int32
	at     int
	atTop  uint64
	atAddr int32
}

func (v *ringView) len() int {
	if v.at < 0 {
		return len(v.top)
	}
	return len(v.top) + 1
}

func (v *ringView) get(i int) (uint64, int32) {
	switch {
	case v.at < 0 || i < v.at:
		return v.top[i], v.addr[i]
	case i == v.at:
		return v.atTop, v.atAddr
	}
	return v.top[i-1], v.addr[i-1]
}

// arc returns the length of the arc position i owns.
func (v *ringView) arc(i int) u128 {
	n := v.len()
	if n == 1 {
		return u128{1, 0} // one position owns the whole circle
	}
	p, _ := v.get(i)
	q, _ := v.get((i + n - 1) % n)
	return u128{0, p - q}
}

// mover works out BestMove's scores: the ring, the ring without the
// position that leaves (the base) with its loads and score terms, and the
// changes one candidate makes to them.
type mover struct {
	repl int
	self int32 // addresses are indexes, in the order of the score's terms
	// the ring (nodes, in the order given; order: their indexes sorted
	// by ID then address) and its loads
	nodes  []NodeInfo
	order  []int
	ring   ringView
	ringP  []u128
	ringH  []u128
	ringN  []int32
	ringTP u128
	ringTH u128
	// the base and its loads (p, h: by address; npos: positions by
	// address; tp, th: totals; naddr: addresses on it with self)
	base   ringView
	p, h   []u128
	npos   []int32
	tp, th u128
	naddr  int
	// the score terms of p and h with the means meanP and meanH (valid:
	// the trees hold them)
	treeP, treeH sumTree
	meanP, meanH float64
	valid        bool
	// the addresses one candidate changes (marked with tstamp) with their
	// loads on the base, and its change to tp and th
	tmark          []uint32
	tstamp         uint32
	touched        []int32
	savedP, savedH []u128
	dtp, dth       u128
	sums, next     []treeSums // scratch: the trees' changed nodes, a level at a time
	// scratch: addresses seen in one walk (marked with stamp)
	mark    []uint32
	stamp   uint32
	holders []int32
}

func cmpNode(a, b NodeInfo) int {
	if c := a.ID.Cmp(b.ID); c != 0 {
		return c
	}
	return strings.Compare(a.Addr, b.Addr)
}

// sortedOrder returns the indexes of ring (its positions' top 64 bits:
// tops) in order of ID, then address. A ring walked from one of its
// positions comes in that order from there on, and is not sorted again.
func sortedOrder(ring []NodeInfo, tops []uint64) []int {
	n := len(ring)
	order := make([]int, n)
	cmp := func(a, b int) int {
		if c := cmpU64(tops[a], tops[b]); c != 0 {
			return c
		}
		return cmpNode(ring[a], ring[b])
	}
	d := 0 // where the walk passes the top of the circle
	for i := 1; i < n; i++ {
		if cmp(i-1, i) > 0 {
			if d > 0 {
				d = -1
				break
			}
			d = i
		}
	}
	if d >= 0 && (d == 0 || cmp(n-1, 0) <= 0) {
		for i := range order {
			order[i] = (d + i) % n
		}
		return order
	}
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, cmp)
	return order
}

func newMover(ring []NodeInfo, self string, repl int) *mover {
	k := len(ring)
	tops := make([]uint64, k)
	for i, n := range ring {
		tops[i] = binary.BigEndian.Uint64(n.ID[:8])
	}
	m := &mover{repl: repl, nodes: ring, order: sortedOrder(ring, tops)}
	m.ring = ringView{top: make([]uint64, k), addr: make([]int32, k), at: -1}
	index := make(map[string]int32, k/2)
	for i, r := range m.order {
		a, ok := index[ring[r].Addr]
		if !ok {
			a = int32(len(index))
			index[ring[r].Addr] = a
		}
		m.ring.top[i], m.ring.addr[i] = tops[r], a
	}
	s, ok := index[self]
	if !ok {
		s = int32(len(index))
		index[self] = s
	}
	m.self = s
	n := len(index)
	m.p, m.h, m.npos = make([]u128, n), make([]u128, n), make([]int32, n)
	m.mark, m.tmark = make([]uint32, n), make([]uint32, n)
	m.treeP, m.treeH = newSumTree(n), newSumTree(n)
	m.base = ringView{top: make([]uint64, 0, k), addr: make([]int32, 0, k), at: -1}
	m.base.top = append(m.base.top, m.ring.top...)
	m.base.addr = append(m.base.addr, m.ring.addr...)
	m.loadBase()
	m.ringP, m.ringH, m.ringN = slices.Clone(m.p), slices.Clone(m.h), slices.Clone(m.npos)
	m.ringTP, m.ringTH = m.tp, m.th
	return m
}

// id returns the ID of position i of the ring.
func (m *mover) id(i int) ID { return m.nodes[m.order[i]].ID }

// find returns where id is or would be in the ring, and whether it is.
func (m *mover) find(id ID) (int, bool) {
	k, top := len(m.order), binary.BigEndian.Uint64(id[:8])
	i := sort.Search(k, func(i int) bool { return m.ring.top[i] >= top })
	for i < k && m.ring.top[i] == top && m.id(i).Cmp(id) < 0 {
		i++
	}
	return i, i < k && m.ring.top[i] == top && m.id(i) == id
}

// ringScore returns the load score of the ring (the base, as newMover
// leaves it).
func (m *mover) ringScore() float64 {
	m.naddr = 0
	for _, c := range m.npos {
		if c > 0 {
			m.naddr++
		}
	}
	m.build(meanLoad(m.tp, m.naddr), meanLoad(m.th, m.naddr), false)
	return m.treeP.sum() + m.treeH.sum()
}

// removeBase makes the ring without the positions at id the base and
// returns where they were in the ring: [lo, hi).
func (m *mover) removeBase(id ID) (lo, hi int) {
	lo, _ = m.find(id)
	for hi = lo; hi < len(m.order) && m.id(hi) == id; hi++ {
	}
	m.base.top = append(append(m.base.top[:0], m.ring.top[:lo]...), m.ring.top[hi:]...)
	m.base.addr = append(append(m.base.addr[:0], m.ring.addr[:lo]...), m.ring.addr[hi:]...)
	if hi-lo == 1 {
		// The ring is the base with the position added at lo: take
		// that change off the ring's loads.
		copy(m.p, m.ringP)
		copy(m.h, m.ringH)
		copy(m.npos, m.ringN)
		m.begin()
		m.insert(lo, m.ring.top[lo], m.ring.addr[lo], false)
		m.tp, m.th = m.ringTP.add(m.dtp), m.ringTH.add(m.dth)
		m.npos[m.ring.addr[lo]]--
	} else {
		m.loadBase()
	}
	m.naddr = 0
	for a, c := range m.npos {
		if c > 0 || int32(a) == m.self {
			m.naddr++ // a candidate adds self
		}
	}
	m.valid = false
	return lo, hi
}

// loadBase counts the base's loads afresh.
func (m *mover) loadBase() {
	clear(m.p)
	clear(m.h)
	clear(m.npos)
	m.tp, m.th = u128{}, u128{}
	v := &m.base
	for i := range v.len() {
		a := v.addr[i]
		arc := v.arc(i)
		m.npos[a]++
		m.p[a] = m.p[a].add(arc)
		m.tp = m.tp.add(arc)
		for _, b := range m.holdersOf(v, i) {
			m.h[b] = m.h[b].add(arc)
			m.th = m.th.add(arc)
		}
	}
}

// holdersOf returns the first repl distinct addresses from position i of v
// on, in a slice that the next call reuses.
func (m *mover) holdersOf(v *ringView, i int) []int32 {
	n := v.len()
	m.stamp++
	m.holders = m.holders[:0]
	for s := 0; s < n && len(m.holders) < m.repl; s++ {
		j := i + s
		if j >= n {
			j -= n
		}
		if _, a := v.get(j); m.mark[a] != m.stamp {
			m.mark[a] = m.stamp
			m.holders = append(m.holders, a)
		}
	}
	return m.holders
}

// build sets the score terms of the loads for the means given, self
// counted as on the ring if withSelf.
func (m *mover) build(meanP, meanH float64, withSelf bool) {
	n := len(m.treeP) / 2
	for a := range n {
		tp, th := 0.0, 0.0
		if a < len(m.p) && (m.npos[a] > 0 || (withSelf && int32(a) == m.self)) {
			tp = scoreTerm(m.p[a], meanP)
			if m.repl >= 1 { // with no holders there are no holder terms
				th = scoreTerm(m.h[a], meanH)
			}
		}
		m.treeP[n+a], m.treeH[n+a] = tp, th
	}
	m.treeP.build()
	m.treeH.build()
	m.meanP, m.meanH, m.valid = meanP, meanH, true
}

// moveScore returns the load score of the base with a position of self
// added at index t (its top 64 bits: top).
func (m *mover) moveScore(t int, top uint64) float64 {
	m.begin()
	m.insert(t, top, m.self, true)
	meanP, meanH := meanLoad(m.tp.add(m.dtp), m.naddr), meanLoad(m.th.add(m.dth), m.naddr)
	if !m.valid || meanP != m.meanP || meanH != m.meanH {
		// The first candidate, or the means differ from the last
		// one's (a ring of one position or of equal positions, whose
		// arcs do not add up to the circle): the base's terms anew.
		m.swapTouched()
		m.build(meanP, meanH, true)
		m.swapTouched()
	}
	// The sums of the trees with the changed leaves, from the leaves up,
	// leaving the trees as they are.
	m.sums = m.sums[:0]
	leaves := len(m.treeP) / 2
	for _, a := range m.sortTouched() {
		x := treeSums{node: leaves + int(a), p: scoreTerm(m.p[a], meanP)}
		if m.repl >= 1 {
			x.h = scoreTerm(m.h[a], meanH)
		}
		m.sums = append(m.sums, x)
	}
	for m.sums[0].node > 1 {
		m.next = m.next[:0]
		for x := 0; x < len(m.sums); x++ {
			j := m.sums[x].node
			l, r := treeSums{p: m.treeP[j&^1], h: m.treeH[j&^1]}, treeSums{p: m.treeP[j|1], h: m.treeH[j|1]}
			if j&1 == 0 {
				l = m.sums[x]
				if x+1 < len(m.sums) && m.sums[x+1].node == j+1 {
					x++
					r = m.sums[x]
				}
			} else {
				r = m.sums[x]
			}
			m.next = append(m.next, treeSums{node: j / 2, p: l.p + r.p, h: l.h + r.h})
		}
		m.sums, m.next = m.next, m.sums
	}
	m.swapTouched()
	return m.sums[0].p + m.sums[0].h
}

// treeSums is a node of treeP and of treeH that a candidate changes, and
// their sums with it.
type treeSums struct {
	node int
	p, h float64
}

// sortTouched sorts the addresses a change reached, with their loads, and
// returns them.
func (m *mover) sortTouched() []int32 {
	t := m.touched
	for i := 1; i < len(t); i++ {
		for j := i; j > 0 && t[j] < t[j-1]; j-- {
			t[j], t[j-1] = t[j-1], t[j]
			m.savedP[j], m.savedP[j-1] = m.savedP[j-1], m.savedP[j]
			m.savedH[j], m.savedH[j-1] = m.savedH[j-1], m.savedH[j]
		}
	}
	return t
}

// begin starts a change to the base's loads.
func (m *mover) begin() {
	m.tstamp++
	m.touched, m.savedP, m.savedH = m.touched[:0], m.savedP[:0], m.savedH[:0]
	m.dtp, m.dth = u128{}, u128{}
}

// insert changes the loads as adding a position (top, addr) at index t of
// the base does, or (add false) as taking it away from there does.
func (m *mover) insert(t int, top uint64, addr int32, add bool) {
	b := &m.base
	k := len(b.top)
	v := &ringView{top: b.top, addr: b.addr, at: t, atTop: top, atAddr: addr}
	// The positions whose arc or holders the new one changes: those before
	// it whose first repl distinct addresses reach it (w of them), and its
	// successor, a run of min(w+1, k) from t-w.
	w := 0
	if k > 0 {
		m.stamp++
		distinct := 0
		for w < k {
			a := b.addr[(t-1-w+k)%k]
			if m.mark[a] != m.stamp {
				m.mark[a] = m.stamp
				distinct++
			}
			if distinct >= m.repl {
				break
			}
			w++
		}
	}
	for r := range min(w+1, k) {
		i := (t - w + r + k) % k
		m.change(b, i, !add)
		if i >= t {
			i++
		}
		m.change(v, i, add)
	}
	m.change(v, t, add)
}

// change puts position i of v on the loads (add) or takes it off.
func (m *mover) change(v *ringView, i int, add bool) {
	arc := v.arc(i)
	_, a := v.get(i)
	m.touch(a)
	if add {
		m.p[a], m.dtp = m.p[a].add(arc), m.dtp.add(arc)
	} else {
		m.p[a], m.dtp = m.p[a].sub(arc), m.dtp.sub(arc)
	}
	for _, b := range m.holdersOf(v, i) {
		m.touch(b)
		if add {
			m.h[b], m.dth = m.h[b].add(arc), m.dth.add(arc)
		} else {
			m.h[b], m.dth = m.h[b].sub(arc), m.dth.sub(arc)
		}
	}
}

// touch notes that a change reaches the loads of address a, keeping the
// base's.
func (m *mover) touch(a int32) {
	if m.tmark[a] != m.tstamp {
		m.tmark[a] = m.tstamp
		m.touched = append(m.touched, a)
		m.savedP = append(m.savedP, m.p[a])
		m.savedH = append(m.savedH, m.h[a])
	}
}

// swapTouched swaps the loads of the addresses a change reached with the
// base's: once to see the base, again to see the change.
func (m *mover) swapTouched() {
	for x, a := range m.touched {
		m.p[a], m.savedP[x] = m.savedP[x], m.p[a]
		m.h[a], m.savedH[x] = m.savedH[x], m.h[a]
	}
}
