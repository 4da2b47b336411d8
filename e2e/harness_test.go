package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/config"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/internal/testenv"
)

// envVar turns the end-to-end tests on.
const envVar = "DURACHORD_E2E"

// keepEnvVar names a folder under which each cluster's files (configs, logs,
// data dirs) are kept after the test instead of being removed.
const keepEnvVar = "DURACHORD_E2E_KEEP"

// successorListLen is ring.successor_list_len as the nodes run it (the
// default: the configs written here do not set it).
var successorListLen = config.Default().Ring.SuccessorListLen

// binDir holds dhtd and dhtctl, built once by TestMain; empty when the tests
// are off. It is written only by TestMain, before any test runs.
var binDir string

func TestMain(m *testing.M) {
	if url := os.Getenv(httpGetEnvVar); url != "" {
		os.Exit(httpGetMain(url))
	}
	if os.Getenv(envVar) != "1" {
		os.Exit(m.Run()) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "durachord-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(2)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: go not found:", err)
		os.Exit(2)
	}
	build := exec.Command(gobin, "build", "-o", dir+string(os.PathSeparator), "./cmd/dhtd", "./cmd/dhtctl")
	build.Dir = ".." // the module root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: building dhtd and dhtctl: %v\n%s", err, out)
		_ = os.RemoveAll(dir)
		os.Exit(2)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// requireE2E skips the test unless the end-to-end tests are on.
func requireE2E(t testing.TB) {
	t.Helper()
	if binDir == "" {
		testenv.Skip(t, "end-to-end test: set "+envVar+"=1 to run it (make e2e)")
	}
}

func dhtdPath() string   { return filepath.Join(binDir, "dhtd") }
func dhtctlPath() string { return filepath.Join(binDir, "dhtctl") }

// ClusterOptions tune the configuration every node of a cluster gets.
type ClusterOptions struct {
	// Replication is records.default_replication; 0 keeps the product default.
	Replication int
	// LogLevel of every node; "" means info.
	LogLevel string
	// WriteQuorum is records.write_quorum; 0 keeps the product default.
	WriteQuorum int
	// VNodes is ring.vnodes; 0 keeps the product default (four positions
	// per node), the setting every suite runs at unless it tests another.
	VNodes int
}

// Cluster is a set of dhtd processes sharing a CA and an HMAC key, each on
// its own 127.0.0.x address.
type Cluster struct {
	t    testing.TB
	dir  string
	opts ClusterOptions
	CA   *crypto.CA
	// HMACKeys is the path of the cluster's HMAC keys file.
	HMACKeys string

	mu     sync.Mutex // guards nodes, nextIP
	nodes  []*Node
	ipBase string // "127.A.B." chosen at random so that tests of other packages do not collide
	nextIP int
}

// NewCluster makes a CA and an HMAC key; nodes are added with NewNode. Every
// process is killed when the test ends; if it failed, the tail of each node's
// log is printed.
func NewCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	requireE2E(t)
	dir := t.TempDir()
	if keep := os.Getenv(keepEnvVar); keep != "" {
		// Keep logs, configs and data dirs for a post-mortem.
		var err error
		if dir, err = os.MkdirTemp(keep, strings.ReplaceAll(t.Name(), "/", "_")+"-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("cluster files kept in %s", dir)
	}
	ca, err := crypto.NewCA()
	if err != nil {
		t.Fatalf("NewCA() = %v", err)
	}
	if err := ca.WriteDir(filepath.Join(dir, "ca"), false); err != nil {
		t.Fatalf("CA WriteDir: %v", err)
	}
	keys := filepath.Join(dir, "hmac.keys")
	writeHMACKeys(t, keys)
	if opts.VNodes == 0 {
		opts.VNodes = config.Default().Ring.VNodes
	}
	c := &Cluster{
		t: t, dir: dir, opts: opts, CA: ca, HMACKeys: keys,
		ipBase: fmt.Sprintf("127.%d.%d.", 1+rand.IntN(250), 1+rand.IntN(250)),
		nextIP: 2,
	}
	t.Cleanup(func() {
		c.mu.Lock()
		nodes := slices.Clone(c.nodes)
		c.mu.Unlock()
		for _, n := range nodes {
			n.kill()
		}
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("---- last lines of %s (%s, id %s) log ----\n%s", n.Name, n.P2P, n.ID.Short(), tail(n.LogPath, 40))
			}
		}
	})
	return c
}

// writeHMACKeys writes a keys file with one new key.
func writeHMACKeys(t testing.TB, path string, extra ...string) {
	t.Helper()
	k, err := crypto.NewHMACKey()
	if err != nil {
		t.Fatalf("NewHMACKey() = %v", err)
	}
	lines := append([]string{k}, extra...)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// NodeOptions say how one node differs from a normal cluster member.
type NodeOptions struct {
	// CA issues the node certificate; nil means the cluster CA.
	CA *crypto.CA
	// HMACKeys is the keys file; "" means the cluster's.
	HMACKeys string
	// Addr reuses the addresses of an earlier node (same IP and ports).
	Addr *Node
	// NoAPI runs the node without a client API.
	NoAPI bool
	// ExtraConfig is appended to the top level of config.toml.
	ExtraConfig string
	// Env is added to the process environment.
	Env []string
}

// Node is one dhtd process (or its remains: data dir, log, certificate).
type Node struct {
	c                   *Cluster
	Name                string
	IP                  string
	P2P, API, Admin     string
	ID                  chord.ID
	DataDir, TLSDir     string
	ConfigPath, LogPath string
	opts                NodeOptions
	mu                  sync.Mutex // guards cmd, done, exitErr
	cmd                 *exec.Cmd
	done                chan struct{} // closed when cmd has been waited for
	exitErr             error
	member              bool // counted by WaitStable and the ring checks; guarded by c.mu
}

// NewNode prepares a node (certificate, config) without starting it. Its
// addresses are free ports on a fresh 127.0.0.x address.
func (c *Cluster) NewNode(opts NodeOptions) *Node {
	t := c.t
	t.Helper()
	c.mu.Lock()
	idx := len(c.nodes)
	n := &Node{c: c, Name: fmt.Sprintf("node%d", idx), opts: opts, member: true}
	if opts.Addr != nil {
		n.IP, n.P2P, n.API, n.Admin = opts.Addr.IP, opts.Addr.P2P, opts.Addr.API, opts.Addr.Admin
	} else {
		if c.nextIP > 254 {
			c.mu.Unlock()
			t.Fatal("out of 127.x addresses")
		}
		n.IP = c.ipBase + strconv.Itoa(c.nextIP)
		c.nextIP++
	}
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	if opts.Addr == nil {
		n.P2P, n.API, n.Admin = freePort(t, n.IP), freePort(t, n.IP), freePort(t, n.IP)
	}
	if opts.NoAPI {
		n.API = ""
	}
	base := filepath.Join(c.dir, n.Name)
	n.DataDir = filepath.Join(base, "data")
	n.TLSDir = filepath.Join(base, "tls")
	n.ConfigPath = filepath.Join(base, "config.toml")
	n.LogPath = filepath.Join(base, "dhtd.log")
	n.issueCert(false)
	keys := opts.HMACKeys
	if keys == "" {
		keys = c.HMACKeys
	}
	logLevel := c.opts.LogLevel
	if logLevel == "" {
		logLevel = "info"
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "p2p_address = %q\napi_address = %q\nadmin_address = %q\n", n.P2P, n.API, n.Admin)
	fmt.Fprintf(&cfg, "data_dir = %q\ntls_dir = %q\nhmac_keys = %q\n", n.DataDir, n.TLSDir, keys)
	fmt.Fprintf(&cfg, "log_level = %q\nshutdown_timeout = \"10s\"\n", logLevel)
	cfg.WriteString(opts.ExtraConfig + "\n")
	cfg.WriteString("[ring]\nstabilize_interval = \"100ms\"\nfix_fingers_interval = \"100ms\"\n" +
		"check_predecessor_interval = \"300ms\"\ncall_timeout = \"1s\"\nlookup_timeout = \"3s\"\n")
	fmt.Fprintf(&cfg, "vnodes = %d\n", c.opts.VNodes)
	cfg.WriteString("[records]\nrepair_interval = \"2s\"\nsweep_interval = \"1s\"\nrepair_rate = 5000\n")
	if c.opts.Replication > 0 {
		fmt.Fprintf(&cfg, "default_replication = %d\n", c.opts.Replication)
	}
	if c.opts.WriteQuorum > 0 {
		fmt.Fprintf(&cfg, "write_quorum = %d\n", c.opts.WriteQuorum)
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// freePort returns ip:port with a port that was free a moment ago.
func freePort(t testing.TB, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// StartNodes prepares and starts n members: the first starts a new ring, the
// others join through it.
func (c *Cluster) StartNodes(n int) []*Node {
	c.t.Helper()
	nodes := make([]*Node, n)
	for i := range nodes {
		nodes[i] = c.NewNode(NodeOptions{})
	}
	nodes[0].startFresh()
	for _, nd := range nodes[1:] {
		nd.startFresh(nodes[0].P2P)
	}
	return nodes
}

// startFresh starts a node that has never run. freePort's ports were free a
// moment ago; should another process take one before dhtd binds it (the
// kernel hands a freed port out again as a source port), dhtd exits at once
// with "address already in use", and the node starts again on new ports,
// with a new certificate for its new ring address and an empty data dir.
func (n *Node) startFresh(bootstrap ...string) {
	t := n.c.t
	t.Helper()
	for attempt := 1; ; attempt++ {
		n.Start(bootstrap...)
		if n.opts.Addr != nil || attempt == 3 || !n.lostAPort() {
			return
		}
		t.Logf("%s: another process took one of its ports; starting again on new ones", n.Name)
		n.newPorts()
	}
}

// lostAPort waits until the node's process has bound its ports (its log
// says "serving rpc" since the last start) or has exited, and reports an
// exit on a port another process holds.
func (n *Node) lostAPort() bool {
	n.mu.Lock()
	done := n.done
	n.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(n.logSinceStart(), "dhtd: serving rpc") {
			return false
		}
		select {
		case <-done:
			return strings.Contains(n.logSinceStart(), "address already in use")
		case <-time.After(10 * time.Millisecond):
		}
	}
	return false
}

// issueCert gives the node a certificate for its ring address from its CA
// (the cluster's unless NodeOptions name another) and takes its ID.
func (n *Node) issueCert(overwrite bool) {
	t := n.c.t
	t.Helper()
	ca := n.opts.CA
	if ca == nil {
		ca = n.c.CA
	}
	nc, err := ca.Issue(n.P2P)
	if err != nil {
		t.Fatalf("Issue(%s) = %v", n.P2P, err)
	}
	if err := nc.WriteDir(n.TLSDir, overwrite); err != nil {
		t.Fatalf("WriteDir(%s) = %v", n.TLSDir, err)
	}
	n.ID = nc.ID
}

// logSinceStart returns the node's log since its last start.
func (n *Node) logSinceStart() string {
	b, err := os.ReadFile(n.LogPath)
	if err != nil {
		return ""
	}
	s := string(b)
	if i := strings.LastIndex(s, "==== e2e: starting dhtd"); i >= 0 {
		s = s[i:]
	}
	return s
}

// newPorts moves a node that has never run to new ports: its config, a
// certificate for the new ring address (a new ID), an empty data dir.
func (n *Node) newPorts() {
	t := n.c.t
	t.Helper()
	old := []string{n.P2P, n.API, n.Admin}
	n.P2P, n.Admin = freePort(t, n.IP), freePort(t, n.IP)
	if n.API != "" {
		n.API = freePort(t, n.IP)
	}
	b, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(b)
	for i, addr := range []string{n.P2P, n.API, n.Admin} {
		if old[i] != "" {
			cfg = strings.ReplaceAll(cfg, strconv.Quote(old[i]), strconv.Quote(addr))
		}
	}
	if err := os.WriteFile(n.ConfigPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	n.issueCert(true)
	if err := os.RemoveAll(n.DataDir); err != nil {
		t.Fatal(err)
	}
}

// Members returns the nodes counted as ring members.
func (c *Cluster) Members() []*Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*Node
	for _, n := range c.nodes {
		if n.member {
			out = append(out, n)
		}
	}
	return out
}

// LiveMembers returns the members whose process runs.
func (c *Cluster) LiveMembers() []*Node {
	var out []*Node
	for _, n := range c.Members() {
		if n.Running() {
			out = append(out, n)
		}
	}
	return out
}

// SetMember says whether n counts as a ring member (intruders do not).
func (n *Node) SetMember(m bool) {
	n.c.mu.Lock()
	n.member = m
	n.c.mu.Unlock()
}

// Start runs dhtd with the node's config; bootstrap addresses become
// --bootstrap flags. The log file is appended to, so restarts keep history.
func (n *Node) Start(bootstrap ...string) {
	t := n.c.t
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.done:
		default:
			t.Fatalf("%s: Start while running", n.Name)
		}
	}
	args := []string{"--config", n.ConfigPath}
	for _, b := range bootstrap {
		args = append(args, "--bootstrap", b)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "==== e2e: starting dhtd %s at %s\n", strings.Join(args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(dhtdPath(), args...)
	cmd.Env = append(os.Environ(), n.opts.Env...)
	n.launch(cmd, logf)
}

// launch starts cmd as the node's process with its output going to logf,
// which it closes when the process has ended. n.mu must be held.
func (n *Node) launch(cmd *exec.Cmd, logf *os.File) {
	t := n.c.t
	t.Helper()
	cmd.Stdout, cmd.Stderr = logf, logf
	if cmd.SysProcAttr == nil {
		// Should the test binary be killed before its cleanup runs, its
		// nodes die with it instead of running on as orphans.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		t.Fatalf("%s: start dhtd: %v", n.Name, err)
	}
	done := make(chan struct{})
	n.cmd, n.done, n.exitErr = cmd, done, nil
	go func() {
		err := cmd.Wait()
		_ = logf.Close()
		n.mu.Lock()
		n.exitErr = err
		n.mu.Unlock()
		close(done)
	}()
}

// Running reports whether the process runs.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

func (n *Node) proc() (*exec.Cmd, chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd, n.done
}

// kill SIGKILLs the process if it runs and waits for it; used by cleanup.
func (n *Node) kill() {
	cmd, done := n.proc()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Kill()
	<-done
}

// Kill SIGKILLs the node and waits until it is gone.
func (n *Node) Kill() {
	n.c.t.Helper()
	if !n.Running() {
		n.c.t.Fatalf("%s: Kill of a node that does not run", n.Name)
	}
	n.kill()
}

// Stop sends SIGTERM (graceful leave) and waits up to 20 s; it returns the
// process's exit error (nil for exit status 0). A node that does not exit in
// time is killed and the test fails.
func (n *Node) Stop() error {
	t := n.c.t
	t.Helper()
	cmd, done := n.proc()
	if cmd == nil {
		t.Fatalf("%s: Stop of a node never started", n.Name)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		t.Errorf("%s: still running 20s after SIGTERM (shutdown_timeout is 10s); killing it", n.Name)
		n.kill()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.exitErr
}

// Signal sends sig to the running process.
func (n *Node) Signal(sig os.Signal) {
	cmd, _ := n.proc()
	if cmd == nil {
		n.c.t.Fatalf("%s: Signal to a node never started", n.Name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		n.c.t.Fatalf("%s: signal %v: %v", n.Name, sig, err)
	}
}

// Restart starts the node again with the same data dir and certificate.
func (n *Node) Restart(bootstrap ...string) {
	n.c.t.Helper()
	n.Start(bootstrap...)
}

// Status is the JSON of a node's admin /status (chord.Status), the fields the
// tests look at.
type Status struct {
	ID          chord.ID         `json:"id"`
	Address     string           `json:"address"`
	Predecessor *chord.NodeInfo  `json:"predecessor"`
	Successors  []chord.NodeInfo `json:"successors"`
	Records     struct {
		Primary int64 `json:"primary"`
		Replica int64 `json:"replica"`
	} `json:"records"`
	Ready bool `json:"ready"`
	// Positions and PositionStatus: every ring position of the node and
	// each one's view (virtual nodes).
	Positions      []chord.ID `json:"positions"`
	PositionStatus []Status   `json:"position_status"`
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// adminGet fetches path from the node's admin server.
func (n *Node) adminGet(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.Admin+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s%s: %s", n.Admin, path, resp.Status)
	}
	return body, nil
}

// Status fetches the node's /status.
func (n *Node) Status(ctx context.Context) (Status, error) {
	var st Status
	body, err := n.adminGet(ctx, "/status")
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return st, fmt.Errorf("%s /status: %w: %s", n.Name, err, body)
	}
	return st, nil
}

// Metrics fetches the node's /metrics text.
func (n *Node) Metrics(ctx context.Context) (string, error) {
	body, err := n.adminGet(ctx, "/metrics")
	return string(body), err
}

// Metric returns the sum of the samples of name whose labels include every
// pair of labels (given as "k", "v", ...), from the node's /metrics; 0 if none.
func (n *Node) Metric(ctx context.Context, name string, labels ...string) (float64, error) {
	text, err := n.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	return metricSum(text, name, labels...), nil
}

// FailedPuts returns how many of the PUTs the node took from clients did not
// succeed (a PUT gets no reply, so only the node's metrics tell), and how
// many it took.
func (n *Node) FailedPuts(ctx context.Context) (failed, all float64, err error) {
	text, err := n.Metrics(ctx)
	if err != nil {
		return 0, 0, err
	}
	all = metricSum(text, "durachord_api_requests_total", "type", "put")
	return all - metricSum(text, "durachord_api_requests_total", "type", "put", "outcome", "success"), all, nil
}

// metricSum parses the Prometheus text format (enough of it for our
// collectors: no escaped quotes or commas in label values).
func metricSum(text, name string, labels ...string) float64 {
	var sum float64
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		series, val := line[:sp], line[sp+1:]
		got := series
		var lbl string
		if i := strings.IndexByte(series, '{'); i >= 0 {
			got, lbl = series[:i], strings.TrimSuffix(series[i+1:], "}")
		}
		if got != name {
			continue
		}
		have := map[string]string{}
		for kv := range strings.SplitSeq(lbl, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if ok {
				have[k] = strings.Trim(v, `"`)
			}
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			if have[labels[i]] != labels[i+1] {
				match = false
			}
		}
		if !match {
			continue
		}
		f, err := strconv.ParseFloat(val, 64)
		if err == nil {
			sum += f
		}
	}
	return sum
}

// Dial opens a client API connection to the node, closed when the test ends.
func (n *Node) Dial(ctx context.Context) *api.Client {
	t := n.c.t
	t.Helper()
	cl, err := api.Dial(ctx, n.API)
	if err != nil {
		t.Fatalf("%s: %v", n.Name, err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// WaitStable polls /status of every live member until each is ready and its
// first successor is the next live member in ID order.
func (c *Cluster) WaitStable(ctx context.Context) {
	t := c.t
	t.Helper()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		why := c.unstable(ctx)
		if why == "" {
			return
		}
		if ctx.Err() == nil || last == "" {
			last = why // a reason caused by the deadline itself says nothing
		}
		select {
		case <-ctx.Done():
			t.Fatalf("ring of %d live members not stable: %s", len(c.LiveMembers()), last)
		case <-tick.C:
		}
	}
}

// unstable returns why the ring is not stable yet, or "".
func (c *Cluster) unstable(ctx context.Context) string {
	if c.opts.VNodes > 1 {
		return c.positionsUnstable(ctx, false)
	}
	live := c.LiveMembers()
	slices.SortFunc(live, func(a, b *Node) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	for i, n := range live {
		want := live[(i+1)%len(live)]
		st, err := n.Status(ctx)
		switch {
		case err != nil:
			return fmt.Sprintf("%s: %v", n.Name, err)
		case st.ID != n.ID:
			return fmt.Sprintf("%s reports ID %s, want %s", n.Name, st.ID.Short(), n.ID.Short())
		case !st.Ready:
			return fmt.Sprintf("%s not ready", n.Name)
		case len(st.Successors) == 0:
			return fmt.Sprintf("%s has no successor", n.Name)
		case st.Successors[0].ID != want.ID:
			return fmt.Sprintf("%s: successor %s, want %s (%s)", n.Name, st.Successors[0], want.ID.Short(), want.Name)
		}
	}
	return ""
}

// WaitSettled waits, after WaitStable, until every live member also knows
// its true predecessor and holds the live members that follow it, in ring
// order, at the head of its successor list (up to successorListLen): the
// view a replica placement needs. A ring can be stable (every first
// successor right) before its successor lists have filled.
func (c *Cluster) WaitSettled(ctx context.Context) {
	t := c.t
	t.Helper()
	c.WaitStable(ctx)
	poll(t, ctx, 50*time.Millisecond, "successor lists and predecessors settled", func() string {
		if c.opts.VNodes > 1 {
			return c.positionsUnstable(ctx, true)
		}
		live := c.LiveMembers()
		slices.SortFunc(live, func(a, b *Node) int { return bytes.Compare(a.ID[:], b.ID[:]) })
		for i, n := range live {
			st, err := n.Status(ctx)
			if err != nil {
				return fmt.Sprintf("%s: %v", n.Name, err)
			}
			if len(live) > 1 {
				pred := live[(i+len(live)-1)%len(live)]
				if st.Predecessor == nil || st.Predecessor.ID != pred.ID {
					return fmt.Sprintf("%s: predecessor %v, want %s (%s)", n.Name, st.Predecessor, pred.ID.Short(), pred.Name)
				}
			}
			var got []chord.ID
			for _, s := range st.Successors {
				if s.ID != n.ID && !slices.Contains(got, s.ID) {
					got = append(got, s.ID)
				}
			}
			want := min(len(live)-1, successorListLen)
			for j := range want {
				next := live[(i+1+j)%len(live)]
				if j >= len(got) || got[j] != next.ID {
					return fmt.Sprintf("%s: successor list %v, want %s (%s) at %d", n.Name, st.Successors, next.ID.Short(), next.Name, j)
				}
			}
		}
		return ""
	})
}

// positionsUnstable is unstable for nodes at several positions: every live
// member stands at its VNodes positions, is ready, and each position's
// first successor is the next position of the live members on the circle;
// settled also wants each position's true predecessor and the next distinct
// positions at the head of its successor list.
func (c *Cluster) positionsUnstable(ctx context.Context, settled bool) string {
	type pos struct {
		st   Status
		node *Node
	}
	var all []pos
	for _, n := range c.LiveMembers() {
		st, err := n.Status(ctx)
		switch {
		case err != nil:
			return fmt.Sprintf("%s: %v", n.Name, err)
		case st.ID != n.ID:
			return fmt.Sprintf("%s reports ID %s, want %s", n.Name, st.ID.Short(), n.ID.Short())
		case !st.Ready:
			return fmt.Sprintf("%s not ready", n.Name)
		case len(st.PositionStatus) != c.opts.VNodes:
			return fmt.Sprintf("%s stands at %d of %d positions", n.Name, len(st.PositionStatus), c.opts.VNodes)
		}
		for _, p := range st.PositionStatus {
			all = append(all, pos{p, n})
		}
	}
	slices.SortFunc(all, func(a, b pos) int { return bytes.Compare(a.st.ID[:], b.st.ID[:]) })
	k := len(all)
	for i, p := range all {
		next := all[(i+1)%k].st.ID
		switch {
		case k > 1 && len(p.st.Successors) == 0:
			return fmt.Sprintf("%s position %s has no successor", p.node.Name, p.st.ID.Short())
		case k > 1 && p.st.Successors[0].ID != next:
			return fmt.Sprintf("%s position %s: successor %s, want %s", p.node.Name, p.st.ID.Short(), p.st.Successors[0].ID.Short(), next.Short())
		}
		if !settled || k == 1 {
			continue
		}
		if prev := all[(i+k-1)%k].st.ID; p.st.Predecessor == nil || p.st.Predecessor.ID != prev {
			return fmt.Sprintf("%s position %s: predecessor %v, want %s", p.node.Name, p.st.ID.Short(), p.st.Predecessor, prev.Short())
		}
		for j := range min(k-1, successorListLen) {
			if j >= len(p.st.Successors) || p.st.Successors[j].ID != all[(i+1+j)%k].st.ID {
				return fmt.Sprintf("%s position %s: successor list %v not settled at %d", p.node.Name, p.st.ID.Short(), p.st.Successors, j)
			}
		}
	}
	return ""
}

// Placed is one ring position and the member standing at it.
type Placed struct {
	ID   chord.ID
	Node *Node
}

// Positions returns every position of the live members, in ring order, from
// each one's /status.
func (c *Cluster) Positions(ctx context.Context) ([]Placed, error) {
	var ring []Placed
	for _, n := range c.LiveMembers() {
		st, err := n.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		if len(st.PositionStatus) == 0 {
			ring = append(ring, Placed{st.ID, n})
		}
		for _, p := range st.PositionStatus {
			ring = append(ring, Placed{p.ID, n})
		}
	}
	slices.SortFunc(ring, func(a, b Placed) int { return a.ID.Cmp(b.ID) })
	return ring, nil
}

// MustPositions is Positions, failing the test on an error.
func (c *Cluster) MustPositions(ctx context.Context) []Placed {
	c.t.Helper()
	ring, err := c.Positions(ctx)
	if err != nil {
		c.t.Fatalf("ring positions: %v", err)
	}
	return ring
}

// holders returns the first repl distinct members after key k's position on
// ring (its owner first), as a record's holders are chosen.
func holders(ring []Placed, k [api.KeySize]byte, repl int) []*Node {
	pos := chord.KeyPosition(k)
	i, _ := slices.BinarySearchFunc(ring, pos, func(a Placed, b chord.ID) int { return a.ID.Cmp(b) })
	var hs []*Node
	for j := 0; j < len(ring) && len(hs) < repl; j++ {
		if n := ring[(i+j)%len(ring)].Node; !slices.Contains(hs, n) {
			hs = append(hs, n)
		}
	}
	return hs
}

// SortedIDs returns the IDs of the live members in ring (ID) order.
func (c *Cluster) SortedIDs() []chord.ID {
	var ids []chord.ID
	for _, n := range c.LiveMembers() {
		ids = append(ids, n.ID)
	}
	slices.SortFunc(ids, func(a, b chord.ID) int { return bytes.Compare(a[:], b[:]) })
	return ids
}

// dhtctl runs the built dhtctl and returns stdout, stderr and the exit code.
func dhtctl(t *testing.T, ctx context.Context, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, dhtctlPath(), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("dhtctl %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// LogContains reports whether the node's log has a line containing every one
// of parts.
func (n *Node) LogContains(parts ...string) bool {
	f, err := os.Open(n.LogPath)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		all := true
		for _, p := range parts {
			if !strings.Contains(line, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

// grepLog returns the last n lines of the file at path that contain any of
// parts.
func grepLog(path string, n int, parts ...string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, p := range parts {
			if strings.Contains(line, p) {
				out = append(out, line)
				break
			}
		}
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return strings.Join(out, "\n")
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// poll calls cond every interval until it returns "" (done) or ctx ends; then
// the test fails with cond's last reason.
func poll(t testing.TB, ctx context.Context, interval time.Duration, what string, cond func() string) {
	t.Helper()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last string
	for {
		why := cond()
		if why == "" {
			return
		}
		if ctx.Err() == nil || last == "" {
			last = why // a reason caused by the deadline itself says nothing
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %s", what, last)
		case <-tick.C:
		}
	}
}
