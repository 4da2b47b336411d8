package main

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
)

// TestWarmRequestsOneCall: on a simulated ring of 64 nodes built from
// nothing, a node that has read records before reaches the owner of the next
// GET and PUT in one call (all but a few: a mean below 1.2 calls) (the figure docs/benchmarks.md gives for warm
// requests), and every request is answered right.
func TestWarmRequestsOneCall(t *testing.T) {
	o := options{lookups: 2000, warmNodes: 10, warmup: 1000, seed: 1, listLen: 8}
	s, err := newSim(o, 64)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.build(64); err != nil {
		t.Fatal(err)
	}
	if bad := s.checkRing(); bad != 0 {
		t.Fatalf("ring built with %d nodes in a wrong state", bad)
	}
	_, recs := s.measureRequestsCold(o.lookups)
	warm := s.measureRequestsWarm(recs, o.warmNodes, o.warmup, o.lookups/o.warmNodes)
	// A request now and then meets an owner the cache has not learned yet
	// (how often varies with the goroutines' timing: up to 1.1 in a run of
	// 400): the bound is looser than the table's target (1.005, `make
	// sim`), and far below the 3 calls of owners that would not answer
	// alone.
	t.Logf("warm requests: %.3f calls per GET, %.3f per PUT", warm.get.mean(), warm.put.mean())
	if g, p := warm.get.mean(), warm.put.mean(); g >= 1.2 || p >= 1.2 {
		t.Errorf("warm requests: %.3f calls per GET, %.3f per PUT; want below 1.2 each", g, p)
	}
	if all := warm.get.count + warm.put.count; warm.get.correct+warm.put.correct != all {
		t.Errorf("warm requests: %d of %d answered right", warm.get.correct+warm.put.correct, all)
	}
}

// TestMaintenanceTraffic: on a settled simulated ring of 64 nodes running
// chord's periodic rounds at the default intervals for a virtual minute with
// no requests, every node makes one neighbours call and one notify per
// stabilise interval and one ping per check-predecessor interval, the
// fix-fingers lookups make calls, no node makes more calls than twice what
// the intervals imply (the maintenance table of `make sim` cannot silently
// read zero or run away), and the records layer makes none (the table says
// it runs no rounds).
func TestMaintenanceTraffic(t *testing.T) {
	const n = 64
	o := options{seed: 1, listLen: 8}
	s, err := newSim(o, n)
	if err != nil {
		t.Fatal(err)
	}
	def := chord.DefaultConfig()
	if s.cfg.StabilizeInterval != def.StabilizeInterval || s.cfg.FixFingersInterval != def.FixFingersInterval ||
		s.cfg.CheckPredecessorInterval != def.CheckPredecessorInterval || s.cfg.ProbeInterval != def.ProbeInterval {
		t.Fatalf("simulated intervals %v/%v/%v/%v; want the defaults %v/%v/%v/%v",
			s.cfg.StabilizeInterval, s.cfg.FixFingersInterval, s.cfg.CheckPredecessorInterval, s.cfg.ProbeInterval,
			def.StabilizeInterval, def.FixFingersInterval, def.CheckPredecessorInterval, def.ProbeInterval)
	}
	if err := s.build(n); err != nil {
		t.Fatal(err)
	}
	if bad := s.checkRing(); bad != 0 {
		t.Fatalf("ring built with %d nodes in a wrong state", bad)
	}
	st := s.maintain(time.Minute)
	perMin := func(d time.Duration) float64 { return time.Minute.Seconds() / d.Seconds() }
	exact := []struct {
		method string
		want   float64
	}{
		{"chord.neighbours", perMin(def.StabilizeInterval)},
		{"chord.notify", perMin(def.StabilizeInterval)},
		{"chord.ping", perMin(def.CheckPredecessorInterval)},
	}
	for _, e := range exact {
		mean, most := st.perMinute(st.sent, e.method)
		t.Logf("%s: %.2f calls per node per minute (max %.2f)", e.method, mean, most)
		if math.Abs(mean-e.want) > 1 || math.Abs(most-e.want) > 1 {
			t.Errorf("%s: mean %.2f, max %.2f calls per node per minute; want %.0f (one per round)", e.method, mean, most, e.want)
		}
	}
	if mean, most := st.perMinute(st.sent, "chord.find_successor"); mean <= 0 {
		t.Errorf("chord.find_successor: mean %.2f, max %.2f calls per node per minute; want fix-fingers lookups (> 0)", mean, most)
	} else {
		t.Logf("chord.find_successor: %.2f calls per node per minute (max %.2f)", mean, most)
	}
	limit := 2 * impliedPerMinute(def, n)
	if mean, most := st.perMinute(st.sent, ""); most > limit {
		t.Errorf("all calls: mean %.2f, max %.2f per node per minute; want at most %.0f (twice what the intervals imply)", mean, most, limit)
	}
	if mean, most := st.perMinute(st.sent, dhtMethods); most != 0 {
		t.Errorf("dht.*: mean %.2f, max %.2f calls per node per minute; want 0 (the simulator runs no records-layer rounds)", mean, most)
	}
	if len(st.unknown) > 0 {
		t.Errorf("maintenance made calls the table has no row for: %v", st.unknown)
	}
}

// TestVNodeRing: a simulated ring of 16 physical nodes at 4 positions each
// is the ring those 64 positions make: every node stands at its 4 positions
// at its one address, every position's successor, predecessor and fingers
// are right, and a cold lookup from any position names the true successor
// among all positions, for random keys and for keys at and just past each
// position (the arcs' ends). The further positions run their rounds slower:
// a node makes 60 + 3*15 neighbours calls a minute. The ring at one position
// is that of the same nodes' positions 0.
func TestVNodeRing(t *testing.T) {
	const n, v = 16, 4
	o := options{seed: 1, listLen: 8}
	s, err := newSim(o, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.buildVNodes(n, v); err != nil {
		t.Fatal(err)
	}
	var all []chord.NodeInfo
	for _, p := range s.phys {
		if len(p.nodes) != v {
			t.Fatalf("node %s stands at %d positions; want %d", p.addr, len(p.nodes), v)
		}
		for _, nd := range p.nodes {
			if nd.Self().Addr != p.addr {
				t.Fatalf("position %v of node %s is at another address", nd.Self(), p.addr)
			}
			all = append(all, nd.Self())
		}
	}
	slices.SortFunc(all, func(a, b chord.NodeInfo) int { return a.ID.Cmp(b.ID) })
	all = slices.CompactFunc(all, func(a, b chord.NodeInfo) bool { return a.ID == b.ID })
	if len(all) != n*v || len(s.ring) != n*v {
		t.Fatalf("%d distinct positions, %d on the simulated ring; want %d", len(all), len(s.ring), n*v)
	}
	if bad := s.checkRing(); bad != 0 {
		t.Fatalf("ring built with %d positions in a wrong state", bad)
	}
	successor := func(key chord.ID) chord.NodeInfo {
		i, _ := slices.BinarySearchFunc(all, key, func(x chord.NodeInfo, id chord.ID) int { return x.ID.Cmp(id) })
		return all[i%len(all)]
	}
	var keys []chord.ID
	for _, x := range all {
		keys = append(keys, x.ID, x.ID.AddPow2(0))
	}
	for range 32 {
		keys = append(keys, s.randomID())
	}
	for _, key := range keys {
		want := successor(key)
		for _, p := range s.phys {
			for _, nd := range p.nodes {
				nd.ForgetCache()
				res, err := nd.Lookup(s.ctx, key)
				if err != nil || res.Owner != want {
					t.Fatalf("Lookup(%s) from %v = %v, %v; want %v", key.Short(), nd.Self(), res.Owner, err, want)
				}
			}
		}
	}

	st := s.maintain(time.Minute)
	wantNb := 60.0 + (v-1)*60.0/v
	if mean, most := st.perMinute(st.sent, "chord.neighbours"); math.Abs(mean-wantNb) > 1 || math.Abs(most-wantNb) > v {
		t.Errorf("chord.neighbours: mean %.2f, max %.2f calls per node per minute; want %.0f (position 0 every second, the others every %d)", mean, most, wantNb, v)
	}

	one, err := newSim(o, n)
	if err != nil {
		t.Fatal(err)
	}
	if err := one.buildVNodes(n, 1); err != nil {
		t.Fatal(err)
	}
	for i, p := range one.phys {
		if got, want := p.nodes[0].Self(), s.phys[i].nodes[0].Self(); got != want {
			t.Fatalf("node %d at one position stands at %v; want %v, its position 0 at %d", i, got, want, v)
		}
	}
}
