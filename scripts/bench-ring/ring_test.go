package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/durachord/durachord/internal/testenv"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v; want %v", tt.xs, got, tt.want)
		}
	}
}

// TestRatiosSameRun: a ratio is taken within each run, then the median of
// those; a run in which either side failed does not count.
func TestRatiosSameRun(t *testing.T) {
	res := func(sys string, putOps, getP99 float64, failed string) result {
		return result{System: sys, Put: phase{OpsPerSec: putOps}, Get: phase{OpsPerSec: 1, P99: getP99}, Failed: failed}
	}
	runs := []runResult{
		{Rep: 1, Results: []result{res("ours", 100, 10, ""), res(peerEtcd, 50, 20, "")}},  // 2, 0.5
		{Rep: 2, Results: []result{res("ours", 300, 30, ""), res(peerEtcd, 100, 5, "")}},  // 3, 6
		{Rep: 3, Results: []result{res("ours", 900, 40, ""), res(peerEtcd, 100, 10, "")}}, // 9, 4
		{Rep: 4, Results: []result{res("ours", 1, 1, ""), res(peerEtcd, 1000, 1, "etcd died")}},
	}
	r, ok := ratios(runs, peerEtcd)
	// The medians of ours over the medians of etcd would be 200/100 and 30/10.
	if !ok || r[0] != 3 || r[5] != 4 {
		t.Fatalf("ratios = %v, %v; want PUT ops/s 3 and GET p99 4 (medians of 2, 3, 9 and 0.5, 6, 4)", r, ok)
	}
	if _, ok := ratios(runs, peerOpenDHT); ok {
		t.Fatal("ratios to a peer never measured: ok; want none")
	}
	s, _ := summarise(runs, peerEtcd)
	if s.runs != 3 || s.values[0] != 100 {
		t.Fatalf("etcd summary %+v; want 3 completed runs, median PUT ops/s 100", s)
	}
}

// TestBenchRingSmoke runs bench-ring on a one-node ring and the bare server
// with a few operations, from freshly built dhtd and dhtctl.
func TestBenchRingSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds dhtd and dhtctl and starts a node")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		testenv.Skip(t, "go not found: "+err.Error())
	}
	bin := t.TempDir()
	build := exec.Command(gobin, "build", "-o", bin+string(os.PathSeparator), "./cmd/dhtd", "./cmd/dhtctl")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building dhtd and dhtctl: %v\n%s", err, out)
	}
	o, err := parseFlags([]string{"-dhtctl", filepath.Join(bin, "dhtctl"), "-nodes", "1", "-c", "2", "-ops", "40",
		"-peers", "bare", "-timeout", "2m", "-json", filepath.Join(bin, "runs.jsonl")}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, o, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^durachord, 1 node +[1-9]\d* +[\d.]+ +[\d.]+ +[1-9]\d* +[\d.]+ +[\d.]+ +0$`),
		regexp.MustCompile(`(?m)^bare server +[1-9]\d* +[\d.]+ +[\d.]+ +[1-9]\d* +[\d.]+ +[\d.]+ +0$`),
		regexp.MustCompile(`(?m)^ours / bare server +[\d.]+`),
		regexp.MustCompile(`(?m)^ours' confirmed PUT rate over the bare server's GET rate: [\d.]+ `),
		regexp.MustCompile(`(?m)^OpenDHT, 1 node: not measured \(not in -peers\)$`),
		regexp.MustCompile(`(?m)^etcd, 3 members: not measured \(not in -peers\)$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("bench-ring printed no line matching %s:\n%s\nstderr:\n%s", want, out, stderr.String())
		}
	}
	if left := processesOf(t, bin); len(left) > 0 {
		t.Errorf("processes of %s still running after bench-ring returned: %v", bin, left)
	}
	lines, err := os.ReadFile(filepath.Join(bin, "runs.jsonl"))
	if err != nil || strings.Count(string(lines), "\n") != 1 {
		t.Errorf("-json file: %q, %v; want one line", lines, err)
	}
}

// processesOf lists the processes running a program from dir.
func processesOf(t *testing.T, dir string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/exe")
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, p := range procs {
		if exe, err := os.Readlink(p); err == nil && strings.HasPrefix(exe, dir+string(os.PathSeparator)) {
			left = append(left, filepath.Dir(p)+": "+exe)
		}
	}
	return left
}
