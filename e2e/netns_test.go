package e2e

// Network-namespace tests: every node is a host of its own. A "switch"
// namespace holds a bridge; each node namespace (and one client namespace) is
// wired to it with a veth pair and gets an address in 10.213.X.0/24. Nothing
// is added to the root namespace: the test process cannot reach the nodes, so
// every client action runs the built dhtctl inside the client namespace
// (ip netns exec). Needs root and the ip tool.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
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

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/config"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/internal/testenv"
)

// Ports every node uses on its own address.
const (
	nsP2PPort   = "7400"
	nsAPIPort   = "7401"
	nsAdminPort = "7410"
)

// nsRecords is the number of records the data tests write.
const nsRecords = 500

// requireNetns skips the test unless the end-to-end tests are on, the test
// runs as root and the ip tool exists.
func requireNetns(t *testing.T) {
	t.Helper()
	requireE2E(t)
	if os.Geteuid() != 0 {
		testenv.Skip(t, "network-namespace test: needs root (ip netns, veth, bridge)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		testenv.Skip(t, "network-namespace test: the ip tool (iproute2) is missing")
	}
}

// runIP runs `ip args...` and returns its combined output.
func runIP(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// netLab is a switch namespace with a bridge and the host namespaces wired
// to it. Everything is removed when the test ends.
type netLab struct {
	t      *testing.T
	prefix string // of every namespace name
	subnet string // "10.213.X."
	sw     string // the switch namespace

	mu    sync.Mutex // guards hosts
	hosts []string   // host namespaces, in creation order
}

// newNetLab creates the switch namespace and its bridge.
func newNetLab(t *testing.T) *netLab {
	t.Helper()
	l := &netLab{
		t:      t,
		prefix: fmt.Sprintf("dchord-%06x", rand.IntN(1<<24)),
		subnet: fmt.Sprintf("10.213.%d.", rand.IntN(256)),
	}
	l.sw = l.prefix + "-sw"
	if _, err := runIP("netns", "add", l.sw); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.remove)
	for _, args := range [][]string{
		{"-n", l.sw, "link", "add", "br0", "type", "bridge"},
		{"-n", l.sw, "link", "set", "br0", "up"},
	} {
		if _, err := runIP(args...); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// addHost creates namespace <prefix>-<name> with eth0 at subnet+num, its veth
// peer attached to the bridge, and returns the namespace and the address.
func (l *netLab) addHost(name string, num int) (ns, ip string) {
	t := l.t
	t.Helper()
	ns = l.prefix + "-" + name
	ip = l.subnet + strconv.Itoa(num)
	if _, err := runIP("netns", "add", ns); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	l.hosts = append(l.hosts, ns)
	l.mu.Unlock()
	port := "p" + strconv.Itoa(num) // the bridge port in the switch namespace
	for _, args := range [][]string{
		{"-n", l.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", l.sw, "link", "set", port, "master", "br0"},
		{"-n", l.sw, "link", "set", port, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
	} {
		if _, err := runIP(args...); err != nil {
			t.Fatal(err)
		}
	}
	return ns, ip
}

// setLink brings a host's eth0 up or down, from inside its namespace.
func (l *netLab) setLink(ns string, up bool) {
	l.t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if _, err := runIP("-n", ns, "link", "set", "eth0", state); err != nil {
		l.t.Fatal(err)
	}
}

// remove kills whatever still runs in the lab's namespaces (processes the
// test started; they should be gone already) and deletes the namespaces,
// hosts first, the switch last.
func (l *netLab) remove() {
	l.mu.Lock()
	all := append(slices.Clone(l.hosts), l.sw)
	l.mu.Unlock()
	for _, ns := range all {
		if pids := nsPIDs(ns); len(pids) > 0 {
			l.t.Errorf("namespace %s: processes %v still running at cleanup; killing them", ns, pids)
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		if _, err := runIP("netns", "del", ns); err != nil {
			l.t.Errorf("cleanup: %v", err)
		}
	}
}

// nsPIDs lists the processes running in namespace ns.
func nsPIDs(ns string) []int {
	out, err := runIP("netns", "pids", ns)
	if err != nil {
		return nil
	}
	var pids []int
	for f := range strings.FieldsSeq(out) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// nsCluster is a ring of dhtd hosts, each in its own namespace, and a client
// namespace running dhtctl.
type nsCluster struct {
	t        *testing.T
	lab      *netLab
	dir      string
	ca       *crypto.CA
	hmacKeys string
	// tokenFile is the admin token of every node (their admin addresses
	// are off loopback); every dhtctl run in the client namespace gets it
	// through DURACHORD_ADMIN_TOKEN_FILE.
	tokenFile string
	clientNS  string
	nodes     []*nsNode
}

// nsNode is one dhtd host.
type nsNode struct {
	c                   *nsCluster
	Name, NS, IP        string
	P2P, API, Admin     string
	ID                  chord.ID
	DataDir, TLSDir     string
	ConfigPath, LogPath string

	mu   sync.Mutex // guards cmd, done
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// newNSCluster makes the lab, the client namespace and n prepared (not
// started) nodes with certificates for their addresses.
func newNSCluster(t *testing.T, n int) *nsCluster {
	t.Helper()
	requireNetns(t)
	lab := newNetLab(t)
	c := &nsCluster{t: t, lab: lab, dir: t.TempDir()}
	var err error
	if keep := os.Getenv(keepEnvVar); keep != "" {
		// Keep logs, configs and data dirs for a post-mortem.
		if c.dir, err = os.MkdirTemp(keep, t.Name()+"-"); err != nil {
			t.Fatal(err)
		}
		t.Logf("cluster files kept in %s", c.dir)
	}
	if c.ca, err = crypto.NewCA(); err != nil {
		t.Fatalf("NewCA() = %v", err)
	}
	c.hmacKeys = filepath.Join(c.dir, "hmac.keys")
	writeHMACKeys(t, c.hmacKeys)
	c.tokenFile = filepath.Join(c.dir, "admin.token")
	writeAdminToken(t, c.tokenFile)
	c.clientNS, _ = lab.addHost("client", 200)
	for i := range n {
		c.nodes = append(c.nodes, c.newNode(i))
	}
	// Registered after the lab's cleanup, so it runs before it: processes
	// die before their namespaces are deleted.
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.kill()
		}
		if t.Failed() {
			for _, nd := range c.nodes {
				t.Logf("---- last lines of %s (%s, id %s) log ----\n%s", nd.Name, nd.P2P, nd.ID.Short(), tail(nd.LogPath, 40))
			}
		}
	})
	return c
}

func (c *nsCluster) newNode(i int) *nsNode {
	t := c.t
	t.Helper()
	n := &nsNode{c: c, Name: fmt.Sprintf("node%d", i)}
	n.NS, n.IP = c.lab.addHost(n.Name, 11+i)
	n.P2P = n.IP + ":" + nsP2PPort
	n.API = n.IP + ":" + nsAPIPort
	n.Admin = n.IP + ":" + nsAdminPort
	base := filepath.Join(c.dir, n.Name)
	n.DataDir = filepath.Join(base, "data")
	n.TLSDir = filepath.Join(base, "tls")
	n.ConfigPath = filepath.Join(base, "config.toml")
	n.LogPath = filepath.Join(base, "dhtd.log")
	nc, err := c.ca.Issue(n.P2P)
	if err != nil {
		t.Fatalf("Issue(%s) = %v", n.P2P, err)
	}
	if err := nc.WriteDir(n.TLSDir, false); err != nil {
		t.Fatalf("WriteDir(%s) = %v", n.TLSDir, err)
	}
	n.ID = nc.ID
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "data_dir = %q\ntls_dir = %q\nhmac_keys = %q\n", n.DataDir, n.TLSDir, c.hmacKeys)
	cfg.WriteString("log_level = \"info\"\nshutdown_timeout = \"10s\"\n")
	cfg.WriteString("[ring]\nstabilize_interval = \"100ms\"\nfix_fingers_interval = \"100ms\"\n" +
		"check_predecessor_interval = \"300ms\"\ncall_timeout = \"1s\"\nlookup_timeout = \"3s\"\n")
	cfg.WriteString("[records]\nrepair_interval = \"2s\"\nsweep_interval = \"1s\"\nrepair_rate = 5000\n")
	fmt.Fprintf(&cfg, "[admin]\ntoken_file = %q\n", c.tokenFile)
	if err := os.MkdirAll(base, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs the first node as a new ring and the others joining through it.
func (c *nsCluster) start() {
	c.t.Helper()
	c.nodes[0].Start()
	for _, n := range c.nodes[1:] {
		n.Start(c.nodes[0].P2P)
	}
}

// Start runs `ip netns exec NS dhtd ...` in a process group of its own; ip
// execs dhtd in place, so the process is dhtd itself.
func (n *nsNode) Start(bootstrap ...string) {
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
	args := []string{"netns", "exec", n.NS, dhtdPath(), "--config", n.ConfigPath,
		"--p2p-address", n.P2P, "--api-address", n.API, "--admin-address", n.Admin}
	for _, b := range bootstrap {
		args = append(args, "--bootstrap", b)
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "==== e2e: starting ip %s at %s\n", strings.Join(args, " "), time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: should the test binary die without cleanup, dhtd dies too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		t.Fatalf("%s: start dhtd: %v", n.Name, err)
	}
	done := make(chan struct{})
	n.cmd, n.done = cmd, done
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
}

// Running reports whether the process runs.
func (n *nsNode) Running() bool {
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

// kill SIGKILLs the process group if it runs and waits for the process; it
// returns the pid it killed (0 if none ran).
func (n *nsNode) kill() int {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return 0
	}
	select {
	case <-done:
		return 0
	default:
	}
	pid := cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	<-done
	return pid
}

// Kill SIGKILLs the node and checks that nothing of it is left: its pid is
// gone and its namespace runs no process.
func (n *nsNode) Kill() {
	t := n.c.t
	t.Helper()
	if !n.Running() {
		t.Fatalf("%s: Kill of a node that does not run", n.Name)
	}
	n.mu.Lock()
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", n.cmd.Process.Pid))
	n.mu.Unlock()
	pid := n.kill()
	if filepath.Base(exe) != "dhtd" {
		t.Errorf("%s: pid %d ran %q; want dhtd (ip netns exec should exec it in place)", n.Name, pid, exe)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("%s: pid %d still exists after SIGKILL (kill 0: %v)", n.Name, pid, err)
	}
	if pids := nsPIDs(n.NS); len(pids) > 0 {
		t.Errorf("%s: namespace %s still runs %v after SIGKILL of pid %d", n.Name, n.NS, pids, pid)
	}
}

// dhtctl runs the built dhtctl in the client namespace and returns stdout,
// stderr and the exit code.
func (c *nsCluster) dhtctl(ctx context.Context, args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	return c.inClient(ctx, nil, append([]string{dhtctlPath()}, args...)...)
}

// inClient runs argv in the client namespace with env added.
func (c *nsCluster) inClient(ctx context.Context, env []string, argv ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", c.clientNS}, argv...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(append(os.Environ(), "DURACHORD_ADMIN_TOKEN_FILE="+c.tokenFile), env...)
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		c.t.Fatalf("ip netns exec %s %s: %v", c.clientNS, strings.Join(argv, " "), err)
	}
	return out.String(), errb.String(), code
}

// ringFrom returns why `dhtctl ring --json` from n does not list exactly the
// members, each ready at the default number of positions, starting at n;
// "" when it does.
func (c *nsCluster) ringFrom(ctx context.Context, n *nsNode, members []*nsNode) string {
	c.t.Helper()
	out, errOut, code := c.dhtctl(ctx, "ring", "--json", "--admin", n.Admin)
	if code != 0 {
		return fmt.Sprintf("dhtctl ring --admin %s: exit %d: %s", n.Admin, code, strings.TrimSpace(errOut))
	}
	var ring []Status
	if err := json.Unmarshal([]byte(out), &ring); err != nil {
		return fmt.Sprintf("dhtctl ring --json: %v; output %q", err, out)
	}
	// One entry per node, each at the default number of positions, the
	// node ID first; the walk starts at n.
	vnodes := config.Default().Ring.VNodes
	ids := make([]chord.ID, 0, len(members))
	for _, m := range members {
		ids = append(ids, m.ID)
	}
	slices.SortFunc(ids, func(a, b chord.ID) int { return bytes.Compare(a[:], b[:]) })
	var got []chord.ID
	for _, st := range ring {
		got = append(got, st.ID)
		switch {
		case !st.Ready:
			return fmt.Sprintf("from %s: node %s not ready", n.Name, st.ID.Short())
		case len(st.Positions) != vnodes || st.Positions[0] != st.ID:
			return fmt.Sprintf("from %s: node %s at positions %v; want %d, its ID first", n.Name, st.ID.Short(), shortIDs(st.Positions), vnodes)
		}
	}
	if len(got) == 0 || got[0] != n.ID {
		return fmt.Sprintf("from %s: the walk lists %v; want it to start at %s", n.Name, shortIDs(got), n.ID.Short())
	}
	slices.SortFunc(got, func(a, b chord.ID) int { return bytes.Compare(a[:], b[:]) })
	if !slices.Equal(got, ids) {
		return fmt.Sprintf("from %s: %d nodes %v; want the %d members %v", n.Name, len(got), shortIDs(got), len(ids), shortIDs(ids))
	}
	return ""
}

// waitRing polls until dhtctl ring from every one of members lists exactly
// the members, in ring order. Its deadline leaves room for a restarted node
// that starts a ring of its own after 30 s without an answer from its
// remembered peers and then merges with the others.
func (c *nsCluster) waitRing(ctx context.Context, members []*nsNode) {
	c.t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	begin := time.Now()
	what := fmt.Sprintf("ring of %d hosts", len(members))
	poll(c.t, wctx, 250*time.Millisecond, what, func() string {
		for _, m := range members {
			if why := c.ringFrom(wctx, m, members); why != "" {
				return why
			}
		}
		return ""
	})
	c.t.Logf("%s seen by dhtctl ring from each of them after %v", what, time.Since(begin).Round(time.Millisecond))
}

func apiList(nodes []*nsNode) []string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.API)
	}
	return s
}

// nsPutScript puts bench-0 .. bench-(N-1) (the keys of dhtctl bench) with
// value netns-I, key I through API (I+OFF) mod len(APIS); each put is
// confirmed by dhtctl. It prints one line per failure.
const nsPutScript = `set -u
set -- $APIS
i=0
while [ "$i" -lt "$N" ]; do
	j=$(( (i + OFF) % $# + 1 )); eval api=\${$j}
	out=$("$DHTCTL" put --api "$api" --replication "$REPL" "bench-$i" "netns-$i" 2>&1) || echo "put bench-$i via $api: $out"
	i=$((i + 1))
done
`

// nsGetScript reads every key back and prints one line per key that is
// missing or has another value.
const nsGetScript = `set -u
set -- $APIS
i=0
while [ "$i" -lt "$N" ]; do
	j=$(( (i + OFF) % $# + 1 )); eval api=\${$j}
	v=$("$DHTCTL" get --api "$api" "bench-$i" 2>&1); rc=$?
	if [ "$rc" -ne 0 ] || [ "$v" != "netns-$i" ]; then echo "get bench-$i via $api: exit $rc: $v"; fi
	i=$((i + 1))
done
`

// runScript runs a put or get script in the client namespace and fails the
// test if it reported any failure.
func (c *nsCluster) runScript(ctx context.Context, what, script string, nodes []*nsNode, off int) {
	c.t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	env := []string{"DHTCTL=" + dhtctlPath(), "APIS=" + strings.Join(apiList(nodes), " "),
		"N=" + strconv.Itoa(nsRecords), "OFF=" + strconv.Itoa(off), "REPL=3"}
	begin := time.Now()
	out, errOut, code := c.inClient(sctx, env, "sh", "-c", script)
	if code != 0 {
		c.t.Fatalf("%s: sh exit %d: %s", what, code, errOut)
	}
	if out = strings.TrimSpace(out); out != "" {
		lines := strings.Split(out, "\n")
		c.t.Fatalf("%s: %d of %d keys failed; first: %s", what, len(lines), nsRecords, strings.Join(lines[:min(5, len(lines))], "; "))
	}
	c.t.Logf("%s: %d keys through %d hosts in %v", what, nsRecords, len(nodes), time.Since(begin).Round(time.Millisecond))
}

// putRecords writes the records with replication 3 through every node.
func (c *nsCluster) putRecords(ctx context.Context, nodes []*nsNode) {
	c.t.Helper()
	c.runScript(ctx, "put", nsPutScript, nodes, 0)
}

// checkRecords reads every record back through nodes (off shifts which node
// serves which key), then runs a GET-only dhtctl bench over the same key
// space, which must find every key it asks for.
func (c *nsCluster) checkRecords(ctx context.Context, what string, nodes []*nsNode, off int) {
	c.t.Helper()
	c.runScript(ctx, "get "+what, nsGetScript, nodes, off)
	const ops = 1000
	bctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	out, errOut, code := c.dhtctl(bctx, "bench", "--api", strings.Join(apiList(nodes), ","), "--get-ratio", "1",
		"--ops", strconv.Itoa(ops), "--keys", strconv.Itoa(nsRecords), "--concurrency", "5", "--json")
	if code != 0 {
		c.t.Fatalf("bench %s: exit %d: %s", what, code, errOut)
	}
	var rep struct {
		Ops        int64   `json:"ops"`
		OpsPerSec  float64 `json:"ops_per_sec"`
		GetHits    int64   `json:"get_hits"`
		GetMisses  int64   `json:"get_misses"`
		FailedGets int64   `json:"failed_gets"`
		Errors     int64   `json:"errors"`
		FirstError string  `json:"first_error"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		c.t.Fatalf("bench --json: %v; output %q", err, out)
	}
	// A separate GET-only run counts a lost key as a miss (it did not put
	// it itself), so every GET must hit.
	if rep.Ops != ops || rep.GetHits != ops || rep.GetMisses != 0 || rep.FailedGets != 0 || rep.Errors != 0 {
		c.t.Fatalf("bench %s: ops %d, hits %d, misses %d, failed %d, errors %d (%s); want %d hits and nothing else",
			what, rep.Ops, rep.GetHits, rep.GetMisses, rep.FailedGets, rep.Errors, rep.FirstError, ops)
	}
	c.t.Logf("bench %s: %d GETs, all hits, %.0f ops/s", what, rep.Ops, rep.OpsPerSec)
}

// without returns nodes minus drop.
func without(nodes []*nsNode, drop ...*nsNode) []*nsNode {
	return slices.DeleteFunc(slices.Clone(nodes), func(n *nsNode) bool { return slices.Contains(drop, n) })
}

// TestNetnsRingForms: five hosts, each in its own network namespace behind a
// bridge, form one ring, as dhtctl ring from a client host shows.
func TestNetnsRingForms(t *testing.T) {
	c := newNSCluster(t, 5)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c.start()
	c.waitRing(ctx, c.nodes)
	out, errOut, code := c.dhtctl(ctx, "status", "--json", "--admin", c.nodes[2].Admin)
	if code != 0 {
		t.Fatalf("dhtctl status --admin %s: exit %d: %s", c.nodes[2].Admin, code, errOut)
	}
	var st Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("dhtctl status --json: %v; output %q", err, out)
	}
	if st.ID != c.nodes[2].ID || st.Address != c.nodes[2].P2P || !st.Ready {
		t.Errorf("dhtctl status of node2 = id %s, address %s, ready %v; want id %s, address %s, ready",
			st.ID.Short(), st.Address, st.Ready, c.nodes[2].ID.Short(), c.nodes[2].P2P)
	}
}

// TestNetnsPartition: 500 records with replication 3 on five hosts; one host
// is cut off (its link set down); the other four form a ring of four and
// serve every record; the link comes back and the host rejoins.
func TestNetnsPartition(t *testing.T) {
	c := newNSCluster(t, 5)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c.start()
	c.waitRing(ctx, c.nodes)
	c.putRecords(ctx, c.nodes)
	c.checkRecords(ctx, "before the cut", c.nodes, 1)

	cut := c.nodes[2]
	rest := without(c.nodes, cut)
	c.lab.setLink(cut.NS, false)
	c.waitRing(ctx, rest)
	c.checkRecords(ctx, "with "+cut.Name+" cut off", rest, 2)
	if !cut.Running() {
		t.Fatalf("%s: dhtd exited while cut off", cut.Name)
	}

	c.lab.setLink(cut.NS, true)
	c.waitRing(ctx, c.nodes)
	c.checkRecords(ctx, "after "+cut.Name+" rejoined", c.nodes, 3)
}

// TestNetnsKillRestart: two hosts' dhtd die by SIGKILL and restart with the
// same data dirs and no bootstrap; the ring of five is back and every record
// is readable.
func TestNetnsKillRestart(t *testing.T) {
	c := newNSCluster(t, 5)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	c.start()
	c.waitRing(ctx, c.nodes)
	c.putRecords(ctx, c.nodes)

	victims := []*nsNode{c.nodes[1], c.nodes[3]}
	for _, v := range victims {
		v.Kill()
	}
	c.waitRing(ctx, without(c.nodes, victims...))
	for _, v := range victims {
		v.Start() // no bootstrap: it rejoins through the peers it saved
	}
	c.waitRing(ctx, c.nodes)
	c.checkRecords(ctx, "after the restarts", c.nodes, 1)
}

// TestNetnsLatency: with 20 ms of delay on every host's link the ring still
// forms. Needs the kernel's netem qdisc.
func TestNetnsLatency(t *testing.T) {
	requireNetns(t)
	if _, err := exec.LookPath("tc"); err != nil {
		testenv.Skip(t, "latency test: the tc tool is missing")
	}
	probe := newNetLab(t)
	ns, _ := probe.addHost("probe", 2)
	if out, err := exec.Command("tc", "-n", ns, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "20ms").CombinedOutput(); err != nil {
		testenv.Unsupported(t, fmt.Sprintf("latency test: the kernel has no netem qdisc (tc: %s)", bytes.TrimSpace(out)))
	}
	c := newNSCluster(t, 5)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for _, n := range c.nodes {
		if out, err := exec.Command("tc", "-n", n.NS, "qdisc", "add", "dev", "eth0", "root", "netem", "delay", "20ms").CombinedOutput(); err != nil {
			t.Fatalf("tc netem on %s: %v: %s", n.Name, err, out)
		}
	}
	c.start()
	c.waitRing(ctx, c.nodes)
}
