package e2e

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/store"
)

// TestRestoreStartsANode: the documented way back from a backup. A node's
// records are backed up with `dhtctl backup` while it runs; the node is
// stopped; `dhtctl restore` puts the backup into a new, empty data dir (with
// the copy of node.secret the operator kept), and a node started on it
// answers every record. A second restore into that data dir is refused while
// the node runs, even with --force.
func TestRestoreStartsANode(t *testing.T) {
	c := NewCluster(t, ClusterOptions{Replication: 1})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	src := c.StartNodes(1)[0]
	stable(t, ctx, c)
	const set, n = "restore", 200
	cl := src.Dial(ctx)
	for i := range n {
		if err := cl.Put(ctx, api.Put{Key: testKey(set, i), Value: testValue(set, i), TTL: 3600}); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	// A GET of each key after its PUT on the same connection: every PUT is
	// done (a connection's requests run concurrently; read-your-writes
	// orders a key's GET after its PUT, not after the PUTs of other keys,
	// and PUTs made while the node adds its further positions take
	// longer).
	for i := range n {
		if v, err := cl.Get(ctx, testKey(set, i)); err != nil || !bytes.Equal(v, testValue(set, i)) {
			t.Fatalf("Get %d = %q, %v", i, v, err)
		}
	}
	backup := filepath.Join(t.TempDir(), "records.backup")
	if out, errOut, code := dhtctl(t, ctx, "backup", "--admin", src.Admin, "--out", backup); code != 0 {
		t.Fatalf("dhtctl backup: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if err := src.Stop(); err != nil {
		t.Fatalf("stop %s: %v", src.Name, err)
	}
	src.SetMember(false) // gone for good: the ring is the new node alone

	dst := c.NewNode(NodeOptions{})
	secret := filepath.Join(src.DataDir, store.SecretFile)
	out, errOut, code := dhtctl(t, ctx, "restore", "--from", backup, "--data-dir", dst.DataDir, "--secret", secret)
	if code != 0 {
		t.Fatalf("dhtctl restore: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	t.Logf("dhtctl restore: %s", bytes.TrimSpace([]byte(out)))
	dst.Start()
	stable(t, ctx, c)
	rd := dst.Dial(ctx)
	for i := range n {
		v, err := rd.Get(ctx, testKey(set, i))
		if err != nil || !bytes.Equal(v, testValue(set, i)) {
			t.Fatalf("record %d through the node started on the restored data dir = %q, %v; want %q", i, v, err, testValue(set, i))
		}
	}
	_, errOut, code = dhtctl(t, ctx, "restore", "--from", backup, "--data-dir", dst.DataDir, "--secret", secret, "--force")
	if code == 0 || !bytes.Contains([]byte(errOut), []byte("in use")) {
		t.Fatalf("restore into the data dir of a running node: exit %d, stderr %q; want it refused as in use", code, errOut)
	}
}
