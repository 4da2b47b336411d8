package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
)

// TestDevnet runs `dhtctl devnet` as a user would: it prints one JSON line once
// the ring is ready, the ring answers puts and gets, and when devnet stops (here
// by --duration) no node it started is left running.
func TestDevnet(t *testing.T) {
	requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, dhtctlPath(), "devnet", "--nodes", "3", "--json", "--demo", "--duration", "20s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("devnet printed nothing; stderr: %s", stderr.String())
	}
	var ready struct {
		Nodes []struct {
			ID             string `json:"id"`
			P2P            string `json:"p2p"`
			API            string `json:"api"`
			Admin          string `json:"admin"`
			DataDir        string `json:"data_dir"`
			AdminTokenFile string `json:"admin_token_file"`
		} `json:"nodes"`
	}
	if err := json.Unmarshal(lines.Bytes(), &ready); err != nil || len(ready.Nodes) != 3 {
		t.Fatalf("first line %q: %v; want {\"nodes\":[3 nodes]}", lines.Text(), err)
	}
	for _, n := range ready.Nodes {
		if len(n.ID) != 64 || n.P2P == "" || n.API == "" || n.Admin == "" || n.DataDir == "" {
			t.Fatalf("node %+v: want id (64 hex digits), p2p, api, admin and data_dir", n)
		}
	}
	// devnet's nodes want the admin token it made, as a ring off loopback would.
	first := ready.Nodes[0]
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
	pc, err := api.Dial(ctx, ready.Nodes[0].API)
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
	gc, err := api.Dial(ctx, ready.Nodes[2].API)
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
	for _, n := range ready.Nodes {
		out, _ := exec.Command("pgrep", "-f", "--", "--p2p-address "+n.P2P).Output()
		for _, pid := range strings.Fields(string(out)) {
			if p, err := strconv.Atoi(pid); err == nil {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			t.Errorf("dhtd of node %s (pid %s) still runs after devnet exited", n.P2P, pid)
		}
	}
}
