package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// environment is what the table says about the machine and the run.
type environment struct {
	nproc                 int
	loadBefore, loadAfter string
	started               time.Time
	skipped               []string // one line per peer not measured
}

func nproc() int { return runtime.NumCPU() }

// runResult is every system's result in one run, measured back to back.
type runResult struct {
	Rep     int      `json:"rep"`
	Load    string   `json:"load"` // at the start of the run
	Results []result `json:"results"`
}

func appendJSON(path string, o options, env environment, r runResult) error {
	line, err := json.Marshal(map[string]any{
		"date": env.started.Format(time.RFC3339), "nproc": env.nproc,
		"nodes": o.nodes, "concurrency": o.conc, "value_size": o.valueSize, "ops": o.ops,
		"replication": o.replication, "etcd_members": o.etcdMembers, "run": r,
	})
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(f, string(line))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// median of xs; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// metrics of a result, in table order.
func metrics(r result) [6]float64 {
	return [6]float64{r.Put.OpsPerSec, r.Put.P50, r.Put.P99, r.Get.OpsPerSec, r.Get.P50, r.Get.P99}
}

// summary is one system's row: the median of each metric over the runs that
// completed, and the failed operations of all of them.
type summary struct {
	name   string
	values [6]float64
	runs   int   // completed
	failed int64 // operations
	why    string
}

func summarise(runs []runResult, system string) (summary, bool) {
	var s summary
	var cols [6][]float64
	found := false
	for _, r := range runs {
		for _, res := range r.Results {
			if res.System != system {
				continue
			}
			found, s.name = true, res.Name
			if res.Failed != "" {
				s.why = res.Failed
				continue
			}
			s.runs++
			s.failed += res.Put.Failed + res.Get.Failed
			for i, v := range metrics(res) {
				cols[i] = append(cols[i], v)
			}
		}
	}
	for i := range cols {
		s.values[i] = median(cols[i])
	}
	return s, found
}

// ratios is ours over the peer for each metric, the median of the ratios
// measured in the same run; ok is false when no run has both.
func ratios(runs []runResult, peer string) (out [6]float64, ok bool) {
	var cols [6][]float64
	for _, r := range runs {
		var a, b *result
		for i := range r.Results {
			switch res := &r.Results[i]; {
			case res.Failed != "":
			case res.System == "ours":
				a = res
			case res.System == peer:
				b = res
			}
		}
		if a == nil || b == nil {
			continue
		}
		ma, mb := metrics(*a), metrics(*b)
		for i := range ma {
			if mb[i] > 0 {
				cols[i] = append(cols[i], ma[i]/mb[i])
			}
		}
		ok = true
	}
	for i := range cols {
		out[i] = median(cols[i])
	}
	return out, ok
}

func printTable(w io.Writer, o options, env environment, runs []runResult) {
	via := "GETs through another node than the PUT's"
	if o.nodes == 1 {
		via = "GETs through the one node"
	}
	fmt.Fprintf(w, "%s, %d clients, %d-byte values, %d PUTs then %d GETs; ours: replication %d, PUT confirmed by a GET on its connection, %s\n",
		plural(o.nodes, "node"), o.conc, o.valueSize, o.ops, o.ops, o.replication, via)
	fmt.Fprintf(w, "%s, nproc %d, load average %s at the start, %s at the end; %d run(s), medians\n",
		env.started.Format("2006-01-02 15:04 MST"), env.nproc, env.loadBefore, env.loadAfter, len(runs))
	for _, line := range env.skipped {
		fmt.Fprintln(w, line)
	}
	type row struct {
		name  string
		cells []string
	}
	var rows []row
	order := []string{"ours", peerOpenDHT, peerEtcd, peerBare}
	for _, sys := range order {
		s, found := summarise(runs, sys)
		switch {
		case !found:
		case s.runs == 0:
			rows = append(rows, row{s.name, []string{"failed: " + oneLine(s.why)}})
		default:
			v := s.values
			rows = append(rows, row{s.name, []string{f0(v[0]), f2(v[1]), f2(v[2]), f0(v[3]), f2(v[4]), f2(v[5]), fmt.Sprint(s.failed)}})
		}
	}
	for _, peer := range order[1:] {
		if r, ok := ratios(runs, peer); ok {
			s, _ := summarise(runs, peer)
			rows = append(rows, row{"ours / " + shortName(s.name), []string{f2(r[0]), f2(r[1]), f2(r[2]), f2(r[3]), f2(r[4]), f2(r[5])}})
		}
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r.name))
	}
	fmt.Fprintf(w, "%-*s %10s %8s %8s %10s %8s %8s %7s\n", width, "", "PUT ops/s", "p50 ms", "p99 ms", "GET ops/s", "p50 ms", "p99 ms", "failed")
	for _, r := range rows {
		fmt.Fprintf(w, "%-*s", width, r.name)
		for i, c := range r.cells {
			if len(r.cells) == 1 { // a failure's reason
				fmt.Fprintf(w, " %s", c)
				break
			}
			fmt.Fprintf(w, " %*s", []int{10, 8, 8, 10, 8, 8, 7}[i], c)
		}
		fmt.Fprintln(w)
	}
	if r, ok := crossRatio(runs); ok {
		fmt.Fprintf(w, "ours' confirmed PUT rate over the bare server's GET rate: %.3f (median of the same-run ratios)\n", r)
	}
	fmt.Fprintln(w, "ratios: ours over the peer, each the median of the ratios measured in the same run; above 1 is better for ops/s, below 1 for p50 and p99")
}

// crossRatio is our PUT rate over the bare server's GET rate, the median
// of the ratios measured in the same run.
func crossRatio(runs []runResult) (float64, bool) {
	var xs []float64
	for _, r := range runs {
		var put, get float64
		for _, res := range r.Results {
			switch {
			case res.Failed != "":
			case res.System == "ours":
				put = res.Put.OpsPerSec
			case res.System == peerBare:
				get = res.Get.OpsPerSec
			}
		}
		if put > 0 && get > 0 {
			xs = append(xs, put/get)
		}
	}
	return median(xs), len(xs) > 0
}

func shortName(name string) string {
	if i := strings.Index(name, ","); i > 0 {
		return name[:i]
	}
	return name
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }
