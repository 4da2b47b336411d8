package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

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
