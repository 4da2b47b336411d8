package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/api/apitest"
)

func serveWith(t *testing.T, svc api.Service) (*api.Server, string) {
	t.Helper()
	return apitest.Serve(t, api.DefaultConfig(), svc)
}

func runBenchJSON(t *testing.T, args ...string) benchReport {
	t.Helper()
	code, stdout, stderr := runWithInput(t, nil, append([]string{"bench", "--json"}, args...)...)
	if code != exitOK {
		t.Fatalf("dhtctl bench %s = %d, stderr %q", strings.Join(args, " "), code, stderr)
	}
	if stderr != "" {
		t.Fatalf("bench --json wrote %q to stderr; want nothing", stderr)
	}
	var rep benchReport
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("bench --json output %q: %v", stdout, err)
	}
	return rep
}

func TestBench(t *testing.T) {
	svc, addr := serveMem(t)
	_, addr2 := serveMem(t)
	tests := []struct {
		name      string
		args      []string
		ops       int64
		onlyPuts  bool
		onlyGets  bool
		wantAddrs int
	}{
		{"mix", []string{"--api", addr, "--ops", "400", "--concurrency", "4", "--keys", "40"}, 400, false, false, 1},
		{"puts only, confirmed", []string{"--api", addr, "--ops", "100", "-c", "2", "--keys", "10", "--get-ratio", "0", "--put-confirm"}, 100, true, false, 1},
		{"gets only", []string{"--api", addr, "--ops", "50", "-c", "5", "--keys", "5", "--get-ratio", "1"}, 50, false, true, 1},
		{"two nodes", []string{"--api", addr + "," + addr2, "--ops", "60", "-c", "3", "--keys", "30"}, 60, false, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := runBenchJSON(t, tt.args...)
			if rep.Ops != tt.ops || rep.Put.Count+rep.Get.Count != tt.ops {
				t.Fatalf("ops %d = %d PUT + %d GET; want %d", rep.Ops, rep.Put.Count, rep.Get.Count, tt.ops)
			}
			if rep.GetHits+rep.GetMisses+rep.FailedGets+rep.Errors != rep.Get.Count && !rep.PutConfirm {
				t.Fatalf("GET outcomes %+v do not add up to %d GETs", rep, rep.Get.Count)
			}
			if rep.FailedGets != 0 || rep.Errors != 0 {
				t.Fatalf("failed GETs %d, errors %d; want 0, 0", rep.FailedGets, rep.Errors)
			}
			if tt.onlyPuts && rep.Get.Count != 0 || tt.onlyGets && rep.Put.Count != 0 {
				t.Fatalf("PUT %d GET %d; want only %s", rep.Put.Count, rep.Get.Count, map[bool]string{true: "PUTs", false: "GETs"}[tt.onlyPuts])
			}
			if len(rep.Addrs) != tt.wantAddrs {
				t.Fatalf("addrs %v; want %d", rep.Addrs, tt.wantAddrs)
			}
			if rep.Put.Count > 0 && (rep.Put.P50 <= 0 || rep.Put.P50 > rep.Put.P999 || rep.Put.P999 > rep.Put.Max) {
				t.Fatalf("PUT latencies %+v are not ordered", rep.Put)
			}
		})
	}
	if svc.Puts() == 0 {
		t.Fatal("bench stored nothing")
	}
}

// TestBenchFailedGets: a node that loses PUTs shows up as failed GETs.
func TestBenchFailedGets(t *testing.T) {
	_, addr := serveWith(t, dropPuts{})
	rep := runBenchJSON(t, "--api", addr, "--ops", "200", "-c", "1", "--keys", "1")
	if rep.FailedGets == 0 || rep.GetHits != 0 {
		t.Fatalf("against a node that loses PUTs: %d failed GETs, %d hits; want some failed, no hits", rep.FailedGets, rep.GetHits)
	}
	if rep.FailedGets+rep.GetMisses != rep.Get.Count {
		t.Fatalf("failed %d + misses %d != GETs %d", rep.FailedGets, rep.GetMisses, rep.Get.Count)
	}
}

// TestBenchGetOnly: in a GET-only run, a FAILURE counts as a failed GET only
// for keys that --preload put first; without it every FAILURE is a miss.
func TestBenchGetOnly(t *testing.T) {
	const ops, keys = 60, 12
	tests := []struct {
		name                 string
		svc                  api.Service
		preload              bool
		wantPreloaded        int64
		wantPreloadFailed    int64
		wantHits, wantMisses int64
		wantFailed           int64
	}{
		{"no preload, empty node", apitest.NewMemService(), false, 0, 0, 0, ops, 0},
		{"preload, healthy node", apitest.NewMemService(), true, keys, 0, ops, 0, 0},
		{"preload, node that loses PUTs", dropPuts{}, true, 0, keys, 0, 0, ops},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, addr := serveWith(t, tt.svc)
			args := []string{"--api", addr, "--ops", strconv.Itoa(ops), "-c", "3", "--keys", strconv.Itoa(keys), "--get-ratio", "1"}
			if tt.preload {
				args = append(args, "--preload")
			}
			rep := runBenchJSON(t, args...)
			if rep.Preloaded != tt.wantPreloaded || rep.PreloadFailed != tt.wantPreloadFailed {
				t.Errorf("preloaded %d, preload failed %d; want %d, %d", rep.Preloaded, rep.PreloadFailed, tt.wantPreloaded, tt.wantPreloadFailed)
			}
			if rep.Put.Count != 0 || rep.Get.Count != ops {
				t.Errorf("timed %d PUTs, %d GETs; want 0, %d (preload is not timed)", rep.Put.Count, rep.Get.Count, ops)
			}
			if rep.GetHits != tt.wantHits || rep.GetMisses != tt.wantMisses || rep.FailedGets != tt.wantFailed || rep.Errors != 0 {
				t.Errorf("hits %d, misses %d, failed %d, errors %d; want %d, %d, %d, 0",
					rep.GetHits, rep.GetMisses, rep.FailedGets, rep.Errors, tt.wantHits, tt.wantMisses, tt.wantFailed)
			}
		})
	}
}

func TestBenchText(t *testing.T) {
	_, addr := serveMem(t)
	code, stdout, stderr := runWithInput(t, nil, "bench", "--api", addr, "--ops", "20", "-c", "2", "--keys", "4")
	if code != exitOK || !strings.Contains(stdout, "20 ops in") || !strings.Contains(stdout, "p99.9") || !strings.Contains(stdout, "failed") {
		t.Fatalf("bench = %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if stderr != "" {
		t.Fatalf("bench wrote %q to a stderr that is not a terminal; want no progress bar", stderr)
	}
}

func TestBenchBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--keys", "2", "-c", "4"},
		{"--value-size", "0"},
		{"--value-size", "65496"},
		{"--get-ratio", "1.5"},
		{"--ops", "0"},
		{"--api", ","},
	} {
		code, _, stderr := runWithInput(t, nil, append([]string{"bench"}, args...)...)
		if code != exitError || !bytes.HasPrefix([]byte(stderr), []byte("dhtctl: bench:")) {
			t.Errorf("bench %v = %d, %q; want %d and a bench error", args, code, stderr, exitError)
		}
	}
}

// nodes is an in-memory store shared by several nodes; it counts the GETs
// each node answers by whether the key was put through that node or another.
type nodes struct {
	store *apitest.MemService

	mu               sync.Mutex // guards putBy, sameNode, otherNode
	putBy            map[[api.KeySize]byte]string
	sameNode, others int
}

// nodeOf is one node of nodes.
type nodeOf struct {
	*nodes
	name string
}

func (n nodeOf) Put(ctx context.Context, p api.Put) error {
	n.mu.Lock()
	n.putBy[p.Key] = n.name
	n.mu.Unlock()
	return n.store.Put(ctx, p)
}

func (n nodeOf) Get(ctx context.Context, key [api.KeySize]byte) ([]byte, error) {
	n.mu.Lock()
	if n.putBy[key] == n.name {
		n.sameNode++
	} else {
		n.others++
	}
	n.mu.Unlock()
	return n.store.Get(ctx, key)
}

// TestBenchGetViaOther: with --get-via-other no timed GET is answered by
// the node that took the key's PUT (only --preload's confirming GETs are),
// and every GET still finds its record.
func TestBenchGetViaOther(t *testing.T) {
	const ops, keys = 90, 30
	for _, via := range []bool{false, true} {
		t.Run(fmt.Sprintf("get-via-other=%v", via), func(t *testing.T) {
			ns := &nodes{store: apitest.NewMemService(), putBy: map[[api.KeySize]byte]string{}}
			var addrs []string
			for _, name := range []string{"a", "b", "c"} {
				_, addr := serveWith(t, nodeOf{nodes: ns, name: name})
				addrs = append(addrs, addr)
			}
			args := []string{"--api", strings.Join(addrs, ","), "--ops", strconv.Itoa(ops), "-c", "3",
				"--keys", strconv.Itoa(keys), "--get-ratio", "1", "--preload"}
			if via {
				args = append(args, "--get-via-other")
			}
			rep := runBenchJSON(t, args...)
			if rep.GetHits != ops || rep.FailedGets != 0 || rep.Errors != 0 || rep.GetViaOther != via {
				t.Fatalf("hits %d, failed %d, errors %d, get_via_other %v; want %d, 0, 0, %v",
					rep.GetHits, rep.FailedGets, rep.Errors, rep.GetViaOther, ops, via)
			}
			wantSame, wantOther := keys+ops, 0 // preload's confirming GETs + the timed GETs
			if via {
				wantSame, wantOther = keys, ops
			}
			ns.mu.Lock()
			defer ns.mu.Unlock()
			if ns.sameNode != wantSame || ns.others != wantOther {
				t.Fatalf("GETs answered by the PUT's node %d, by another node %d; want %d, %d", ns.sameNode, ns.others, wantSame, wantOther)
			}
		})
	}
}

func TestBenchGetViaOtherNeedsTwoNodes(t *testing.T) {
	_, addr := serveMem(t)
	code, _, stderr := runWithInput(t, nil, "bench", "--api", addr, "--get-via-other", "--ops", "1", "-c", "1", "--keys", "1")
	if code != exitError || !strings.Contains(stderr, "--get-via-other needs at least two --api addresses") {
		t.Fatalf("bench --get-via-other with one address = %d, %q; want %d and the reason", code, stderr, exitError)
	}
}

// TestLatencyHistogramPercentiles: each percentile the histogram reports is
// the latency at that rank among the samples, within the histogram's
// precision (3 significant digits, whole microseconds).
func TestLatencyHistogramPercentiles(t *testing.T) {
	const n = 20000
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name string
		gen  func(i int) time.Duration
	}{
		{"uniform 1us..100ms", func(int) time.Duration {
			return time.Microsecond + time.Duration(rng.Int64N(int64(100*time.Millisecond)))
		}},
		{"exponential, mean 2ms", func(int) time.Duration { return time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond)) }},
		{"bimodal 200us / 50ms", func(i int) time.Duration {
			if i%10 == 0 {
				return 50*time.Millisecond + time.Duration(rng.Int64N(int64(5*time.Millisecond)))
			}
			return 200*time.Microsecond + time.Duration(rng.Int64N(int64(20*time.Microsecond)))
		}},
		{"log-uniform 10us..10s", func(int) time.Duration {
			return time.Duration(math.Pow(10, 4+6*rng.Float64())) // ns
		}},
		{"constant 1.5ms", func(int) time.Duration { return 1500 * time.Microsecond }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newLatencyHistogram()
			samples := make([]time.Duration, n)
			for i := range samples {
				samples[i] = tt.gen(i)
				h.record(samples[i])
			}
			slices.Sort(samples)
			rep := h.report()
			if rep.Count != n {
				t.Fatalf("count %d; want %d", rep.Count, n)
			}
			if want := ms(samples[n-1]); rep.Max != want {
				t.Errorf("max %vms; want %vms (exact)", rep.Max, want)
			}
			for _, p := range []struct {
				q   float64
				got float64
			}{{0.50, rep.P50}, {0.90, rep.P90}, {0.99, rep.P99}, {0.999, rep.P999}} {
				// The sample at rank ceil(q*n), give or take one rank,
				// within 0.1% and the microsecond the histogram counts in.
				r := int(math.Ceil(p.q * n))
				lo := ms(samples[max(r-2, 0)])*(1-1e-3) - 1e-3
				hi := ms(samples[min(r, n-1)])*(1+1e-3) + 1e-3
				if p.got < lo || p.got > hi {
					t.Errorf("p%v = %vms; want %v..%vms", 100*p.q, p.got, lo, hi)
				}
			}
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// TestLatencyHistogramBounds: latencies past the histogram's range count as
// its longest; an empty histogram reports zeros.
func TestLatencyHistogramBounds(t *testing.T) {
	h := newLatencyHistogram()
	if rep := h.report(); rep != (latencyReport{}) {
		t.Fatalf("empty histogram reports %+v; want zeros", rep)
	}
	h.record(0)
	h.record(3 * time.Hour)
	rep := h.report()
	if rep.Count != 2 || rep.Max != ms(3*time.Hour) {
		t.Fatalf("count %d, max %vms; want 2, %vms", rep.Count, rep.Max, ms(3*time.Hour))
	}
	if hour := ms(time.Hour); rep.P999 < hour*(1-1e-3) || rep.P999 > hour*(1+1e-3) {
		t.Fatalf("p99.9 of a 3h latency = %vms; want about %vms (the histogram's range)", rep.P999, hour)
	}
}

// BenchmarkLatencyHistogramRecord: the cost of counting one latency, from
// as many goroutines as a bench has connections.
func BenchmarkLatencyHistogramRecord(b *testing.B) {
	h := newLatencyHistogram()
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := 437 * time.Microsecond
		for pb.Next() {
			h.record(d)
			d += 13 * time.Microsecond
		}
	})
}
