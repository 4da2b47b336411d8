package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/durachord/durachord/chord"
)

// methodStore is the records layer's replica push (dht.store): counted apart
// from the calls that route a PUT to its owner.
const methodStore = "dht.store"

// reqStats collects the calls made per GET and per PUT: every call the
// request causes except the owner's replica pushes, which pushes counts.
type reqStats struct {
	get, put stats
	pushes   int
}

// reqRow is one row of the requests table.
type reqRow struct {
	n     int
	phase string
	st    reqStats
	// lookupMean is the mean hops of the same ring's lookups in the same
	// phase: a GET that looks the owner up first and then asks it costs
	// that plus one call.
	lookupMean float64
}

// stored is a record the simulation put, to check what GETs return.
type stored struct {
	key   [32]byte
	value []byte
}

func (s *sim) randomKey() [32]byte { return [32]byte(s.randomID()) }

// put stores a new random record through from and counts its calls.
func (s *sim) put(from *chord.Node, st *reqStats) (stored, error) {
	r := stored{key: s.randomKey(), value: []byte(fmt.Sprintf("value-%d", s.rng.Uint64()))}
	s.calls.take()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	err := s.svcs[from.Self().ID].Put(ctx, r.key, r.value, time.Hour, 0)
	cancel()
	n := s.calls.take()
	pushes := n[methodStore]
	st.pushes += pushes
	st.put.add(total(n)-pushes, err == nil, err)
	return r, err
}

// get reads a stored record through from and counts its calls.
func (s *sim) get(from *chord.Node, r stored, st *reqStats) {
	s.calls.take()
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	v, err := s.svcs[from.Self().ID].Get(ctx, r.key)
	cancel()
	n := s.calls.take()
	if err == nil && !bytes.Equal(v, r.value) {
		err = errors.New("wrong value")
	}
	st.get.add(total(n), err == nil, err)
}

func total(n map[string]int) int {
	t := 0
	for _, c := range n {
		t += c
	}
	return t
}

// measureRequestsCold puts count records and gets count of them, each from
// a random node whose lookup cache was emptied first.
func (s *sim) measureRequestsCold(count int) (reqStats, []stored) {
	var st reqStats
	var recs []stored
	for range count {
		from := s.randomNode()
		from.ForgetCache()
		if r, err := s.put(from, &st); err == nil {
			recs = append(recs, r)
		}
	}
	for range count {
		if len(recs) == 0 {
			break
		}
		from := s.randomNode()
		from.ForgetCache()
		s.get(from, recs[s.rng.IntN(len(recs))], &st)
	}
	return st, recs
}

// measureRequestsWarm picks nodes; each first gets warmup random records of
// recs (filling its cache), then is measured on count GETs of other random
// records of recs and count PUTs of new records.
func (s *sim) measureRequestsWarm(recs []stored, nodes, warmup, count int) reqStats {
	var st reqStats
	if len(recs) == 0 {
		return st
	}
	for range nodes {
		from := s.randomNode()
		from.ForgetCache()
		var ignore reqStats
		for range warmup {
			s.get(from, recs[s.rng.IntN(len(recs))], &ignore)
		}
		for range count {
			s.get(from, recs[s.rng.IntN(len(recs))], &st)
		}
		for range count {
			_, _ = s.put(from, &st)
		}
	}
	return st
}

func printRequestHeader() {
	fmt.Printf("%-6s %-6s %6s %7s %4s %4s %6s %7s %4s %4s %10s %9s  %-34s %s\n", "N", "phase",
		"GETs", "rpc/GET", "p50", "p99", "PUTs", "rpc/PUT", "p50", "p99", "pushes/PUT", "correct", "target", "result")
}

func (r reqRow) print() {
	st := r.st
	pushes := 0.0
	if st.put.count > 0 {
		pushes = float64(st.pushes) / float64(st.put.count)
	}
	ok, all := st.get.correct+st.put.correct, st.get.count+st.put.count
	correct := 0.0
	if all > 0 {
		correct = 100 * float64(ok) / float64(all)
	}
	var target string
	var pass bool
	switch {
	case r.phase == "cold":
		// No worse than a lookup followed by the call to the owner (the
		// lookups and the requests draw different keys: 0.05 of slack).
		limit := r.lookupMean + 1.05
		target = fmt.Sprintf("both<=%.2f, 100%% correct", limit)
		pass = st.get.mean() <= limit && st.put.mean() <= limit
	case r.n <= 1024:
		target = "both<=1.00, 100% correct"
		pass = st.get.mean() < 1.005 && st.put.mean() < 1.005
	default:
		target = "100% correct"
		pass = true
	}
	res := "MISS"
	if pass && ok == all {
		res = "PASS"
	}
	fmt.Printf("%-6d %-6s %6d %7.2f %4d %4d %6d %7.2f %4d %4d %10.2f %8.2f%%  %-34s %s\n", r.n, r.phase,
		st.get.count, st.get.mean(), st.get.pct(0.5), st.get.pct(0.99),
		st.put.count, st.put.mean(), st.put.pct(0.5), st.put.pct(0.99), pushes, correct, target, res)
}
