package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
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

// circleShare is the fraction of the circle in (predecessor, n] among the
// nodes' IDs.
func circleShare(t *testing.T, nodes []devnetNode, n devnetNode) float64 {
	t.Helper()
	full := new(big.Int).Lsh(big.NewInt(1), 256)
	id := func(s string) *big.Int {
		v, ok := new(big.Int).SetString(s, 16)
		if !ok {
			t.Fatalf("devnet printed ID %q; want 64 hex digits", s)
		}
		return v
	}
	self := id(n.ID)
	best := new(big.Int).Set(full) // the distance back to the predecessor
	for _, o := range nodes {
		if o.ID == n.ID {
			continue
		}
		d := new(big.Int).Sub(self, id(o.ID))
		d.Mod(d, full)
		if d.Cmp(best) < 0 {
			best = d
		}
	}
	f, _ := new(big.Rat).SetFrac(best, full).Float64()
	return f
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

// TestUIInBrowser opens the ring page of a 4-node devnet in headless
// Chromium, with the admin token given once in the address as an operator
// would, and reads the rendered page: it draws four nodes, the devnet's
// own, each ready, with shares that add up to the whole circle and a
// request rate above 0 on the node that is being asked.
func TestUIInBrowser(t *testing.T) {
	requireE2E(t)
	browser, err := exec.LookPath("chromium")
	if err != nil {
		testenv.Skip(t, "ring page test: chromium is missing (apt-get install chromium)")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	// One position per node: the page draws every ring position as a node
	// of its own (at four positions, the default, it would draw 16; README,
	// known limits).
	nodes := startDevnet(t, ctx, 4, "--vnodes", "1").nodes
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

	dom := chromium(t, ctx, browser, url, "--dump-dom")
	got := renderedNodes(dom)
	if len(got) != 4 {
		t.Fatalf("the page drew %d nodes; want 4. Page:\n%s", len(got), dom)
	}
	var want, have []string
	wantShare := map[string]string{}
	for _, n := range nodes {
		want = append(want, n.P2P)
		wantShare[n.P2P] = fmt.Sprintf("%.1f%%", 100*circleShare(t, nodes, n))
	}
	total := 0.0
	for _, n := range got {
		have = append(have, n["data-address"])
		if n["data-share"] != wantShare[n["data-address"]] {
			t.Errorf("node %s: data-share %q; want %q, its part of the circle by the IDs devnet printed", n["data-address"], n["data-share"], wantShare[n["data-address"]])
		}
		share, err := strconv.ParseFloat(strings.TrimSuffix(n["data-share"], "%"), 64)
		// A node whose arc is under 0.05 % of the circle shows 0.0 % (its
		// exact share is checked above).
		if err != nil || !strings.HasSuffix(n["data-share"], "%") || share < 0 || share >= 100 {
			t.Errorf("node %s: data-share %q; want a percentage from 0 to below 100", n["data-address"], n["data-share"])
		}
		total += share
		if n["data-ready"] != "true" {
			t.Errorf("node %s: data-ready %q; want true", n["data-address"], n["data-ready"])
		}
		if _, err := strconv.Atoi(n["data-primary"]); err != nil {
			t.Errorf("node %s: data-primary %q; want a count", n["data-address"], n["data-primary"])
		}
		if rate, err := strconv.ParseFloat(n["data-rate"], 64); err != nil || (n["data-address"] == nodes[1].P2P) != (rate > 0) {
			t.Errorf("node %s: data-rate %q; want requests per second, above 0 only on %s (the one the GETs go to)",
				n["data-address"], n["data-rate"], nodes[1].P2P)
		}
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
