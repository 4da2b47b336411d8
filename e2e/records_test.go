package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/store"
)

// stable waits up to a minute for the ring of live members to be stable.
func stable(t *testing.T, ctx context.Context, c *Cluster) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c.WaitStable(sctx)
}

// TestCourseClient: what the course's test client does. A PUT with TTL 1 s
// and replication 1 is read back 0.5 s later on the same connection; a GET of
// an absent key gets a 36-byte DHT FAILURE and the connection stays usable.
func TestCourseClient(t *testing.T) {
	c := NewCluster(t, ClusterOptions{Replication: 3})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	nodes := c.StartNodes(8)
	stable(t, ctx, c)

	t.Run("put TTL 1 then get after 0.5s", func(t *testing.T) {
		cl := nodes[1].Dial(ctx)
		key := testKey("course", 1)
		val := []byte("course client value")
		if err := cl.Put(ctx, api.Put{TTL: 1, Replication: 1, Key: key, Value: val}); err != nil {
			t.Fatalf("Put: %v", err)
		}
		timer := time.NewTimer(500 * time.Millisecond) // the client's behaviour, not a wait for a condition
		<-timer.C
		gctx, gcancel := context.WithTimeout(ctx, 400*time.Millisecond)
		defer gcancel()
		got, err := cl.Get(gctx, key)
		if err != nil || !bytes.Equal(got, val) {
			t.Errorf("GET 0.5s after PUT TTL 1 = %q, %v; want SUCCESS %q", got, err, val)
		}
	})

	t.Run("absent key on a raw connection", func(t *testing.T) {
		conn, err := net.Dial("tcp", nodes[4].API)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
			t.Fatal(err)
		}
		absent := testKey("course-absent", 0)
		get := binary.BigEndian.AppendUint16(nil, 36)
		get = binary.BigEndian.AppendUint16(get, 651)
		get = append(get, absent[:]...)
		if _, err := conn.Write(get); err != nil {
			t.Fatal(err)
		}
		reply := make([]byte, 36)
		if _, err := io.ReadFull(conn, reply); err != nil {
			t.Fatalf("reading the reply to a GET of an absent key: %v", err)
		}
		want := binary.BigEndian.AppendUint16(nil, 36)
		want = binary.BigEndian.AppendUint16(want, 653)
		want = append(want, absent[:]...)
		if !bytes.Equal(reply, want) {
			t.Fatalf("reply to GET of an absent key = %x; want %x (DHT FAILURE)", reply, want)
		}
		// The connection stays usable: PUT then GET on it.
		key := testKey("course", 2)
		val := []byte("after a failure")
		put := binary.BigEndian.AppendUint16(nil, uint16(40+len(val)))
		put = binary.BigEndian.AppendUint16(put, 650)
		put = append(put, 0, 60, 3, 0) // TTL 60 s, replication 3, reserved
		put = append(put, key[:]...)
		put = append(put, val...)
		get = binary.BigEndian.AppendUint16(nil, 36)
		get = binary.BigEndian.AppendUint16(get, 651)
		get = append(get, key[:]...)
		if _, err := conn.Write(append(put, get...)); err != nil {
			t.Fatal(err)
		}
		reply = make([]byte, 36+len(val))
		if _, err := io.ReadFull(conn, reply); err != nil {
			t.Fatalf("reading the reply to a GET after PUT on the same connection: %v", err)
		}
		want = binary.BigEndian.AppendUint16(nil, uint16(36+len(val)))
		want = binary.BigEndian.AppendUint16(want, 652)
		want = append(want, key[:]...)
		want = append(want, val...)
		if !bytes.Equal(reply, want) {
			t.Errorf("reply to GET after PUT = %x; want %x (DHT SUCCESS)", reply, want)
		}
	})
}

// TestRecordsSurviveFailures: 10,000 records with replication 3 on 8 nodes
// survive two adjacent nodes killed with SIGKILL, a ninth node joining (it
// takes its arc as primary), a node leaving gracefully, and then every node
// killed and restarted without --bootstrap. The nodes stand at the default
// four ring positions each: a record's three copies are on three distinct
// nodes, so two nodes killed leave one. TestOnePositionSurvivesFailures runs
// it on nodes at one position each (ring.vnodes = 1).
func TestRecordsSurviveFailures(t *testing.T) {
	recordsSurviveFailures(t, ClusterOptions{Replication: 3}, 10000)
}

// TestOnePositionSurvivesFailures is TestRecordsSurviveFailures with
// ring.vnodes = 1, the ring of earlier releases.
func TestOnePositionSurvivesFailures(t *testing.T) {
	recordsSurviveFailures(t, ClusterOptions{Replication: 3, VNodes: 1}, 4000)
}

func recordsSurviveFailures(t *testing.T, opts ClusterOptions, records int) {
	c := NewCluster(t, opts)
	ctx, cancel := context.WithTimeout(t.Context(), 6*time.Minute)
	defer cancel()
	nodes := c.StartNodes(8)
	stable(t, ctx, c)

	ds := dataSet{Name: "survive", N: records}
	start := time.Now()
	if lost := putAll(t, ctx, nodes, ds, 32, 8, 3600, 3); lost > 0 {
		t.Errorf("%d of %d PUTs (32 connections, 8 in flight each) were lost: not visible to a GET on the same connection", lost, ds.N)
	}
	t.Logf("put %d records through 32 connections in %v", ds.N, time.Since(start).Round(time.Millisecond))
	checkAllReadable(t, ctx, nodes[:1], ds, 60*time.Second)

	// Two nodes adjacent on the ring die: each record keeps at least one copy.
	byID := slices.Clone(nodes)
	slices.SortFunc(byID, func(a, b *Node) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	dead := byID[3:5]
	for _, n := range dead {
		n.Kill()
	}
	t.Logf("killed %s and %s (adjacent)", dead[0].Name, dead[1].Name)
	stable(t, ctx, c)
	checkAllReadable(t, ctx, c.LiveMembers(), ds, 60*time.Second)
	if t.Failed() {
		t.FailNow()
	}

	// A ninth node joins and becomes primary for its arc.
	// It bootstraps through survivors: which of nodes[] died depends on
	// their IDs.
	var via []string
	for _, n := range c.LiveMembers()[:2] {
		via = append(via, n.P2P)
	}
	ninth := c.NewNode(NodeOptions{})
	ninth.Start(via...)
	stable(t, ctx, c)
	pctx, pcancel := context.WithTimeout(ctx, 60*time.Second)
	poll(t, pctx, 200*time.Millisecond, "ninth node takes its arc", func() string {
		st, err := ninth.Status(pctx)
		if err != nil {
			return err.Error()
		}
		if st.Records.Primary == 0 {
			return fmt.Sprintf("ninth node /status records = %+v; want primary > 0", st.Records)
		}
		return ""
	})
	pcancel()
	// Through the newcomer and through an old member still alive (the pair
	// killed above depends on ring order).
	var old *Node
	for _, n := range c.LiveMembers() {
		if n != ninth {
			old = n
			break
		}
	}
	checkAllReadable(t, ctx, []*Node{ninth, old}, ds, 60*time.Second)
	if t.Failed() {
		t.FailNow()
	}

	// A node leaves gracefully: nothing is lost.
	live := slices.DeleteFunc(c.LiveMembers(), func(n *Node) bool { return n == ninth })
	reader, leaver := live[0], live[len(live)-1]
	if err := leaver.Stop(); err != nil {
		t.Errorf("%s after SIGTERM exited with %v; want status 0", leaver.Name, err)
	}
	leaver.SetMember(false)
	stable(t, ctx, c)
	checkAllReadable(t, ctx, []*Node{reader}, ds, 60*time.Second)
	if t.Failed() {
		t.FailNow()
	}

	// Every node dies (the two killed before too) and comes back from its
	// data dir, without --bootstrap.
	for _, n := range c.LiveMembers() {
		n.Kill()
	}
	for _, n := range c.Members() {
		n.Restart()
	}
	stable(t, ctx, c)
	checkRingCLI(t, ctx, c, reader)
	checkAllReadable(t, ctx, []*Node{reader, ninth}, ds, 60*time.Second)
}

// copies counts the records each node stores (primary + replica), from
// /status.
func copies(ctx context.Context, nodes []*Node) (int64, string, error) {
	var sum int64
	var detail string
	for _, n := range nodes {
		st, err := n.Status(ctx)
		if err != nil {
			return 0, "", err
		}
		sum += st.Records.Primary + st.Records.Replica
		detail += fmt.Sprintf(" %s=%d+%d", n.Name, st.Records.Primary, st.Records.Replica)
	}
	return sum, detail, nil
}

// TestExpiryAndOverwrite: expired records are unreadable through every node
// and swept from every replica; an overwrite is the value on every holder
// after repair.
func TestExpiryAndOverwrite(t *testing.T) {
	c := NewCluster(t, ClusterOptions{Replication: 3})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	nodes := c.StartNodes(4)
	stable(t, ctx, c)

	short := dataSet{Name: "short", N: 100}
	long := dataSet{Name: "long", N: 100}
	putAll(t, ctx, nodes, long, 4, 8, 3600, 3)
	putAll(t, ctx, nodes, short, 4, 8, 3, 3)

	// Expired: FAILURE through every node.
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	for _, n := range nodes {
		cl := n.Dial(ctx)
		poll(t, pctx, 250*time.Millisecond, "expired records unreadable via "+n.Name, func() string {
			for i := range short.N {
				gctx, gcancel := context.WithTimeout(pctx, 5*time.Second)
				v, err := cl.Get(gctx, testKey(short.Name, i))
				gcancel()
				if !errors.Is(err, api.ErrNotFound) {
					return fmt.Sprintf("GET of record %d (TTL 3s) = %q, %v; want FAILURE", i, v, err)
				}
			}
			return ""
		})
	}
	// Swept from every holder: only the long records' three copies remain.
	poll(t, pctx, 250*time.Millisecond, "expired records swept", func() string {
		sum, detail, err := copies(pctx, nodes)
		if err != nil {
			return err.Error()
		}
		if want := int64(3 * long.N); sum != want {
			return fmt.Sprintf("records stored over the ring = %d (%s); want %d (%d live records x 3)", sum, detail, want, long.N)
		}
		return ""
	})
	checkAllReadable(t, ctx, nodes, long, 30*time.Second)

	// Overwrite through another node: the newer value wins everywhere.
	key := testKey("overwrite", 0)
	v1, v2 := []byte("first value"), []byte("second, newer value")
	cl0, cl2 := nodes[0].Dial(ctx), nodes[2].Dial(ctx)
	if err := cl0.Put(ctx, api.Put{TTL: 3600, Replication: 3, Key: key, Value: v1}); err != nil {
		t.Fatal(err)
	}
	if got, err := cl0.Get(ctx, key); err != nil || !bytes.Equal(got, v1) {
		t.Fatalf("GET after PUT v1 = %q, %v; want %q", got, err, v1)
	}
	if err := cl2.Put(ctx, api.Put{TTL: 3600, Replication: 3, Key: key, Value: v2}); err != nil {
		t.Fatal(err)
	}
	if got, err := cl2.Get(ctx, key); err != nil || !bytes.Equal(got, v2) {
		t.Fatalf("GET after PUT v2 = %q, %v; want %q", got, err, v2)
	}
	for _, n := range nodes {
		cl := n.Dial(ctx)
		poll(t, pctx, 100*time.Millisecond, "overwrite visible via "+n.Name, func() string {
			got, err := cl.Get(pctx, key)
			if err != nil || !bytes.Equal(got, v2) {
				return fmt.Sprintf("GET = %q, %v; want %q", got, err, v2)
			}
			return ""
		})
	}
	// After two repair rounds every holder has v2: stop the ring and look.
	waitRepairRounds(t, ctx, nodes, 2)
	for _, n := range nodes {
		n.Kill()
	}
	holders := 0
	for _, n := range nodes {
		r, err := readRecord(n, key)
		switch {
		case errors.Is(err, store.ErrNotFound):
			continue
		case err != nil:
			t.Errorf("%s: reading its database: %v", n.Name, err)
		case !bytes.Equal(r.Value, v2):
			t.Errorf("%s holds %q (version %v) after repair; want %q", n.Name, r.Value, r.Version, v2)
		}
		holders++
	}
	if holders != 3 {
		t.Errorf("the overwritten record is held by %d nodes; want 3", holders)
	}
}

// waitRepairRounds waits until each node has run at least k more maintenance
// (repair) rounds than when it was called.
func waitRepairRounds(t *testing.T, ctx context.Context, nodes []*Node, k float64) {
	t.Helper()
	const name = "durachord_dht_maintenance_rounds_total"
	base := make([]float64, len(nodes))
	for i, n := range nodes {
		v, err := n.Metric(ctx, name)
		if err != nil {
			t.Fatalf("%s: %v", n.Name, err)
		}
		base[i] = v
	}
	pctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	poll(t, pctx, 250*time.Millisecond, "repair rounds", func() string {
		for i, n := range nodes {
			v, err := n.Metric(pctx, name)
			if err != nil {
				return err.Error()
			}
			if v < base[i]+k {
				return fmt.Sprintf("%s %s = %v; want at least %v", n.Name, name, v, base[i]+k)
			}
		}
		return ""
	})
}

// readRecord reads key from a stopped node's database.
func readRecord(n *Node, key [32]byte) (store.Record, error) {
	cfg := store.DefaultConfig()
	cfg.ReadOnly = true
	s, err := store.Open(n.DataDir, cfg)
	if err != nil {
		return store.Record{}, err
	}
	defer s.Close()
	return s.Get(key)
}

// TestTamperedReplicaRepaired: a record altered on one holder's disk is
// detected and repaired from the other holders.
func TestTamperedReplicaRepaired(t *testing.T) {
	c := NewCluster(t, ClusterOptions{Replication: 3})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	nodes := c.StartNodes(4)
	stable(t, ctx, c)

	key := testKey("tamper", 0)
	val := []byte("TAMPER-ME-" + string(bytes.Repeat([]byte("0123456789abcdef"), 4)))
	cl := nodes[0].Dial(ctx)
	if err := cl.Put(ctx, api.Put{TTL: 3600, Replication: 3, Key: key, Value: val}); err != nil {
		t.Fatal(err)
	}
	if got, err := cl.Get(ctx, key); err != nil || !bytes.Equal(got, val) {
		t.Fatalf("GET after PUT = %q, %v; want %q", got, err, val)
	}
	waitRepairRounds(t, ctx, nodes, 1) // the copies are in place

	// Find a holder: kill nodes one at a time until one holds the record. A
	// node that held it once and let it go may still have its bytes in a free
	// page of its file, so the record itself must be there, live.
	var victim *Node
	for _, n := range nodes {
		n.Kill()
		if r, err := readRecord(n, key); err != nil || !bytes.Equal(r.Value, val) {
			n.Restart()
			stable(t, ctx, c)
			continue
		}
		path := filepath.Join(n.DataDir, store.DBFile)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		i := bytes.Index(b, val)
		if i < 0 {
			n.Restart()
			stable(t, ctx, c)
			continue
		}
		// "TAMPER" -> "TAMpER": same length, different bytes. bbolt may
		// keep older copies in free pages: alter every occurrence.
		for i >= 0 {
			b[i+3] ^= 0x20
			j := bytes.Index(b[i+1:], val)
			if j < 0 {
				break
			}
			i += 1 + j
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		victim = n
		break
	}
	if victim == nil {
		t.Fatal("no node's database holds the value")
	}
	if _, errOut, code := dhtctl(t, ctx, "dump", "--help"); code != 0 {
		t.Fatalf("dhtctl dump --help: exit %d, stderr %q; want the dump command", code, errOut)
	}
	_, errOut, code := dhtctl(t, ctx, "dump", "--data-dir", victim.DataDir, "--verify")
	if code != 2 {
		t.Errorf("dhtctl dump --verify on the tampered database: exit %d (stderr %q); want 2", code, errOut)
	}
	victim.Restart()
	stable(t, ctx, c)
	// Reading through the victim sees the good value.
	vcl := victim.Dial(ctx)
	if got, err := vcl.Get(ctx, key); err != nil || !bytes.Equal(got, val) {
		t.Errorf("GET via the tampered node = %q, %v; want %q", got, err, val)
	}
	waitRepairRounds(t, ctx, nodes, 3)
	victim.Kill()
	out, errOut, code := dhtctl(t, ctx, "dump", "--data-dir", victim.DataDir, "--verify")
	if code != 0 {
		t.Errorf("dhtctl dump --verify after repair: exit %d; want 0\nstdout:\n%s\nstderr: %s", code, tail2(out, 5), errOut)
	}
	r, err := readRecord(victim, key)
	if err != nil || !bytes.Equal(r.Value, val) {
		t.Errorf("%s holds %q, %v after repair; want %q", victim.Name, r.Value, err, val)
	}
}

// tail2 returns the last n lines of s.
func tail2(s string, n int) string {
	lines := bytes.Split(bytes.TrimRight([]byte(s), "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// TestPipelinedPutBurst: 32 clients pipeline 10,000 PUTs without waiting
// (the protocol allows it; limits must push back, not drop): every record is
// then readable.
func TestPipelinedPutBurst(t *testing.T) {
	c := NewCluster(t, ClusterOptions{Replication: 3})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	nodes := c.StartNodes(8)
	stable(t, ctx, c)
	ds := dataSet{Name: "burst", N: 10000}
	putBurst(t, ctx, nodes, ds, 32, 3600, 3)
	stable(t, ctx, c)
	checkAllReadable(t, ctx, nodes[:1], ds, 30*time.Second)
	var failed float64
	for _, n := range nodes {
		f, _, err := n.FailedPuts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		failed += f
	}
	if failed > 0 {
		t.Errorf("sum over the ring of durachord_api_requests_total{type=\"put\",outcome!=\"success\"} = %v; want 0", failed)
	}
}
