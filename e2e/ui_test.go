package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"maps"
	"math/big"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/internal/testenv"
)

// screenshotEnvVar, when set to a file name (relative to e2e/, where go test
// runs), makes TestUIInBrowser also save a 900x800 picture of the page there:
// DURACHORD_UI_SCREENSHOT=../docs/ui.png made docs/ui.png (then shrunk with
// pngquant and optipng).
const screenshotEnvVar = "DURACHORD_UI_SCREENSHOT"

// chromium runs headless Chromium on url with args (--dump-dom or
// --screenshot=FILE) and returns what it printed. Its whole process group
// is killed when it returns.
func chromium(t *testing.T, ctx context.Context, browser, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	profile := t.TempDir()
	all := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--user-data-dir=" + profile, "--virtual-time-budget=5000"}, args...)
	cmd := exec.CommandContext(ctx, browser, append(all, url)...)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // helpers it left behind
	}
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", browser, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

var (
	nodeTag = regexp.MustCompile(`<g class="node [^"]*"[^>]*>`)
	attr    = regexp.MustCompile(`([a-z-]+)="([^"]*)"`)
)

// renderedNodes returns the attributes of every node the page drew.
func renderedNodes(dom string) []map[string]string {
	var out []map[string]string
	for _, tag := range nodeTag.FindAllString(dom, -1) {
		m := map[string]string{}
		for _, a := range attr.FindAllStringSubmatch(tag, -1) {
			m[a[1]] = html.UnescapeString(a[2])
		}
		out = append(out, m)
	}
	return out
}

// positionsOf returns the IDs of every ring position of each devnet node,
// from its /status, by P2P address.
func positionsOf(t *testing.T, ctx context.Context, nodes []devnetNode) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, n := range nodes {
		tok, err := os.ReadFile(n.AdminTokenFile)
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Admin+"/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s /status: %v", n.Admin, err)
		}
		var st Status
		err = json.NewDecoder(resp.Body).Decode(&st)
		_ = resp.Body.Close()
		if err != nil {
			t.Fatalf("%s /status: %v", n.Admin, err)
		}
		for _, p := range st.PositionStatus {
			out[n.P2P] = append(out[n.P2P], p.ID.String())
		}
		slices.Sort(out[n.P2P])
	}
	return out
}

// nodeID returns the ID devnet printed for the node at addr.
func nodeID(nodes []devnetNode, addr string) string {
	for _, n := range nodes {
		if n.P2P == addr {
			return n.ID
		}
	}
	return ""
}

// nodeShares is each node's part of the circle: over its positions, the
// arcs (previous position of any node, position].
func nodeShares(t *testing.T, positions map[string][]string) map[string]float64 {
	t.Helper()
	full := new(big.Int).Lsh(big.NewInt(1), 256)
	type pos struct {
		id   *big.Int
		addr string
	}
	var all []pos
	for addr, ids := range positions {
		for _, s := range ids {
			v, ok := new(big.Int).SetString(s, 16)
			if !ok {
				t.Fatalf("position %q; want 64 hex digits", s)
			}
			all = append(all, pos{v, addr})
		}
	}
	slices.SortFunc(all, func(a, b pos) int { return a.id.Cmp(b.id) })
	out := map[string]float64{}
	for i, p := range all {
		d := new(big.Int).Sub(p.id, all[(i+len(all)-1)%len(all)].id)
		d.Mod(d, full)
		if len(all) == 1 {
			d = full
		}
		f, _ := new(big.Rat).SetFrac(d, full).Float64()
		out[p.addr] += f
	}
	return out
}

// waitRequestRate waits until n's /status reports client requests per
// second above 0.
func waitRequestRate(t *testing.T, ctx context.Context, n devnetNode) {
	t.Helper()
	tok, err := os.ReadFile(n.AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Admin+"/status", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
		var st struct {
			RequestRate float64 `json:"request_rate"`
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&st)
			_ = resp.Body.Close()
		}
		if err == nil && st.RequestRate > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s /status: request_rate %v, error %v 30 s into a stream of GETs; want a rate above 0", n.Admin, st.RequestRate, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestUIInBrowser opens the ring page of a 4-node devnet (four positions
// each, the default) in headless Chromium, with the admin token given once
// in the address as an operator would, and reads the rendered page: it
// draws four nodes, the devnet's own, each once with its node ID, its four
// positions and its total share of the circle, each ready, with shares that
// add up to the whole circle and a request rate above 0 on the node that is
// being asked.
func TestUIInBrowser(t *testing.T) {
	requireE2E(t)
	browser, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Skip(t, "ring page test: chromium is missing (apt-get install chromium)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	nodes := startDevnet(t, ctx, 4).nodes // at the default of four positions each
	tok, err := os.ReadFile(nodes[0].AdminTokenFile)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + nodes[0].Admin + "/ui?token=" + strings.TrimSpace(string(tok))

	// Records and requests, so that the page has something to count.
	c, err := api.Dial(ctx, nodes[1].API)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for i := range 64 {
		var key [api.KeySize]byte
		copy(key[:], fmt.Sprintf("ui-%d", i))
		if err := c.Put(ctx, api.Put{Key: key, Value: []byte("v"), TTL: 600}); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // a steady trickle of GETs while the browser looks
		var key [api.KeySize]byte
		copy(key[:], "ui-0")
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			_, _ = c.Get(ctx, key)
		}
	})
	defer func() { close(stop); wg.Wait() }()
	waitRequestRate(t, ctx, nodes[1])

	// The page shows the ring as a walk saw it a moment ago; a node may move
	// a position meanwhile (the repair step of a new ring): the check counts
	// only when the positions were the same before and after the page drew.
	var dom string
	var got []map[string]string
	var positions map[string][]string
	for attempt := 1; ; attempt++ {
		before := positionsOf(t, ctx, nodes)
		dom = chromium(t, ctx, browser, url, "--dump-dom")
		got = renderedNodes(dom)
		positions = positionsOf(t, ctx, nodes)
		if maps.EqualFunc(before, positions, slices.Equal) {
			break
		}
		if attempt == 5 {
			t.Fatalf("the ring's positions changed during each of %d page loads", attempt)
		}
		t.Logf("a position moved while the page loaded (attempt %d); loading it again", attempt)
	}
	if len(got) != 4 {
		t.Fatalf("the page drew %d nodes; want 4. Page:\n%s", len(got), dom)
	}
	var want, have []string
	wantShare := map[string]string{}
	for addr, f := range nodeShares(t, positions) {
		want = append(want, addr)
		wantShare[addr] = fmt.Sprintf("%.1f%%", 100*f)
	}
	total := 0.0
	for _, n := range got {
		addr := n["data-address"]
		have = append(have, addr)
		if n["data-share"] != wantShare[addr] {
			t.Errorf("node %s: data-share %q; want %q, its part of the circle by the IDs of its positions", addr, n["data-share"], wantShare[addr])
		}
		if n["data-positions"] != strconv.Itoa(len(positions[addr])) || len(positions[addr]) != 4 {
			t.Errorf("node %s: data-positions %q; want 4 (its /status lists %d)", addr, n["data-positions"], len(positions[addr]))
		}
		if !slices.Contains(positions[addr], n["data-id"]) || n["data-id"] != nodeID(nodes, addr) {
			t.Errorf("node %s: data-id %q; want its node ID %q", addr, n["data-id"], nodeID(nodes, addr))
		}
		share, err := strconv.ParseFloat(strings.TrimSuffix(n["data-share"], "%"), 64)
		if err != nil || !strings.HasSuffix(n["data-share"], "%") || share <= 0 || share >= 100 {
			t.Errorf("node %s: data-share %q; want a percentage above 0 and below 100", addr, n["data-share"])
		}
		total += share
		if n["data-ready"] != "true" {
			t.Errorf("node %s: data-ready %q; want true", addr, n["data-ready"])
		}
		if _, err := strconv.Atoi(n["data-primary"]); err != nil {
			t.Errorf("node %s: data-primary %q; want a count", addr, n["data-primary"])
		}
		if rate, err := strconv.ParseFloat(n["data-rate"], 64); err != nil || (addr == nodes[1].P2P) != (rate > 0) {
			t.Errorf("node %s: data-rate %q; want requests per second, above 0 only on %s (the one the GETs go to)",
				addr, n["data-rate"], nodes[1].P2P)
		}
	}
	if dots := strings.Count(dom, `class="dot further"`); dots != 12 {
		t.Errorf("the page drew %d dots for further positions; want 12 (three for each of four nodes)", dots)
	}
	slices.Sort(want)
	slices.Sort(have)
	if !slices.Equal(have, want) {
		t.Errorf("the page drew nodes %v; want the devnet's %v", have, want)
	}
	if total < 99.5 || total > 100.5 {
		t.Errorf("the shares add up to %.1f%%; want 100%%", total)
	}
	if strings.Contains(dom, "token required") {
		t.Errorf("the page says a token is required after /ui?token=TOKEN")
	}

	if shot := os.Getenv(screenshotEnvVar); shot != "" {
		abs, err := filepath.Abs(shot)
		if err != nil {
			t.Fatal(err)
		}
		chromium(t, ctx, browser, url, "--hide-scrollbars", "--window-size=900,800", "--screenshot="+abs)
		if fi, err := os.Stat(abs); err != nil || fi.Size() == 0 {
			t.Fatalf("no screenshot in %s: %v", abs, err)
		}
	}
}
