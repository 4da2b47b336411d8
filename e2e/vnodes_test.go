package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// setVNodes rewrites a node's config with ring.vnodes = v.
func setVNodes(t *testing.T, n *Node, v int) {
	t.Helper()
	b, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "vnodes = ") {
			lines = append(lines, l)
		}
	}
	cfg := strings.Replace(strings.Join(lines, "\n"), "[ring]\n", fmt.Sprintf("[ring]\nvnodes = %d\n", v), 1)
	if err := os.WriteFile(n.ConfigPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestVirtualNodesRollingUpgrade: a ring of six nodes at one position each,
// holding 3,000 records with replication 3, moves to four positions per node
// by restarting one node at a time with ring.vnodes = 4 (SIGTERM, as
// systemctl restart does, and no --bootstrap): after each restart every
// record reads back, and in the end every node stands at four positions and
// the ring is whole. A node then started with fewer positions than its data
// directory records refuses to start, in one line that says why.
func TestVirtualNodesRollingUpgrade(t *testing.T) {
	c := NewCluster(t, ClusterOptions{Replication: 3, VNodes: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	nodes := c.StartNodes(6)
	stable(t, ctx, c)
	ds := dataSet{Name: "upgrade", N: 3000}
	if lost := putAll(t, ctx, nodes, ds, 8, 8, 3600, 3); lost > 0 {
		t.Fatalf("%d of %d PUTs lost before the upgrade", lost, ds.N)
	}
	for i, n := range nodes {
		if err := n.Stop(); err != nil {
			t.Fatalf("%s after SIGTERM exited with %v; want status 0", n.Name, err)
		}
		setVNodes(t, n, 4)
		n.Restart()
		pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
		poll(t, pctx, 200*time.Millisecond, n.Name+" at four positions", func() string {
			st, err := n.Status(pctx)
			if err != nil {
				return err.Error()
			}
			if len(st.PositionStatus) != 4 || !st.Ready {
				return fmt.Sprintf("%s stands at %d positions, ready %v", n.Name, len(st.PositionStatus), st.Ready)
			}
			return ""
		})
		pcancel()
		reader := nodes[(i+1)%len(nodes)]
		checkAllReadable(t, ctx, []*Node{reader}, ds, 60*time.Second)
		if t.Failed() {
			t.Fatalf("records lost after %s restarted with four positions", n.Name)
		}
	}
	c.opts.VNodes = 4
	stable(t, ctx, c)
	checkRingCLI(t, ctx, c, nodes[0])
	checkAllReadable(t, ctx, nodes, ds, 60*time.Second)

	// Lowering ring.vnodes is refused.
	last := nodes[len(nodes)-1]
	if err := last.Stop(); err != nil {
		t.Fatalf("%s after SIGTERM exited with %v", last.Name, err)
	}
	setVNodes(t, last, 2)
	last.Restart()
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	poll(t, pctx, 100*time.Millisecond, "the node with fewer positions exits", func() string {
		if last.Running() {
			return "still running"
		}
		return ""
	})
	const why = "ring.vnodes is 2, but this data directory stands at 4 ring positions"
	if !last.LogContains(why) {
		t.Errorf("%s log lacks %q:\n%s", last.Name, why, tail(last.LogPath, 10))
	}
}
