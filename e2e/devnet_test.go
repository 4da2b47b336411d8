package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
)

// devnetNode is a node as `dhtctl devnet --json` prints it.
type devnetNode struct {
	ID             string `json:"id"`
	P2P            string `json:"p2p"`
	API            string `json:"api"`
	Admin          string `json:"admin"`
	DataDir        string `json:"data_dir"`
	AdminTokenFile string `json:"admin_token_file"`
}

// devnet is a running `dhtctl devnet --json`: its nodes, and its output
// after the line that listed them.
type devnet struct {
	cmd    *exec.Cmd
	nodes  []devnetNode
	lines  *bufio.Scanner
	stderr *bytes.Buffer
}

// startDevnet runs `dhtctl devnet --nodes n --json` with args and returns
// once it has listed its nodes (the ring is ready). Unless the test waits
// for it, it is stopped with SIGTERM when the test ends, and no node it
// started may be left running.
func startDevnet(t *testing.T, ctx context.Context, n int, args ...string) *devnet {
	t.Helper()
	cmd := exec.CommandContext(ctx, dhtctlPath(), append([]string{"devnet", "--nodes", strconv.Itoa(n), "--json"}, args...)...)
	// When ctx ends (the test's deferred cancel runs before its cleanups),
	// devnet is asked to stop its nodes, not killed past them.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	dn := &devnet{cmd: cmd, stderr: &bytes.Buffer{}}
	cmd.Stderr = dn.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState != nil {
			return // the test waited for it
		}
		_ = cmd.Process.Signal(syscall.SIGTERM) // devnet stops its nodes
		done := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, stdout)
			_ = cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("devnet did not stop within 30 s of SIGTERM")
		}
		dn.checkNodesGone(t)
	})
	dn.lines = bufio.NewScanner(stdout)
	if !dn.lines.Scan() {
		t.Fatalf("devnet printed nothing; stderr: %s", dn.stderr.String())
	}
	var ready struct {
		Nodes []devnetNode `json:"nodes"`
	}
	if err := json.Unmarshal(dn.lines.Bytes(), &ready); err != nil || len(ready.Nodes) != n {
		t.Fatalf("devnet's first line %q: %v; want {\"nodes\":[%d nodes]}", dn.lines.Text(), err, n)
	}
	dn.nodes = ready.Nodes
	return dn
}

// TestDevnet runs `dhtctl devnet` as a user would: it prints one JSON line once
// the ring is ready, the ring answers puts and gets, and when devnet stops (here
// by --duration) no node it started is left running.
func TestDevnet(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dn := startDevnet(t, ctx, 3, "--demo", "--duration", "20s")
	cmd, lines, stderr := dn.cmd, dn.lines, dn.stderr
	for _, n := range dn.nodes {
		if len(n.ID) != 64 || n.P2P == "" || n.API == "" || n.Admin == "" || n.DataDir == "" {
			t.Fatalf("node %+v: want id (64 hex digits), p2p, api, admin and data_dir", n)
		}
	}
	// devnet's nodes want the admin token it made, as a ring off loopback would.
	first := dn.nodes[0]
	if _, errOut, code := dhtctl(t, ctx, "status", "--admin", first.Admin); code != 2 || !strings.Contains(errOut, "401") {
		t.Errorf("dhtctl status of a devnet node without its token: exit %d, %q; want 2 and 401", code, errOut)
	}
	if _, errOut, code := dhtctl(t, ctx, "status", "--admin", first.Admin, "--admin-token-file", first.AdminTokenFile); code != 0 {
		t.Errorf("dhtctl status --admin-token-file %q: exit %d, %q; want 0", first.AdminTokenFile, code, errOut)
	}
	// The demo's put and get lines follow.
	var rest strings.Builder
	for lines.Scan() {
		rest.WriteString(lines.Text() + "\n")
		if strings.HasPrefix(lines.Text(), "GET") {
			break
		}
	}
	if !strings.Contains(rest.String(), "PUT") || !strings.Contains(rest.String(), "GET") {
		t.Fatalf("devnet --demo printed %q; want its PUT and GET lines", rest.String())
	}
	// A put through one node, a get through another.
	var key [api.KeySize]byte
	copy(key[:], "devnet-test")
	pc, err := api.Dial(ctx, dn.nodes[0].API)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.Put(ctx, api.Put{Key: key, Value: []byte("v"), TTL: 60}); err != nil {
		t.Fatal(err)
	}
	if _, err := pc.Get(ctx, key); err != nil {
		t.Fatalf("get on the putting connection: %v", err)
	}
	gc, err := api.Dial(ctx, dn.nodes[2].API)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	if v, err := gc.Get(ctx, key); err != nil || string(v) != "v" {
		t.Fatalf("get through another node = %q, %v; want \"v\"", v, err)
	}
	// devnet stops by itself after --duration and takes its nodes with it.
	for lines.Scan() {
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("devnet exited with %v; stderr: %s", err, stderr.String())
	}
	dn.checkNodesGone(t)
}

// checkNodesGone fails the test for every node of dn whose dhtd still runs
// once devnet has exited (and stops it).
func (dn *devnet) checkNodesGone(t *testing.T) {
	t.Helper()
	for _, n := range dn.nodes {
		out, _ := exec.Command("pgrep", "-f", "--", "--p2p-address "+n.P2P).Output()
		for _, pid := range strings.Fields(string(out)) {
			if p, err := strconv.Atoi(pid); err == nil {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			t.Errorf("dhtd of node %s (pid %s) still runs after devnet exited", n.P2P, pid)
		}
	}
}
