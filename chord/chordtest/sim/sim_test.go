package main

import "testing"

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
