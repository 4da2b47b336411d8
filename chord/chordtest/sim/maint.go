package main

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/durachord/durachord/chord"
)

// The round kinds of the maintenance measurement, as events.
const (
	evStabilize = iota + evLookup + 1
	evFixFingers
	evCheckPredecessor
	evProbe
)

// maintMethods are the rows of the maintenance table, in order: the calls
// of chord's periodic rounds. The records layer's calls (dht.*) are summed
// in one more row.
var maintMethods = []string{"chord.neighbours", "chord.notify", "chord.ping", "chord.find_successor"}

const dhtMethods = "dht.*"

// maintStats are the calls of a stretch of maintenance with no requests,
// per node: per physical node, the sum over its ring positions.
type maintStats struct {
	n     int // physical nodes
	d     time.Duration
	cfg   chord.Config
	sent  map[chord.ID]map[string]int // calls each position made, by method
	recv  map[chord.ID]map[string]int // calls each position received, by method
	nodes [][]chord.ID                // each physical node's positions
	// local is the number of calls made to the caller's own address (from
	// one position of a node to another).
	local   int
	unknown []string // methods seen outside maintMethods and dht.*
}

// maintain runs every node's periodic rounds for d of virtual time, each
// round kind at its interval of the node's config (s.configOf) as
// chord.Node.Run does (a random stagger within the interval, then one round
// per interval), with no requests, and counts the calls each node makes and
// receives. The lookup caches are emptied first, so that fix-fingers and
// probe lookups route by fingers and successor lists only, as on a node that
// has served no requests. The staggers come from a random source of their
// own: the measurement leaves the simulation's draws as they were.
func (s *sim) maintain(d time.Duration) maintStats {
	rng := rand.New(rand.NewPCG(s.o.seed, uint64(len(s.ring))+1<<32))
	for _, id := range s.ring {
		// Replica pushes still queued from earlier PUTs are request
		// traffic: let them leave before counting.
		if svc := s.svcs[id]; svc != nil {
			svc.Wait()
		}
		s.nodes[id].ForgetCache()
	}
	interval := func(id chord.ID, kind int) float64 {
		cfg := s.configOf(id)
		switch kind {
		case evStabilize:
			return cfg.StabilizeInterval.Seconds()
		case evFixFingers:
			return cfg.FixFingersInterval.Seconds()
		case evCheckPredecessor:
			return cfg.CheckPredecessorInterval.Seconds()
		default:
			return cfg.ProbeInterval.Seconds()
		}
	}
	q := &events{}
	for _, id := range s.ring {
		for kind := evStabilize; kind <= evProbe; kind++ {
			heap.Push(q, event{at: rng.Float64() * interval(id, kind), kind: kind, node: id})
		}
	}
	s.calls.take()
	s.calls.takeLocal()
	s.calls.byNode()
	end := d.Seconds()
	for q.Len() > 0 {
		ev := heap.Pop(q).(event)
		if ev.at >= end {
			break
		}
		n := s.nodes[ev.node]
		switch ev.kind {
		case evStabilize:
			_ = n.Stabilize(s.ctx)
		case evFixFingers:
			_ = n.FixFingers(s.ctx)
		case evCheckPredecessor:
			_ = n.CheckPredecessor(s.ctx)
		case evProbe:
			_ = n.ProbeEvicted(s.ctx)
		}
		heap.Push(q, event{at: ev.at + interval(ev.node, ev.kind), kind: ev.kind, node: ev.node})
	}
	s.calls.take()
	sent, recv := s.calls.takeByNode()
	phys := s.physicalNodes()
	st := maintStats{n: len(phys), d: d, cfg: s.cfg, sent: sent, recv: recv, nodes: phys, local: s.calls.takeLocal()}
	seen := map[string]bool{}
	for _, m := range sent {
		for method := range m {
			if !slices.Contains(maintMethods, method) && !strings.HasPrefix(method, "dht.") && !seen[method] {
				seen[method] = true
				st.unknown = append(st.unknown, method)
			}
		}
	}
	slices.Sort(st.unknown)
	return st
}

// count is the calls of method (a name of maintMethods, dht.* for every
// records-layer call, "" for all) in m.
func count(m map[string]int, method string) int {
	c := 0
	for k, v := range m {
		switch {
		case method == "", k == method, method == dhtMethods && strings.HasPrefix(k, "dht."):
			c += v
		}
	}
	return c
}

// perMinute returns the mean and the largest number of calls of method per
// physical node per minute in by (sent or recv).
func (st maintStats) perMinute(by map[chord.ID]map[string]int, method string) (mean, most float64) {
	if st.n == 0 || st.d <= 0 {
		return 0, 0
	}
	total, top := 0, 0
	for _, ids := range st.nodes {
		c := 0
		for _, id := range ids {
			c += count(by[id], method)
		}
		total += c
		top = max(top, c)
	}
	mins := st.d.Minutes()
	return float64(total) / float64(st.n) / mins, float64(top) / mins
}

// impliedPerMinute is the number of calls per node per minute the intervals
// imply on a settled ring: per stabilise round a neighbours call and a
// notify, per check-predecessor round a ping, per fix-fingers round a lookup
// of at most log2(N) hops, per probe round ProbeCount such lookups (none on
// a settled ring, which evicted no peer: counted anyway, as the most a round
// could cost).
func impliedPerMinute(cfg chord.Config, n int) float64 {
	hops := math.Ceil(math.Log2(float64(max(n, 2))))
	perMin := func(d time.Duration) float64 { return time.Minute.Seconds() / d.Seconds() }
	return perMin(cfg.StabilizeInterval)*2 + perMin(cfg.CheckPredecessorInterval) +
		perMin(cfg.FixFingersInterval)*hops + perMin(cfg.ProbeInterval)*float64(cfg.ProbeCount)*hops
}

func printMaintHeader(cfg chord.Config, d time.Duration) {
	fmt.Printf("# ring maintenance: calls per node per minute, made (sent) and served (recv), over %v of virtual time with no requests\n", d)
	fmt.Printf("# rounds every %v (stabilise), %v (fix fingers), %v (check predecessor), %v (probe)\n",
		cfg.StabilizeInterval, cfg.FixFingersInterval, cfg.CheckPredecessorInterval, cfg.ProbeInterval)
	fmt.Printf("%-6s %-22s %9s %9s %9s  %-26s %s\n", "N", "method", "sent mean", "sent max", "recv max", "target", "result")
}

func (st maintStats) print() {
	for _, m := range append(slices.Clone(maintMethods), dhtMethods) {
		mean, most := st.perMinute(st.sent, m)
		_, recvMost := st.perMinute(st.recv, m)
		target := ""
		if m == dhtMethods {
			target = "(records layer: no rounds)"
		}
		fmt.Println(strings.TrimRight(fmt.Sprintf("%-6d %-22s %9.2f %9.2f %9.2f  %s", st.n, m, mean, most, recvMost, target), " "))
	}
	mean, most := st.perMinute(st.sent, "")
	_, recvMost := st.perMinute(st.recv, "")
	limit := 2 * impliedPerMinute(st.cfg, st.n)
	res := "MISS"
	if mean > 0 && most <= limit {
		res = "PASS"
	}
	fmt.Printf("%-6d %-22s %9.2f %9.2f %9.2f  %-26s %s\n", st.n, "all", mean, most, recvMost,
		fmt.Sprintf("0<mean, max<=%.0f", limit), res)
	if len(st.unknown) > 0 {
		fmt.Printf("%-6d also called (counted in all): %s\n", st.n, strings.Join(st.unknown, ", "))
	}
}
