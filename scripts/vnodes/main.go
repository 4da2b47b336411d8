// Command vnodes simulates the placement of virtual nodes on a Chord ring
// with verifiable, bounded-choice positions, to choose the rule and the
// default number of positions by measurement (docs/vnodes.md). Candidate i
// of a node is SHA-256(pk) for i=0 and
// SHA-256(pk || uint32be(i)) for i>0; only the top 64 bits are used as the
// ring position (resolution 2^-64, far finer than any arc we measure).
// A position q owns the arc (pred(q), q]. Shares are arc fractions.
package main

import (
	"crypto/sha256"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand"
	"os"
	"sort"
	"strings"
)

type entry struct {
	pos   uint64
	owner int32
}

const two64 = 18446744073709551616.0

type ring struct {
	e      []entry
	shares []float64 // per physical node, fraction of ring
}

func frac(d uint64) float64 { return float64(d) / two64 }

// succIdx returns index of the first entry with pos >= p (wrapping to 0).
func (r *ring) succIdx(p uint64) int {
	i := sort.Search(len(r.e), func(i int) bool { return r.e[i].pos >= p })
	if i == len(r.e) {
		i = 0
	}
	return i
}

func (r *ring) predPos(i int) uint64 {
	if i == 0 {
		return r.e[len(r.e)-1].pos
	}
	return r.e[i-1].pos
}

// insert position p for owner o, updating shares.
func (r *ring) insert(p uint64, o int32) {
	if len(r.e) == 0 {
		r.e = append(r.e, entry{p, o})
		r.shares[o] += 1.0
		return
	}
	i := sort.Search(len(r.e), func(i int) bool { return r.e[i].pos >= p })
	s := i
	if s == len(r.e) {
		s = 0
	}
	if r.e[s].pos == p {
		return // duplicate (never happens in practice)
	}
	t := frac(p - r.predPos(s))
	r.shares[r.e[s].owner] -= t
	r.shares[o] += t
	r.e = append(r.e, entry{})
	copy(r.e[i+1:], r.e[i:])
	r.e[i] = entry{p, o}
}

// removeOwner deletes all positions of owner o; their arcs go to successors.
func (r *ring) removeOwner(o int32) {
	out := r.e[:0]
	for _, e := range r.e {
		if e.owner != o {
			out = append(out, e)
		}
	}
	r.e = out
	for i := range r.shares {
		r.shares[i] = 0
	}
	for i, e := range r.e {
		r.shares[e.owner] += frac(e.pos - r.predPos(i))
	}
}

// rebalance: for R rounds, every alive node whose share < thr*mean re-chooses
// its V positions among its K candidates (drop all, then join again).
// Returns number of re-choices.
func (r *ring) rebalance(cands [][]uint64, alive []bool, V int, rule string, fix0 bool, R int, thr float64) int {
	n := 0
	for _, a := range alive {
		if a {
			n++
		}
	}
	cnt := 0
	for round := 0; round < R; round++ {
		did := 0
		for i := range cands {
			if !alive[i] || r.shares[i]*float64(n) >= thr {
				continue
			}
			r.removeOwner(int32(i))
			r.join(int32(i), cands[i], V, rule, fix0, n-1)
			did++
		}
		cnt += did
		if did == 0 {
			break
		}
	}
	return cnt
}

// repair: local search. Each alive node U (heaviest first) may move ONE of its
// positions q to one of its unused candidates c (still verifiable), if that
// lowers sum over nodes of (share*n)^p. Repeated for R rounds. Returns #moves.
func (r *ring) repair(cands [][]uint64, alive []bool, R int, p float64, thr float64) int {
	n := 0
	for _, a := range alive {
		if a {
			n++
		}
	}
	f := func(x float64) float64 { return math.Pow(x*float64(n), p) }
	moves := 0
	for round := 0; round < R; round++ {
		order := []int{}
		for i := range cands {
			if alive[i] {
				order = append(order, i)
			}
		}
		sort.Slice(order, func(a, b int) bool { return r.shares[order[a]] > r.shares[order[b]] })
		did := 0
		for _, u := range order {
			if r.shares[u]*float64(n) < thr {
				continue // only nodes above thr*mean act (heavy-node self repair)
			}
			L := len(r.e)
			mine := map[uint64]bool{}
			idx := []int{}
			for i, e := range r.e {
				if int(e.owner) == u {
					mine[e.pos] = true
					idx = append(idx, i)
				}
			}
			bestD, bi, bc := -1e-12, -1, uint64(0)
			for _, i := range idx {
				q := r.e[i].pos
				if fix0Global && q == cands[u][0] {
					continue // position 0 may not move
				}
				pq := r.predPos(i)
				arcq := frac(q - pq)
				zi := (i + 1) % L
				Z := int(r.e[zi].owner)
				for _, c := range cands[u] {
					if mine[c] {
						continue
					}
					s := r.succIdx(c)
					if r.e[s].pos == c {
						continue
					}
					var W int
					var t float64
					if s == i || s == zi {
						W, t = Z, frac(c-pq)
						if s == i {
							// c inside q's old arc: (pq,c] -> U, (c,zpos] stays Z
						}
					} else {
						W, t = int(r.e[s].owner), frac(c-r.predPos(s))
					}
					// deltas
					own := [3]int{u, Z, W}
					del := [3]float64{t - arcq, arcq, -t}
					D := 0.0
					seen := [3]bool{}
					for a := 0; a < 3; a++ {
						if seen[a] {
							continue
						}
						tot := del[a]
						for b := a + 1; b < 3; b++ {
							if own[b] == own[a] {
								tot += del[b]
								seen[b] = true
							}
						}
						o := r.shares[own[a]]
						D += f(o+tot) - f(o)
					}
					if D < bestD {
						bestD, bi, bc = D, i, c
					}
				}
			}
			if bi >= 0 {
				// apply: remove position bi, insert bc
				q := r.e[bi].pos
				zi := (bi + 1) % L
				r.shares[r.e[zi].owner] += frac(q - r.predPos(bi))
				r.shares[u] -= frac(q - r.predPos(bi))
				r.e = append(r.e[:bi], r.e[bi+1:]...)
				r.insert(bc, int32(u))
				did++
			}
		}
		moves += did
		if did == 0 {
			break
		}
	}
	return moves
}

func candidates(pk []byte, K int) []uint64 {
	c := make([]uint64, K)
	buf := make([]byte, len(pk)+4)
	copy(buf, pk)
	for i := 0; i < K; i++ {
		var h [32]byte
		if i == 0 {
			h = sha256.Sum256(pk)
		} else {
			binary.BigEndian.PutUint32(buf[len(pk):], uint32(i))
			h = sha256.Sum256(buf)
		}
		c[i] = binary.BigEndian.Uint64(h[:8])
	}
	return c
}

// choose picks V of the candidates according to rule and inserts them.
// rule: "RND" (first V), "ARC" (largest containing arc, tie -> nearest midpoint),
// "VAR" (max reduction of sum of squared shares, local info only),
// "GMAX" (min resulting global max share, tie -> VAR; needs global info).
// fix0: candidate 0 (=SHA-256(pk)) is always used.
var lo, hi = 0.5, 1.5
var alpha, capf = 0.5, 1.15
var pw = 4.0

func (r *ring) join(me int32, cand []uint64, V int, rule string, fix0 bool, nn int) {
	used := make([]bool, len(cand))
	n := 0
	if rule == "RND" || len(r.e) == 0 && V == len(cand) {
		for i := 0; i < V; i++ {
			r.insert(cand[i], me)
		}
		return
	}
	if fix0 || len(r.e) == 0 {
		r.insert(cand[0], me)
		used[0] = true
		n = 1
	}
	for ; n < V; n++ {
		// global top-2 for GMAX
		var m1, m2 float64
		m1i := -1
		if rule == "GMAX" {
			for i, s := range r.shares {
				if s > m1 {
					m2 = m1
					m1, m1i = s, i
				} else if s > m2 {
					m2 = s
				}
			}
		}
		j := r.shares[me]
		T := 1.0 / float64(nn+1)
		tau := (T - j) / float64(V-n)
		if tau < T/float64(4*V) {
			tau = T / float64(4*V)
		}
		best := -1
		var b1, b2 float64 // primary, secondary (higher better)
		for ci, c := range cand {
			if used[ci] {
				continue
			}
			s := r.succIdx(c)
			if r.e[s].pos == c {
				continue
			}
			o := r.e[s].owner
			a := frac(r.e[s].pos - r.predPos(s))
			t := frac(c - r.predPos(s))
			var p1, p2 float64
			if o == me {
				p1, p2 = -1e300, a // useless pick: splitting own arc
			} else {
				os := r.shares[o]
				switch rule {
				case "ARC":
					p1, p2 = a, -math.Abs(t-a/2)
				case "VAR":
					p1, p2 = t*(os-j-t), a
				case "TOP":
					// take ~tau from the heaviest reachable owner
					if t >= lo*tau && t <= hi*tau {
						p1, p2 = os, -math.Abs(t-tau)
					} else {
						p1, p2 = -1e200, t*(os-j-t)
					}
				case "TOPX":
					// TOP, but a heavy owner (o > T) may lose its whole excess in one
					// take, as long as the joiner stays <= capf*T.
					hiE := math.Max(hi*tau, math.Min(os-T, capf*T-j))
					if t >= lo*tau && t <= hiE {
						p1, p2 = os, -math.Abs(t-tau)
					} else {
						p1, p2 = -1e200, t*(os-j-t)
					}
				case "TOPS":
					// soft: heavy owner (in units of target mean) vs. take close to tau
					p1 = os/T - alpha*math.Abs(t-tau)/tau
					if j+t > capf*T {
						p1 = -1e200
						p2 = -(j + t)
					}
				case "POW":
					// minimise sum of (share/T)^p  (p=2 is VAR; large p -> min-max)
					xo, xj, xt := os/T, j/T, t/T
					p1 = -(math.Pow(xo-xt, pw) + math.Pow(xj+xt, pw) - math.Pow(xo, pw) - math.Pow(xj, pw))
					p2 = a
				case "GMAX":
					mx := m1
					if int(o) == m1i {
						mx = m2
					}
					mx = math.Max(mx, math.Max(os-t, j+t))
					p1, p2 = -mx, t*(os-j-t)
				default:
					panic(rule)
				}
			}
			if best < 0 || p1 > b1 || (p1 == b1 && p2 > b2) {
				best, b1, b2 = ci, p1, p2
			}
		}
		used[best] = true
		r.insert(cand[best], me)
	}
}

func maxOverMean(sh []float64, alive []bool) (float64, float64) {
	mx, mn, cnt, tot := 0.0, math.Inf(1), 0, 0.0
	for i, s := range sh {
		if alive != nil && !alive[i] {
			continue
		}
		cnt++
		tot += s
		if s > mx {
			mx = s
		}
		if s < mn {
			mn = s
		}
	}
	mean := tot / float64(cnt)
	return mx / mean, mn / mean
}

type result struct {
	join, leave, joinMin, leaveMin float64
	rj, rl                         float64 // after rebalance
	nrj, nrl                       int
}

var rebalR = 0
var fix0Global = false
var nnoise = 0.0
var repR = 0
var repP = 8.0
var repThr = 1.1
var rebalThr = 0.8

func run(N, V, K int, rule string, fix0 bool, seed int64, leaveFrac float64) result {
	rng := rand.New(rand.NewSource(seed*1000003 + 17))
	r := &ring{shares: make([]float64, N)}
	cands := make([][]uint64, N)
	for i := 0; i < N; i++ {
		pk := make([]byte, 32)
		rng.Read(pk)
		cands[i] = candidates(pk, K)
		if rule == "RND" {
			for _, c := range cands[i][:V] {
				r.e = append(r.e, entry{c, int32(i)})
			}
			continue
		}
		nn := i
		if nnoise > 0 && i > 0 {
			// joiner's estimate of current node count is off by up to +-nnoise
			nn = int(float64(i+1)*(1+nnoise*(2*rng.Float64()-1))+0.5) - 1
			if nn < 0 {
				nn = 0
			}
		}
		r.join(int32(i), cands[i], V, rule, fix0, nn)
	}
	if rule == "RND" {
		sort.Slice(r.e, func(a, b int) bool { return r.e[a].pos < r.e[b].pos })
		for i, e := range r.e {
			r.shares[e.owner] += frac(e.pos - r.predPos(i))
		}
	}
	var res result
	res.join, res.joinMin = maxOverMean(r.shares, nil)
	allAlive := make([]bool, N)
	for i := range allAlive {
		allAlive[i] = true
	}
	var rjRing *ring
	if rebalR > 0 {
		rj := &ring{e: append([]entry(nil), r.e...), shares: append([]float64(nil), r.shares...)}
		if repR > 0 {
			res.nrj = rj.repair(cands, allAlive, repR, repP, repThr)
		} else {
			res.nrj = rj.rebalance(cands, allAlive, V, rule, fix0, rebalR, rebalThr)
		}
		res.rj, _ = maxOverMean(rj.shares, nil)
		rjRing = rj
	}
	_ = rjRing
	// leave: remove leaveFrac of nodes at random, no re-choice.
	alive := make([]bool, N)
	for i := range alive {
		alive[i] = true
	}
	perm := rng.Perm(N)
	for _, i := range perm[:int(float64(N)*leaveFrac+0.5)] {
		alive[i] = false
	}
	r2 := &ring{shares: make([]float64, N)}
	for _, e := range r.e {
		if alive[e.owner] {
			r2.e = append(r2.e, e)
		}
	}
	for i, e := range r2.e {
		r2.shares[e.owner] += frac(e.pos - r2.predPos(i))
	}
	res.leave, res.leaveMin = maxOverMean(r2.shares, alive)
	if rebalR > 0 {
		if repR > 0 {
			res.nrl = r2.repair(cands, alive, repR, repP, repThr)
		} else {
			res.nrl = r2.rebalance(cands, alive, V, rule, fix0, rebalR, rebalThr)
		}
		res.rl, _ = maxOverMean(r2.shares, alive)
	}
	return res
}

func main() {
	Ns := flag.String("N", "16,1024", "physical node counts")
	Vs := flag.String("V", "1,2,4,8,16", "virtual nodes per physical node")
	Ms := flag.String("M", "1,2,4,8,16,64", "K = M*V")
	rules := flag.String("rules", "ARC,VAR,GMAX", "rules")
	seeds := flag.Int("seeds", 10, "seeds")
	fix0 := flag.Bool("fix0", false, "position 0 = SHA-256(pk) always used")
	leave := flag.Float64("leave", 0.25, "fraction leaving")
	flag.Float64Var(&lo, "lo", 0.5, "TOP band low")
	flag.Float64Var(&hi, "hi", 1.5, "TOP band high")
	flag.Float64Var(&alpha, "alpha", 0.5, "TOPS weight on |t-tau|/tau")
	flag.Float64Var(&capf, "cap", 1.15, "TOPS joiner cap (x target mean)")
	flag.IntVar(&rebalR, "rebal", 0, "re-choice rounds after joins / after leave (0=off)")
	flag.Float64Var(&rebalThr, "rthr", 0.8, "re-choose if share < rthr*mean")
	flag.Float64Var(&pw, "p", 4, "POW exponent")
	flag.IntVar(&repR, "repair", 0, "if >0 (with -rebal>0): use single-position-move repair, this many rounds")
	flag.Float64Var(&repP, "rp", 8, "repair objective exponent")
	flag.Float64Var(&repThr, "rt", 1.1, "repair: only nodes with share >= rt*mean move")
	flag.Float64Var(&nnoise, "nnoise", 0, "relative error of joiner's node-count estimate (TOP/TOPS)")
	flag.Parse()
	fix0Global = *fix0
	fmt.Printf("# rule N V K fix0 | worst join max/mean | avg | worst leave max/mean | avg | worst join min/mean\n")
	for _, rule := range strings.Split(*rules, ",") {
		for _, ns := range strings.Split(*Ns, ",") {
			var N int
			fmt.Sscan(ns, &N)
			for _, vs := range strings.Split(*Vs, ",") {
				var V int
				fmt.Sscan(vs, &V)
				for _, ms := range strings.Split(*Ms, ",") {
					var M int
					fmt.Sscan(ms, &M)
					K := M * V
					rr := rule
					if M == 1 {
						rr = "RND"
					}
					var wj, wl, aj, al, wmin, wrj, wrl float64
					var nrj, nrl int
					wmin = math.Inf(1)
					for s := 0; s < *seeds; s++ {
						res := run(N, V, K, rr, *fix0, int64(s), *leave)
						wj = math.Max(wj, res.join)
						wl = math.Max(wl, res.leave)
						wmin = math.Min(wmin, res.joinMin)
						wrj = math.Max(wrj, res.rj)
						wrl = math.Max(wrl, res.rl)
						nrj += res.nrj
						nrl += res.nrl
						aj += res.join / float64(*seeds)
						al += res.leave / float64(*seeds)
					}
					fmt.Printf("%s %d %d %d %v | %.3f | %.3f | %.3f | %.3f | %.3f", rr, N, V, K, *fix0, wj, aj, wl, al, wmin)
					if rebalR > 0 {
						fmt.Printf(" || rebal: join %.3f (%.1f re-choices/seed) | leave %.3f (%.1f/seed)", wrj, float64(nrj)/float64(*seeds), wrl, float64(nrl)/float64(*seeds))
					}
					fmt.Println()
					os.Stdout.Sync()
				}
			}
		}
	}
}
