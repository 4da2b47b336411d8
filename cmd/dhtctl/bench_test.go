package main

import (
	"bytes"
	"encoding/json"
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
