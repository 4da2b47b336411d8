package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Deadlines of the steps of one measurement.
const (
	readyTimeout = 3 * time.Minute  // a ring or cluster up and stable
	phaseTimeout = 10 * time.Minute // one PUT or GET phase, or one peer driver run
	stopTimeout  = 45 * time.Second // a ring or cluster stopped
	buildTimeout = 5 * time.Minute  // etcd's load generator built
)

// phase is what one PUT or GET phase measured.
type phase struct {
	OpsPerSec float64 `json:"ops_per_sec"`
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	// Failed counts operations that did not do what they should: errors,
	// confirming GETs or GETs that did not find the value, timeouts.
	Failed int64 `json:"failed"`
}

// result is one system's measurement in one run.
type result struct {
	System string `json:"system"` // ours, opendht, etcd, bare
	Name   string `json:"name"`   // as the table prints it
	Put    phase  `json:"put"`
	Get    phase  `json:"get"`
	// Failed says why the measurement did not complete; its figures are
	// then left out of the table.
	Failed string `json:"failed,omitempty"`
}

// A system is one of the things measured.
type system interface {
	key() string
	name(o options) string
	// measure starts the system, runs the PUT and the GET phase and stops it.
	measure(ctx context.Context, o options, work string, stderr io.Writer) (result, error)
}

func peerName(p string, o options) string {
	switch p {
	case peerOpenDHT:
		return fmt.Sprintf("OpenDHT, %s", plural(o.nodes, "node"))
	case peerEtcd:
		return fmt.Sprintf("etcd, %s", plural(o.etcdMembers, "member"))
	default:
		return "bare server"
	}
}

// newPeer returns the peer p ready to measure, or why it cannot be.
func newPeer(ctx context.Context, p string, o options, work string) (system, string) {
	switch p {
	case peerOpenDHT:
		return newOpenDHT(o)
	case peerEtcd:
		return newEtcd(ctx, o, work)
	default:
		return bare{}, ""
	}
}

// ours is a ring of dhtd processes started by dhtctl devnet.
type ours struct{}

func (ours) key() string { return "ours" }

func (ours) name(o options) string { return "durachord, " + plural(o.nodes, "node") }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func (ours) measure(ctx context.Context, o options, _ string, stderr io.Writer) (result, error) {
	devnet, err := startProc(o.dhtctl, []string{"devnet", "--nodes", strconv.Itoa(o.nodes), "--json",
		"--ready-timeout", readyTimeout.String()}, "", stderr)
	if err != nil {
		return result{}, err
	}
	defer devnet.stop(stderr)
	line, err := devnet.firstLine(ctx, readyTimeout+10*time.Second)
	if err != nil {
		return result{}, fmt.Errorf("devnet: %w", err)
	}
	var ring struct {
		Nodes []struct {
			API string `json:"api"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(line, &ring); err != nil || len(ring.Nodes) != o.nodes {
		return result{}, fmt.Errorf("devnet printed %q: want %d nodes (%v)", line, o.nodes, err)
	}
	addrs := make([]string, len(ring.Nodes))
	for i, n := range ring.Nodes {
		addrs[i] = n.API
	}
	return benchPhases(ctx, o, addrs, o.nodes > 1)
}

// bare is dhtctl's bare server: the client protocol in front of a map.
type bare struct{}

func (bare) key() string           { return peerBare }
func (bare) name(o options) string { return peerName(peerBare, o) }

func (bare) measure(ctx context.Context, o options, _ string, stderr io.Writer) (result, error) {
	srv, err := startProc(o.dhtctl, []string{"bench", "bare-server"}, "", stderr)
	if err != nil {
		return result{}, err
	}
	defer srv.stop(stderr)
	line, err := srv.firstLine(ctx, 30*time.Second)
	if err != nil {
		return result{}, fmt.Errorf("bare server: %w", err)
	}
	var addr struct {
		API string `json:"api"`
	}
	if err := json.Unmarshal(line, &addr); err != nil || addr.API == "" {
		return result{}, fmt.Errorf("bare server printed %q: want {\"api\":...} (%v)", line, err)
	}
	return benchPhases(ctx, o, []string{addr.API}, false)
}

// benchReport is the part of dhtctl bench --json that bench-ring reads.
type benchReport struct {
	OpsPerSec float64 `json:"ops_per_sec"`
	Put       struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"put"`
	Get struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	} `json:"get"`
	PreloadFailed int64  `json:"preload_failed"`
	FailedGets    int64  `json:"failed_gets"`
	Errors        int64  `json:"errors"`
	FirstError    string `json:"first_error"`
}

// benchPhases runs dhtctl bench twice against addrs: confirmed PUTs, then
// GETs of preloaded keys, through another address than the PUT's if
// viaOther.
func benchPhases(ctx context.Context, o options, addrs []string, viaOther bool) (result, error) {
	common := []string{"bench", "--json", "--api", strings.Join(addrs, ","),
		"--ops", strconv.Itoa(o.ops), "--keys", strconv.Itoa(o.ops), "--concurrency", strconv.Itoa(o.conc),
		"--value-size", strconv.Itoa(o.valueSize), "--replication", strconv.Itoa(o.replication)}
	var res result
	for _, ph := range []struct {
		args []string
		into *phase
		get  bool
	}{
		{[]string{"--get-ratio", "0", "--put-confirm"}, &res.Put, false},
		{append([]string{"--get-ratio", "1", "--preload"}, map[bool][]string{true: {"--get-via-other"}}[viaOther]...), &res.Get, true},
	} {
		var rep benchReport
		if err := runJSON(ctx, &rep, "", o.dhtctl, append(common, ph.args...)...); err != nil {
			return res, err
		}
		ph.into.OpsPerSec = rep.OpsPerSec
		ph.into.P50, ph.into.P99 = rep.Put.P50, rep.Put.P99
		if ph.get {
			ph.into.P50, ph.into.P99 = rep.Get.P50, rep.Get.P99
		}
		ph.into.Failed = rep.FailedGets + rep.Errors + rep.PreloadFailed
		if rep.FirstError != "" && rep.Errors > 0 {
			return res, fmt.Errorf("dhtctl bench: %d errors, the first: %s", rep.Errors, rep.FirstError)
		}
	}
	return res, nil
}

// openDHT is a network of dhtnode processes in a private network namespace,
// driven by bench.py (../shared/bench/opendht).
type openDHT struct{ dir string }

func newOpenDHT(o options) (system, string) {
	dir := filepath.Join(o.shared, "opendht")
	for _, f := range []string{"cluster.sh", "bench.py"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Sprintf("%s not found", filepath.Join(dir, f))
		}
	}
	if _, err := exec.LookPath("dhtnode"); err != nil {
		return nil, "dhtnode not installed: apt-get install dhtnode python3-opendht"
	}
	if os.Geteuid() != 0 {
		return nil, "needs root for its private network namespace"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, "ip (iproute2) not installed"
	}
	if err := exec.Command("/usr/bin/python3", "-c", "import opendht").Run(); err != nil {
		return nil, "Debian's /usr/bin/python3 cannot import opendht: apt-get install python3-opendht"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err.Error()
	}
	return openDHT{dir: abs}, ""
}

func (openDHT) key() string             { return peerOpenDHT }
func (openDHT) name(o options) string   { return peerName(peerOpenDHT, o) }
func (d openDHT) cluster() string       { return filepath.Join(d.dir, "cluster.sh") }
func (d openDHT) stop(stderr io.Writer) { stopCluster(d.cluster(), d.dir, stderr) }

func (d openDHT) measure(ctx context.Context, o options, _ string, stderr io.Writer) (result, error) {
	d.stop(stderr) // a fresh network: client nodes of an earlier run stall later ones
	defer d.stop(stderr)
	// -U: no per-source rate limit, which every node on 127.0.0.1 would hit.
	if _, err := runCmd(ctx, readyTimeout, d.dir, d.cluster(), "start", strconv.Itoa(o.nodes), "-U"); err != nil {
		return result{}, err
	}
	boot := "127.0.0.1:4222"
	if o.nodes > 1 {
		boot += ",127.0.0.1:4223"
	}
	var rep struct {
		Put, Get struct {
			N         int64   `json:"n"`
			OK        int64   `json:"ok"`
			OpsPerSec float64 `json:"ops_per_s"`
			P50       float64 `json:"p50_ms"`
			P99       float64 `json:"p99_ms"`
		}
		Error string `json:"error"`
	}
	if err := runJSON(ctx, &rep, d.dir, d.cluster(), "exec", "/usr/bin/python3", "bench.py",
		"-M", strconv.Itoa(o.ops), "-C", strconv.Itoa(o.conc), "--value-size", strconv.Itoa(o.valueSize),
		"--clients", "2", "--settle", "15", "--wait-nodes", strconv.Itoa(min(o.nodes, 8)), "--bootstrap", boot); err != nil {
		return result{}, err
	}
	if rep.Error != "" {
		return result{}, fmt.Errorf("bench.py: %s", rep.Error)
	}
	return result{
		Put: phase{OpsPerSec: rep.Put.OpsPerSec, P50: rep.Put.P50, P99: rep.Put.P99, Failed: rep.Put.N - rep.Put.OK},
		Get: phase{OpsPerSec: rep.Get.OpsPerSec, P50: rep.Get.P50, P99: rep.Get.P99, Failed: rep.Get.N - rep.Get.OK},
	}, nil
}

// etcd is a local etcd cluster (../shared/bench/etcd) driven by its
// loadgen, built once into the work folder.
type etcd struct{ dir, loadgen string }

func newEtcd(ctx context.Context, o options, work string) (system, string) {
	dir := filepath.Join(o.shared, "etcd")
	for _, f := range []string{"cluster.sh", "loadgen/main.go"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return nil, fmt.Sprintf("%s not found", filepath.Join(dir, f))
		}
	}
	for _, tool := range []string{"etcd", "etcdctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, tool + " not installed: apt-get install etcd-server etcd-client"
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err.Error()
	}
	e := etcd{dir: abs, loadgen: filepath.Join(work, "etcd-loadgen")}
	if _, err := runCmd(ctx, buildTimeout, filepath.Join(abs, "loadgen"), "go", "build", "-o", e.loadgen, "."); err != nil {
		return nil, fmt.Sprintf("its load generator does not build: %v", err)
	}
	return e, ""
}

func (etcd) key() string             { return peerEtcd }
func (etcd) name(o options) string   { return peerName(peerEtcd, o) }
func (e etcd) cluster() string       { return filepath.Join(e.dir, "cluster.sh") }
func (e etcd) stop(stderr io.Writer) { stopCluster(e.cluster(), e.dir, stderr) }

func (e etcd) measure(ctx context.Context, o options, _ string, stderr io.Writer) (result, error) {
	e.stop(stderr) // start would forget the members of an earlier run
	defer e.stop(stderr)
	out, err := runCmd(ctx, readyTimeout, e.dir, e.cluster(), "start", strconv.Itoa(o.etcdMembers))
	if err != nil {
		return result{}, err
	}
	var rep struct {
		Put, Get struct {
			OpsPerSec float64 `json:"ops_per_s"`
			P50       float64 `json:"p50_ms"`
			P99       float64 `json:"p99_ms"`
			Failed    int64   `json:"failed"`
		}
	}
	eps := string(lastLine(out))
	if err := runJSON(ctx, &rep, "", e.loadgen, "-endpoints", eps, "-n", strconv.Itoa(o.ops), "-c", strconv.Itoa(o.conc)); err != nil {
		return result{}, err
	}
	return result{Put: phase(rep.Put), Get: phase(rep.Get)}, nil
}

// stopCluster runs a peer's `cluster.sh stop`, on a context of its own so
// that it runs after an interrupt too.
func stopCluster(script, dir string, stderr io.Writer) {
	if _, err := runCmd(context.Background(), stopTimeout, dir, script, "stop"); err != nil {
		fmt.Fprintf(stderr, "bench-ring: %s stop: %v\n", script, err)
	}
}

// runJSON runs a driver for at most phaseTimeout and decodes the last line
// it prints, a JSON object, into v.
func runJSON(ctx context.Context, v any, dir, name string, args ...string) error {
	out, err := runCmd(ctx, phaseTimeout, dir, name, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(lastLine(out), v); err != nil {
		return fmt.Errorf("%s printed %q: %w", filepath.Base(name), out, err)
	}
	return nil
}

func lastLine(out []byte) []byte {
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	return bytes.TrimSpace(lines[len(lines)-1])
}

// runCmd runs name in its own process group with a deadline and returns its
// standard output; on failure the error carries the tail of its standard
// error. When ctx ends or the deadline passes the whole group is killed.
func runCmd(ctx context.Context, timeout time.Duration, dir, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, tail(stderr.String()))
	}
	return stdout.Bytes(), nil
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 400 {
		s = "..." + s[len(s)-400:]
	}
	return s
}

// proc is a long-running child (a devnet, a bare server) in its own process
// group, so that a Ctrl-C in the terminal reaches bench-ring only, which
// then stops it in order.
type proc struct {
	cmd    *exec.Cmd
	lines  chan []byte // the first line of its standard output
	exited chan error
}

func startProc(name string, args []string, dir string, stderr io.Writer) (*proc, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{cmd: cmd, lines: make(chan []byte, 1), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			p.lines <- append([]byte(nil), sc.Bytes()...)
		}
		_, _ = io.Copy(io.Discard, out) // until it exits
		p.exited <- cmd.Wait()
	}()
	return p, nil
}

// firstLine waits for the first line the process prints.
func (p *proc) firstLine(ctx context.Context, timeout time.Duration) ([]byte, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l := <-p.lines:
		return l, nil
	case err := <-p.exited:
		p.exited <- err
		return nil, fmt.Errorf("exited before it was ready: %v", err)
	case <-t.C:
		return nil, fmt.Errorf("not ready within %v", timeout)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stop interrupts the process (devnet then stops its nodes, which takes
// up to its own grace period) and kills its group if it has not exited
// within stopTimeout.
func (p *proc) stop(stderr io.Writer) {
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		fmt.Fprintf(stderr, "bench-ring: %s did not stop within %v; killing it\n", filepath.Base(p.cmd.Path), stopTimeout)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// loadAverage is the 1-, 5- and 15-minute load averages, as uptime prints them.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return "unknown"
}
