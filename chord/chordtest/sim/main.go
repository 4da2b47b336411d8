// Command sim simulates Chord rings of many nodes on the in-memory network of
// package chordtest and prints lookup figures: hops per lookup (the number of
// remote nodes a lookup queries) and the fraction of lookups that name the
// true owner, cold (empty lookup cache), warm (after the requesting node did
// -warmup lookups of other random keys) and under churn. Then request
// figures: the calls between nodes per GET and per PUT of the records layer
// (package dht, records kept in memory), cold (empty caches before each) and
// warm (after the entry node did -warmup GETs of other records), with the
// owner's replica pushes counted apart. Last, ring maintenance: the calls
// each node makes and serves per minute when the ring only runs its
// periodic rounds at their configured intervals, with no requests (-maint-for
// of virtual time per ring size).
//
// With -vnodes V, the balance of virtual nodes (each node at V ring
// positions, chosen by chord.ChoosePositions): the share of the circle and
// the records the most loaded node holds, for the sizes of -balance-n. With
// V > 1 also, for each physical ring size of -vnodes-n, the cold lookups and
// the ring maintenance of a ring of virtual nodes, set up as the daemon sets
// one up (vnodes.go), against the same nodes at one position each: mean hops
// from a random physical node started at its position nearest before the key
// (as requests start) and at its position 0, and maintenance calls per
// physical node per minute with the further positions' slower rounds, and
// their ratio to those at one position. Each table says its targets.
//
// Time is virtual: the simulator calls each node's round methods (Stabilize,
// FixFingers, CheckPredecessor, ProbeEvicted) itself, in event order, and
// the network answers at once, so thousands of nodes run on one core.
//
// Churn follows the experiment of Stoica et al. (Chord, IEEE/ACM ToN 2003,
// "simultaneous node joins and failures"): nodes join and fail as Poisson
// processes, each at rate R per second, every node runs its maintenance
// rounds at intervals drawn uniformly from [15 s, 45 s] (30 s on average),
// and lookups of random keys from random live nodes are issued at a steady
// rate. A lookup is correct if the owner it returns is the successor of the
// key among the nodes alive at that moment; failed lookups are not retried.
package main

import (
	"container/heap"
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/chord/chordtest"
	"github.com/durachord/durachord/dht"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(2)
	}
}

type options struct {
	sizes     []int
	lookups   int
	warmNodes int
	warmup    int
	churnN    int
	rates     []float64
	churnFor  time.Duration
	lookupHz  float64
	seed      uint64
	listLen   int
	maintFor  time.Duration
}

func run(args []string) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	sizes := fs.String("n", "64,256,1024,4096", "ring sizes to simulate, comma separated (empty: none, churn runs only)")
	lookups := fs.Int("lookups", 2000, "cold lookups per ring size; also cold PUTs, cold GETs and warm requests")
	warmNodes := fs.Int("warm-nodes", 10, "requesting nodes for the warm measurement")
	warmup := fs.Int("warmup", 1000, "lookups (for the request figures: GETs) of random keys each warm node does before it is measured")
	churnN := fs.Int("churn-n", 1024, "ring size for the churn runs (0: none)")
	rates := fs.String("rates", "0.05,0.1,0.2,0.4", "join rate = failure rate R per second for the churn runs, comma separated")
	churnFor := fs.Duration("churn-for", 30*time.Minute, "virtual duration of each churn run")
	lookupHz := fs.Float64("lookup-rate", 10, "lookups per virtual second during churn")
	seed := fs.Uint64("seed", 1, "random seed")
	listLen := fs.Int("successors", 8, "successor list length")
	maintFor := fs.Duration("maint-for", time.Minute, "virtual duration of the ring-maintenance measurement of each ring size (0: none)")
	vnodes := fs.Int("vnodes", 0, "positions per node (virtual nodes) for the balance measurement and, above 1, the cold lookups and ring maintenance of rings of virtual nodes (0: none)")
	vnodesN := fs.String("vnodes-n", "16,64,256,1024", "physical ring sizes of the virtual-node lookup and maintenance measurement, comma separated (empty: balance only)")
	balanceN := fs.String("balance-n", "16,1024", "ring sizes of the virtual-node balance measurement")
	balanceSeeds := fs.Int("balance-seeds", 10, "seeds of the virtual-node balance measurement")
	balanceRepl := fs.Int("balance-replication", 3, "replication of the virtual-node balance measurement")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := options{lookups: *lookups, warmNodes: *warmNodes, warmup: *warmup, churnN: *churnN,
		churnFor: *churnFor, lookupHz: *lookupHz, seed: *seed, listLen: *listLen, maintFor: *maintFor}
	if o.maintFor < 0 {
		return fmt.Errorf("-maint-for: negative duration %v", o.maintFor)
	}
	for _, s := range strings.Split(*sizes, ",") {
		if strings.TrimSpace(s) == "" {
			continue // -n "": churn runs only
		}
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || v < 2 {
			return fmt.Errorf("-n: bad size %q", s)
		}
		o.sizes = append(o.sizes, v)
	}
	for _, s := range strings.Split(*rates, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("-rates: bad rate %q", s)
		}
		o.rates = append(o.rates, v)
	}

	if *vnodes < 0 || *vnodes > 256 || *balanceSeeds < 1 || *balanceRepl < 1 {
		return fmt.Errorf("-vnodes must be in [0, 256], -balance-seeds and -balance-replication at least 1")
	}
	var vsizes []int
	if *vnodes > 1 {
		for _, s := range strings.Split(*vnodesN, ",") {
			if strings.TrimSpace(s) == "" {
				continue // -vnodes-n "": balance only
			}
			v, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || v < 2 {
				return fmt.Errorf("-vnodes-n: bad size %q", s)
			}
			vsizes = append(vsizes, v)
		}
	}
	if *vnodes > 0 {
		var bs []int
		for _, s := range strings.Split(*balanceN, ",") {
			v, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || v < 1 {
				return fmt.Errorf("-balance-n: bad size %q", s)
			}
			bs = append(bs, v)
		}
		defer printBalance(bs, *vnodes, *balanceRepl, *balanceSeeds, *seed)
	}
	fmt.Printf("# durachord ring simulation (seed %d, successor list %d, cache %d)\n",
		o.seed, o.listLen, chord.DefaultConfig().CacheSize)
	fmt.Printf("%-6s %-22s %8s %6s %4s %4s %9s  %-26s %s\n", "N", "phase", "lookups", "mean", "p50", "p99", "correct", "target", "result")
	var reqs []reqRow
	var maint []maintStats
	for _, n := range o.sizes {
		start := time.Now()
		s, err := newSim(o, n)
		if err != nil {
			return err
		}
		if err := s.build(n); err != nil {
			return err
		}
		if bad := s.checkRing(); bad != 0 {
			fmt.Printf("%-6d ring built with %d nodes in a wrong state\n", n, bad)
		}
		cold := s.measure(o.lookups, true)
		target := 0.5*math.Log2(float64(n)) + 0.5
		s.print(n, "cold", cold, fmt.Sprintf("mean<=%.2f, 100%% correct", target), cold.mean() <= target && cold.correct == cold.count)
		warm := s.measureWarm(o.warmNodes, o.warmup, o.lookups/o.warmNodes)
		if n == 1024 {
			s.print(n, "warm", warm, "mean<=1.5, 100% correct", warm.mean() <= 1.5 && warm.correct == warm.count)
		} else {
			s.print(n, "warm", warm, "100% correct", warm.correct == warm.count)
		}
		coldReq, recs := s.measureRequestsCold(o.lookups)
		reqs = append(reqs, reqRow{n: n, phase: "cold", st: coldReq, lookupMean: cold.mean()})
		warmReq := s.measureRequestsWarm(recs, o.warmNodes, o.warmup, o.lookups/o.warmNodes)
		reqs = append(reqs, reqRow{n: n, phase: "warm", st: warmReq, lookupMean: warm.mean()})
		if o.maintFor > 0 {
			maint = append(maint, s.maintain(o.maintFor))
		}
		fmt.Fprintf(os.Stderr, "N=%d done in %v\n", n, time.Since(start).Round(time.Millisecond))
	}
	if o.churnN > 0 {
		for _, r := range o.rates {
			start := time.Now()
			s, err := newSim(o, o.churnN)
			if err != nil {
				return err
			}
			if err := s.build(o.churnN); err != nil {
				return err
			}
			st, live := s.churn(r, o.churnFor, o.lookupHz)
			s.print(o.churnN, fmt.Sprintf("churn R=%.2f/s", r), st, ">=99% correct", float64(st.correct) >= 0.99*float64(st.count))
			fmt.Fprintf(os.Stderr, "churn R=%.2f done in %v (%d nodes alive at the end)\n", r, time.Since(start).Round(time.Millisecond), live)
		}
	}
	if len(reqs) > 0 {
		fmt.Println()
		fmt.Println("# requests: calls between nodes per GET and per PUT through the entry node (the owner's replica pushes apart)")
		printRequestHeader()
		for _, r := range reqs {
			r.print()
		}
	}
	if len(maint) > 0 {
		fmt.Println()
		printMaintHeader(maint[0].cfg, o.maintFor)
		for _, m := range maint {
			m.print()
		}
	}
	if len(vsizes) > 0 {
		var rows []vnodeRow
		for _, n := range vsizes {
			r, err := measureVNodeRing(o, n, *vnodes)
			if err != nil {
				return err
			}
			rows = append(rows, r)
		}
		fmt.Println()
		printVNodeHops(rows)
		if o.maintFor > 0 {
			fmt.Println()
			printVNodeMaint(rows, o.maintFor)
		}
	}
	return nil
}

// stats collects lookup outcomes.
type stats struct {
	hops    []int
	count   int
	correct int
	errors  int
}

func (s *stats) add(hops int, correct bool, err error) {
	s.count++
	if err != nil {
		s.errors++
		return
	}
	s.hops = append(s.hops, hops)
	if correct {
		s.correct++
	}
}

func (s *stats) mean() float64 {
	if len(s.hops) == 0 {
		return 0
	}
	sum := 0
	for _, h := range s.hops {
		sum += h
	}
	return float64(sum) / float64(len(s.hops))
}

func (s *stats) pct(p float64) int {
	if len(s.hops) == 0 {
		return 0
	}
	h := slices.Clone(s.hops)
	slices.Sort(h)
	i := int(math.Ceil(p*float64(len(h)))) - 1
	return h[max(0, min(i, len(h)-1))]
}

type sim struct {
	o     options
	rng   *rand.Rand
	net   *chordtest.Network
	cfg   chord.Config
	dcfg  dht.Config
	nodes map[chord.ID]*chord.Node
	svcs  map[chord.ID]*dht.Service
	calls *callCounter
	ring  []chord.ID // sorted IDs of live nodes
	last  chord.ID   // the node that joined last
	ctx   context.Context
	// phys are the physical nodes of a ring built by buildVNodes, each at
	// its ring positions; nil when every node stands at one position.
	phys []*physical
	// cfgs are the configs of the positions whose rounds run at other
	// intervals than cfg's (a node's further positions).
	cfgs map[chord.ID]chord.Config
}

func newSim(o options, n int) (*sim, error) {
	net, err := chordtest.New(chordtest.Config{Seed: o.seed})
	if err != nil {
		return nil, err
	}
	cfg := chord.DefaultConfig()
	cfg.SuccessorListLen = o.listLen
	// Rounds run in virtual time, but a confirm delay would be a real sleep;
	// and here a failed call always means a crashed node (no blips), which
	// the delay would only evict 250ms later.
	cfg.ConfirmDelay = 0
	return &sim{
		o:     o,
		rng:   rand.New(rand.NewPCG(o.seed, uint64(n))),
		net:   net,
		cfg:   cfg,
		dcfg:  simRecordsConfig(),
		nodes: make(map[chord.ID]*chord.Node),
		svcs:  make(map[chord.ID]*dht.Service),
		calls: &callCounter{n: make(map[string]int)},
		ctx:   context.Background(),
	}, nil
}

func (s *sim) print(n int, phase string, st stats, target string, pass bool) {
	res := "MISS"
	if pass {
		res = "PASS"
	}
	correct := 0.0
	if st.count > 0 {
		correct = 100 * float64(st.correct) / float64(st.count)
	}
	fmt.Printf("%-6d %-22s %8d %6.2f %4d %4d %8.2f%%  %-26s %s\n", n, phase, st.count, st.mean(), st.pct(0.5), st.pct(0.99), correct, target, res)
}

func (s *sim) randomID() chord.ID {
	var id chord.ID
	for i := 0; i < len(id); i += 8 {
		v := s.rng.Uint64()
		for j := range 8 {
			id[i+j] = byte(v >> (8 * j))
		}
	}
	return id
}

func (s *sim) newNode() (*chord.Node, error) {
	id := s.randomID()
	info := chord.NodeInfo{ID: id, Addr: "sim-" + id.String()[:16]}
	tr := countingTransport{Transport: s.net.Transport(info), self: info, c: s.calls}
	n, err := chord.New(s.cfg, info, tr, nil)
	if err != nil {
		return nil, err
	}
	svc, err := dht.New(s.dcfg, n, tr, newMemRecords())
	if err != nil {
		return nil, err
	}
	s.svcs[id] = svc
	s.net.Listen(info, n)
	return n, nil
}

func (s *sim) insert(n *chord.Node) {
	id := n.Self().ID
	i, _ := slices.BinarySearchFunc(s.ring, id, chord.ID.Cmp)
	s.ring = slices.Insert(s.ring, i, id)
	s.nodes[id] = n
}

func (s *sim) remove(id chord.ID) {
	i, found := slices.BinarySearchFunc(s.ring, id, chord.ID.Cmp)
	if found {
		s.ring = slices.Delete(s.ring, i, i+1)
	}
	delete(s.nodes, id)
	delete(s.svcs, id)
}

// owner is the true successor of id among the live nodes.
func (s *sim) owner(id chord.ID) chord.ID {
	i, _ := slices.BinarySearchFunc(s.ring, id, chord.ID.Cmp)
	return s.ring[i%len(s.ring)]
}

func (s *sim) randomNode() *chord.Node { return s.nodes[s.ring[s.rng.IntN(len(s.ring))]] }

// join adds a node through a random live node.
func (s *sim) join() error {
	n, err := s.newNode()
	if err != nil {
		return err
	}
	via := s.randomNode()
	if err := n.Join(s.ctx, []string{via.Self().Addr}); err != nil {
		return fmt.Errorf("join %v via %v: %w", n.Self(), via.Self(), err)
	}
	s.insert(n)
	s.last = n.Self().ID
	return nil
}

func (s *sim) lastJoined() chord.ID { return s.last }

// build makes a stable ring of size nodes: sequential joins, each followed
// by a stabilise round of the newcomer's successor-list-length predecessors,
// nearest first (which a running ring does within one stabilise interval),
// then stabilise and fix-fingers rounds of every node.
func (s *sim) build(size int) error {
	first, err := s.newNode()
	if err != nil {
		return err
	}
	if err := first.Create(); err != nil {
		return err
	}
	s.insert(first)
	for len(s.ring) < size {
		if err := s.join(); err != nil {
			return err
		}
		s.stabilizeBefore(s.last)
	}
	s.settle()
	return nil
}

// stabilizeBefore runs a stabilise round of the successor-list-length
// predecessors of the node id that just joined, nearest first.
func (s *sim) stabilizeBefore(id chord.ID) {
	i, _ := slices.BinarySearchFunc(s.ring, id, chord.ID.Cmp)
	for k := 1; k <= min(s.o.listLen, len(s.ring)-1); k++ {
		_ = s.nodes[s.ring[(i-k+len(s.ring))%len(s.ring)]].Stabilize(s.ctx)
	}
}

// settle runs stabilise and fix-fingers rounds of every node of a ring
// built by joins, until the successor lists and fingers are right.
func (s *sim) settle() {
	for range 3 {
		// Reverse ring order propagates whole successor lists in one pass.
		for i := len(s.ring) - 1; i >= 0; i-- {
			_ = s.nodes[s.ring[i]].Stabilize(s.ctx)
		}
	}
	rounds := int(math.Log2(float64(len(s.ring)))) + 6
	for range rounds {
		for _, id := range s.ring {
			_ = s.nodes[id].FixFingers(s.ctx)
		}
	}
}

// checkRing counts nodes whose successor, predecessor or fingers are wrong.
func (s *sim) checkRing() int {
	bad := 0
	n := len(s.ring)
	for i, id := range s.ring {
		nd := s.nodes[id]
		p, ok := nd.Predecessor()
		succs := nd.Successors()
		wrong := !ok || p.ID != s.ring[(i-1+n)%n] || succs[0].ID != s.ring[(i+1)%n]
		for k, f := range nd.Fingers() {
			if f.ID != s.owner(id.AddPow2(k)) {
				wrong = true
				break
			}
		}
		if wrong {
			bad++
		}
	}
	return bad
}

func (s *sim) lookup(from *chord.Node, st *stats) {
	key := s.randomID()
	res, err := from.Lookup(s.ctx, key)
	st.add(res.Hops, err == nil && res.Owner.ID == s.owner(key), err)
}

// measure does count lookups of random keys from random nodes; cold empties
// the requesting node's cache first.
func (s *sim) measure(count int, cold bool) stats {
	var st stats
	for range count {
		from := s.randomNode()
		if cold {
			from.ForgetCache()
		}
		s.lookup(from, &st)
	}
	return st
}

// measureWarm picks nodes; each does warmup lookups of random keys, then
// count measured lookups of other random keys.
func (s *sim) measureWarm(nodes, warmup, count int) stats {
	var st stats
	for range nodes {
		from := s.randomNode()
		from.ForgetCache()
		var ignore stats
		for range warmup {
			s.lookup(from, &ignore)
		}
		for range count {
			s.lookup(from, &st)
		}
	}
	return st
}

// event is a scheduled action in virtual time.
type event struct {
	at   float64 // virtual seconds
	kind int
	node chord.ID
}

const (
	evMaintain = iota
	evJoin
	evFail
	evLookup
)

type events []event

func (e events) Len() int           { return len(e) }
func (e events) Less(i, j int) bool { return e[i].at < e[j].at }
func (e events) Swap(i, j int)      { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)        { *e = append(*e, x.(event)) }
func (e *events) Pop() any {
	old := *e
	x := old[len(old)-1]
	*e = old[:len(old)-1]
	return x
}

func (s *sim) maintainDelay() float64 { return 15 + 30*s.rng.Float64() }

func (s *sim) expDelay(rate float64) float64 { return s.rng.ExpFloat64() / rate }

// churn runs joins and failures at rate r each for d of virtual time, with
// lookups at lookupHz, and returns the lookup statistics and the final size.
func (s *sim) churn(r float64, d time.Duration, lookupHz float64) (stats, int) {
	var st stats
	q := &events{}
	for _, id := range s.ring {
		heap.Push(q, event{at: s.maintainDelay(), kind: evMaintain, node: id})
	}
	heap.Push(q, event{at: s.expDelay(r), kind: evJoin})
	heap.Push(q, event{at: s.expDelay(r), kind: evFail})
	heap.Push(q, event{at: s.expDelay(lookupHz), kind: evLookup})
	end := d.Seconds()
	for q.Len() > 0 {
		ev := heap.Pop(q).(event)
		if ev.at > end {
			break
		}
		switch ev.kind {
		case evMaintain:
			n, ok := s.nodes[ev.node]
			if !ok {
				continue // failed meanwhile
			}
			_ = n.CheckPredecessor(s.ctx)
			_ = n.Stabilize(s.ctx)
			_ = n.FixFingers(s.ctx)
			_ = n.ProbeEvicted(s.ctx)
			heap.Push(q, event{at: ev.at + s.maintainDelay(), kind: evMaintain, node: ev.node})
		case evJoin:
			if err := s.join(); err != nil {
				fmt.Fprintln(os.Stderr, "sim: churn join:", err)
			} else {
				id := s.lastJoined()
				heap.Push(q, event{at: ev.at + s.maintainDelay(), kind: evMaintain, node: id})
			}
			heap.Push(q, event{at: ev.at + s.expDelay(r), kind: evJoin})
		case evFail:
			if len(s.ring) > 2 {
				victim := s.randomNode().Self()
				s.net.Down(victim.Addr)
				s.remove(victim.ID)
			}
			heap.Push(q, event{at: ev.at + s.expDelay(r), kind: evFail})
		case evLookup:
			s.lookup(s.randomNode(), &st)
			heap.Push(q, event{at: ev.at + s.expDelay(lookupHz), kind: evLookup})
		}
	}
	return st, len(s.ring)
}

// simRecordsConfig is the records layer's config in the simulator: a ring
// built from nothing at once, whose nodes' records are current from the
// start (dht.Config.StartInSync).
func simRecordsConfig() dht.Config {
	c := dht.DefaultConfig()
	c.StartInSync = true
	return c
}
