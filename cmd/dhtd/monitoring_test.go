package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// monitoringDir holds the Prometheus rules and the Grafana dashboard.
var monitoringDir = filepath.Join("..", "..", "deploy", "monitoring")

// ruleExprs returns the expr values of a Prometheus rules file: on the
// expr line itself, or the indented block after "expr: |" or "expr: >".
func ruleExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "expr:") {
			continue
		}
		v := strings.TrimSpace(strings.TrimPrefix(trimmed, "expr:"))
		if !strings.HasPrefix(v, "|") && !strings.HasPrefix(v, ">") {
			exprs = append(exprs, v)
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " "))
		var block []string
		for i+1 < len(lines) {
			next := lines[i+1]
			if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
				break
			}
			block = append(block, next)
			i++
		}
		exprs = append(exprs, strings.Join(block, "\n"))
	}
	return exprs
}

// dashboardExprs returns every query of a Grafana dashboard: the targets'
// expr and the template variables' queries.
func dashboardExprs(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				if s, ok := e.(string); ok && (k == "expr" || k == "query" || k == "definition") {
					exprs = append(exprs, s)
				}
				walk(e)
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(doc)
	return exprs
}

// identifier is a PromQL identifier; metric names of the node start with
// durachord_, recording rules' names with durachord: (not node metrics).
var identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// nodeMetrics returns the node metric names exprs query, sorted, each once.
func nodeMetrics(exprs []string) []string {
	var names []string
	for _, e := range exprs {
		for _, id := range identifier.FindAllString(e, -1) {
			if strings.HasPrefix(id, "durachord_") && !slices.Contains(names, id) {
				names = append(names, id)
			}
		}
	}
	slices.Sort(names)
	return names
}

// scrapeFamilies GETs /metrics from the node's admin server and returns its
// metric families and their types (from the # TYPE lines).
func scrapeFamilies(t *testing.T, d *testDaemon) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.adminLn.Addr().String()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	families := map[string]string{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			families[f[2]] = f[3]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read /metrics: %v", err)
	}
	return families
}

// exported reports whether name, as a query names it, is a series of one of
// families: a family itself, or a histogram's _bucket, _sum or _count (a
// summary's _sum or _count).
func exported(name string, families map[string]string) bool {
	if _, ok := families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		switch families[base] {
		case "histogram":
			return true
		case "summary":
			return suffix != "_bucket"
		}
	}
	return false
}

// TestMonitoringMetricsExported: every node metric that the Prometheus rules
// and the Grafana dashboard in deploy/monitoring query is on a running
// node's /metrics, where Prometheus would scrape it: a query of a metric the
// node does not export (misspelt, renamed, removed) fails here instead of
// matching nothing in production. The node has not joined a ring and has
// made one peer call, so series that need traffic (labelled by RPC method)
// are there; every other labelled series is registered at start.
func TestMonitoringMetricsExported(t *testing.T) {
	d := startDaemon(t, withAdmin)
	// One peer call, to the node's own peer port: the client's and the
	// handler's series of a method appear with their first call.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := d.client.Call(ctx, d.node.Self(), "chord.ping", nil, nil); err != nil {
		t.Fatalf("ping the node's own peer port: %v", err)
	}
	families := scrapeFamilies(t, d)

	for _, src := range []struct {
		file  string
		exprs func(*testing.T, string) []string
	}{
		{"durachord.rules.yml", ruleExprs},
		{"durachord.dashboard.json", dashboardExprs},
	} {
		t.Run(src.file, func(t *testing.T) {
			names := nodeMetrics(src.exprs(t, filepath.Join(monitoringDir, src.file)))
			// The files query well over ten node metrics; fewer means
			// that their queries were not read.
			if len(names) < 10 {
				t.Fatalf("%s: found %d node metrics in its queries (%v); want the queries read", src.file, len(names), names)
			}
			for _, name := range names {
				if !exported(name, families) {
					t.Errorf("%s queries %s; the node's /metrics has no such series", src.file, name)
				}
			}
		})
	}
}
