package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/store"
)

// TestMetricsExactCounts: after a known workload through one node's API,
// that node's /metrics counts exactly the requests and violations it saw,
// and the other nodes count none.
func TestMetricsExactCounts(t *testing.T) {
	c := NewCluster(t, ClusterOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	nodes := c.StartNodes(3)
	c.WaitStable(ctx)
	n := nodes[1]

	const puts, hits, misses = 60, 40, 25
	cl := n.Dial(ctx)
	for i := range puts {
		if err := cl.Put(ctx, api.Put{Key: testKey("metrics", i), Value: testValue("metrics", i)}); err != nil {
			t.Fatalf("put %d via %s: %v", i, n.Name, err)
		}
	}
	// GETs on the same connection see the PUTs before them (read-your-writes).
	for i := range hits {
		gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := cl.Get(gctx, testKey("metrics", i))
		gcancel()
		if err != nil || !bytes.Equal(v, testValue("metrics", i)) {
			t.Errorf("GET record %d via %s = %q, %v; want %q", i, n.Name, v, err, testValue("metrics", i))
		}
	}
	for i := range misses {
		gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := cl.Get(gctx, testKey("metrics-absent", i))
		gcancel()
		if !errors.Is(err, api.ErrNotFound) {
			t.Errorf("GET absent key %d via %s = %q, %v; want %v", i, n.Name, v, err, api.ErrNotFound)
		}
	}

	// One protocol violation of each reason, each on a fresh connection.
	key := testKey("metrics-violation", 0)
	violations := []struct {
		reason    string
		msg       []byte
		halfClose bool // end the message early: the node sees EOF inside it
	}{
		{reason: "short_size", msg: header(2, 651)},
		{reason: "size_mismatch", msg: append(append(header(37, 651), key[:]...), 'x')},
		{reason: "unknown_type", msg: append(header(36, 700), key[:]...)},
		{reason: "unexpected_type", msg: append(append(header(37, 652), key[:]...), 'v')},
		{reason: "truncated", msg: append(header(36, 651), key[:10]...), halfClose: true},
	}
	for _, v := range violations {
		t.Run(v.reason, func(t *testing.T) {
			if err := rawViolation(ctx, n.API, v.msg, v.halfClose); err != nil {
				t.Errorf("%s (% x) to %s: %v", v.reason, v.msg[:4], n.Name, err)
			}
		})
	}

	// A PUT is counted once it is stored, which may be just after the GET
	// that waited for it was answered: wait for the PUT count to settle.
	poll(t, ctx, 50*time.Millisecond, "PUT count on "+n.Name, func() string {
		got, err := n.Metric(ctx, "durachord_api_requests_total", "type", "put")
		if err != nil {
			return err.Error()
		}
		if got < puts {
			return fmt.Sprintf("%v PUTs counted, want %d", got, puts)
		}
		return ""
	})
	text, err := n.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"durachord_api_requests_total", []string{"type", "put", "outcome", "success"}, puts},
		{"durachord_api_requests_total", []string{"type", "put"}, puts},
		{"durachord_api_requests_total", []string{"type", "get", "outcome", "success"}, hits},
		{"durachord_api_requests_total", []string{"type", "get", "outcome", "not_found"}, misses},
		{"durachord_api_requests_total", []string{"type", "get"}, hits + misses},
		{"durachord_api_violations_total", nil, float64(len(violations))},
	} {
		if got := metricSum(text, tc.name, tc.labels...); got != tc.want {
			t.Errorf("%s: %s%v = %v; want %v", n.Name, tc.name, tc.labels, got, tc.want)
		}
	}
	for _, v := range violations {
		if got := metricSum(text, "durachord_api_violations_total", "reason", v.reason); got != 1 {
			t.Errorf("%s: durachord_api_violations_total{reason=%q} = %v; want 1", n.Name, v.reason, got)
		}
	}
	for _, o := range nodes {
		if o == n {
			continue
		}
		text, err := o.Metrics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"durachord_api_requests_total", "durachord_api_violations_total"} {
			if got := metricSum(text, name); got != 0 {
				t.Errorf("%s (no client used it): %s = %v; want 0", o.Name, name, got)
			}
		}
	}
}

// header is a client API message header.
func header(size, typ uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, size), typ)
}

// rawViolation sends msg on a new connection to addr and checks that the
// node closes the connection without a reply.
func rawViolation(ctx context.Context, addr string, msg []byte, halfClose bool) error {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(15 * time.Second)); err != nil {
		return err
	}
	if _, err := nc.Write(msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if halfClose {
		if err := nc.(*net.TCPConn).CloseWrite(); err != nil {
			return fmt.Errorf("close write: %w", err)
		}
	}
	got, err := io.ReadAll(nc)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("connection still open 15s later (read %d bytes)", len(got))
	case err != nil && !errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("read: %w", err)
	case len(got) > 0:
		return fmt.Errorf("node replied % x; want the connection closed with no reply", got)
	}
	return nil
}

// load is a client workload that counts failures.
type load struct {
	mu       sync.Mutex // guards the fields below
	ops      int        // successful iterations
	failures int
	samples  []string // the first few failures
}

func (l *load) fail(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures++
	if len(l.samples) < 5 {
		l.samples = append(l.samples, fmt.Sprintf(format, args...))
	}
}

func (l *load) done() {
	l.mu.Lock()
	l.ops++
	l.mu.Unlock()
}

func (l *load) stats() (ops, failures int, samples []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ops, l.failures, append([]string(nil), l.samples...)
}

// runRotationLoad puts new records through the nodes in turn, reads each
// back on the same connection, and reads a record put some iterations
// earlier through the next node, until ctx ends.
func runRotationLoad(ctx context.Context, nodes []*Node, l *load) {
	clients := make([]*api.Client, len(nodes))
	for i, n := range nodes {
		cl, err := api.Dial(ctx, n.API)
		if err != nil {
			l.fail("dial %s: %v", n.Name, err)
			return
		}
		defer cl.Close()
		clients[i] = cl
	}
	tick := time.NewTicker(5 * time.Millisecond) // pacing, to spare the CPU
	defer tick.Stop()
	const lag = 8
	get := func(i, via int) {
		gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		v, err := clients[via].Get(gctx, testKey("rotate", i))
		switch {
		case ctx.Err() != nil:
		case err != nil:
			l.fail("GET record %d via %s: %v", i, nodes[via].Name, err)
		case !bytes.Equal(v, testValue("rotate", i)):
			l.fail("GET record %d via %s = %q; want %q", i, nodes[via].Name, v, testValue("rotate", i))
		}
	}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		via := i % len(nodes)
		if err := clients[via].Put(ctx, api.Put{Key: testKey("rotate", i), Value: testValue("rotate", i)}); err != nil {
			if ctx.Err() == nil {
				l.fail("PUT record %d via %s: %v", i, nodes[via].Name, err)
			}
			continue
		}
		get(i, via)
		if i >= lag {
			get(i-lag, (via+1)%len(nodes))
		}
		if ctx.Err() == nil {
			l.done()
		}
	}
}

// waitProgress waits until l has done more operations than it had.
func waitProgress(t *testing.T, ctx context.Context, l *load, more int) {
	t.Helper()
	start, _, _ := l.stats()
	poll(t, ctx, 20*time.Millisecond, "client load progress", func() string {
		ops, failures, samples := l.stats()
		if failures > 0 {
			t.Fatalf("%d client failures (e.g. %s)", failures, strings.Join(samples, "; "))
		}
		if ops < start+more {
			return fmt.Sprintf("%d operations since, want %d", ops-start, more)
		}
		return ""
	})
}

// writeKeys replaces the keys file at path (atomically, mode 0600).
func writeKeys(t *testing.T, path string, keys ...string) {
	t.Helper()
	tmp := path + ".new"
	text := strings.Join(keys, "\n")
	if len(keys) > 0 {
		text += "\n"
	}
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// countLog returns how many lines of the node's log contain s.
func (n *Node) countLog(s string) int {
	f, err := os.Open(n.LogPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	count := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			count++
		}
	}
	return count
}

// sighupAndWait sends SIGHUP to n and waits until its log has one more line
// containing want.
func sighupAndWait(t *testing.T, ctx context.Context, n *Node, want string) {
	t.Helper()
	before := n.countLog(want)
	refusedBefore := n.countLog("reload refused")
	n.Signal(syscall.SIGHUP)
	poll(t, ctx, 20*time.Millisecond, n.Name+": "+want, func() string {
		if want != "reload refused" && n.countLog("reload refused") > refusedBefore {
			t.Fatalf("%s refused the reload: %s", n.Name, tail(n.LogPath, 3))
		}
		if n.countLog(want) > before {
			return ""
		}
		return fmt.Sprintf("no new %q line in the log", want)
	})
}

// checkNoHMACRejections fails the test if any node refused a frame for its HMAC.
func checkNoHMACRejections(t *testing.T, ctx context.Context, nodes []*Node, when string) {
	t.Helper()
	for _, n := range nodes {
		got, err := n.Metric(ctx, "durachord_rpc_rejected_total", "reason", "hmac")
		if err != nil {
			t.Fatal(err)
		}
		if got != 0 {
			t.Errorf("%s, %s: durachord_rpc_rejected_total{reason=\"hmac\"} = %v; want 0", when, n.Name, got)
		}
	}
}

// TestHMACKeyRotation: the three-step key rotation of the operations guide,
// with a SIGHUP of every node after each step, fails no client request and
// no RPC frame; a reload with an empty keys file is refused and changes
// nothing; after the rotation the old key no longer opens the ring.
func TestHMACKeyRotation(t *testing.T) {
	c := NewCluster(t, ClusterOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()

	b, err := os.ReadFile(c.HMACKeys)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := strings.TrimSpace(string(b))
	newKey, err := crypto.NewHMACKey()
	if err != nil {
		t.Fatal(err)
	}
	// Each node reads its own copy of the keys file, as on separate hosts.
	keyDir := t.TempDir()
	nodes := make([]*Node, 4)
	files := make([]string, len(nodes))
	for i := range nodes {
		files[i] = filepath.Join(keyDir, fmt.Sprintf("node%d.keys", i))
		writeKeys(t, files[i], oldKey)
		nodes[i] = c.NewNode(NodeOptions{HMACKeys: files[i]})
	}
	nodes[0].Start()
	for _, n := range nodes[1:] {
		n.Start(nodes[0].P2P)
	}
	c.WaitStable(ctx)

	var l load
	lctx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { runRotationLoad(lctx, nodes, &l) })
	stop := func() {
		stopLoad()
		wg.Wait()
	}
	defer stop()
	waitProgress(t, ctx, &l, 50)

	steps := []struct {
		name string
		keys []string
	}{
		{"new key appended", []string{oldKey, newKey}},
		{"new key first", []string{newKey, oldKey}},
		{"old key removed", []string{newKey}},
	}
	for _, s := range steps {
		for i, n := range nodes {
			writeKeys(t, files[i], s.keys...)
			sighupAndWait(t, ctx, n, "configuration reloaded")
		}
		// Every node signs with the step's first key now: let the ring and
		// the clients work with it for a while.
		waitProgress(t, ctx, &l, 50)
		checkNoHMACRejections(t, ctx, nodes, "after step "+s.name)
		t.Logf("step %q done", s.name)
	}
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	c.WaitStable(wctx)
	wcancel()

	// An empty keys file: the reload is refused and the node keeps its keys.
	broken := nodes[2]
	writeKeys(t, files[2])
	sighupAndWait(t, ctx, broken, "reload refused")
	waitProgress(t, ctx, &l, 50)
	if st, err := broken.Status(ctx); err != nil || !st.Ready {
		t.Errorf("%s after a refused reload: ready = %v, %v; want true", broken.Name, st.Ready, err)
	}
	checkNoHMACRejections(t, ctx, nodes, "after a refused reload")
	writeKeys(t, files[2], newKey)
	sighupAndWait(t, ctx, broken, "configuration reloaded")
	waitProgress(t, ctx, &l, 50)

	stop()
	ops, failures, samples := l.stats()
	if failures > 0 {
		t.Errorf("%d of %d client operations failed during the rotation (e.g. %s)", failures, ops+failures, strings.Join(samples, "; "))
	}
	t.Logf("%d client iterations (PUT, GET, GET of an older record) during the rotation", ops)
	checkNoHMACRejections(t, ctx, nodes, "at the end")
	wctx, wcancel = context.WithTimeout(ctx, 20*time.Second)
	c.WaitStable(wctx)
	wcancel()

	// The rotation took effect: a node that only has the old key is refused.
	oldFile := filepath.Join(keyDir, "old.keys")
	writeKeys(t, oldFile, oldKey)
	intruder := c.NewNode(NodeOptions{HMACKeys: oldFile})
	intruder.SetMember(false)
	intruder.Start(broken.P2P)
	poll(t, ctx, 100*time.Millisecond, "frames signed with the removed key refused", func() string {
		got, err := broken.Metric(ctx, "durachord_rpc_rejected_total", "reason", "hmac")
		if err != nil {
			return err.Error()
		}
		if got == 0 {
			return fmt.Sprintf("%s has refused no frame for its HMAC", broken.Name)
		}
		return ""
	})
	if st, err := intruder.Status(ctx); err == nil && st.Ready {
		t.Errorf("a node with only the removed key joined the ring (ready, successors %v)", st.Successors)
	}
	intruder.Kill()
}

// TestBackupDuringWrites: a backup taken while clients write holds every
// record acknowledged before it began, opens with dhtctl dump and verifies.
func TestBackupDuringWrites(t *testing.T) {
	// Replication 3 on 3 nodes: every node holds every record.
	c := NewCluster(t, ClusterOptions{Replication: 3})
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	nodes := c.StartNodes(3)
	// Every owner must know both other nodes before the first write, or an
	// early record reaches the third node only at the next repair round.
	c.WaitSettled(ctx)
	src := nodes[2] // backed up; the writers use the other two

	const writes = "backup" // the data set's name
	var (
		mu    sync.Mutex            // guards acked, next, werrs
		acked = map[int]time.Time{} // record: when its PUT was read back
		next  int                   // the next record to write
		werrs []string
		wg    sync.WaitGroup
	)
	wctx, wstop := context.WithCancel(ctx)
	stop := func() {
		wstop()
		wg.Wait()
	}
	defer stop()
	for _, n := range nodes[:2] {
		wg.Go(func() {
			cl, err := api.Dial(wctx, n.API)
			if err != nil {
				mu.Lock()
				werrs = append(werrs, err.Error())
				mu.Unlock()
				return
			}
			defer cl.Close()
			for wctx.Err() == nil {
				mu.Lock()
				i := next
				next++
				mu.Unlock()
				err := cl.Put(wctx, api.Put{Key: testKey(writes, i), Value: testValue(writes, i)})
				var v []byte
				if err == nil {
					gctx, gcancel := context.WithTimeout(wctx, 10*time.Second)
					v, err = cl.Get(gctx, testKey(writes, i))
					gcancel()
				}
				if wctx.Err() != nil {
					return
				}
				mu.Lock()
				switch {
				case err != nil:
					werrs = append(werrs, fmt.Sprintf("record %d via %s: %v", i, n.Name, err))
				case !bytes.Equal(v, testValue(writes, i)):
					werrs = append(werrs, fmt.Sprintf("record %d via %s read back as %q", i, n.Name, v))
				default:
					acked[i] = time.Now()
				}
				mu.Unlock()
			}
		})
	}
	ackedCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		if len(werrs) > 0 {
			t.Fatalf("writers failed: %s", strings.Join(werrs[:min(5, len(werrs))], "; "))
		}
		return len(acked)
	}
	poll(t, ctx, 20*time.Millisecond, "writes before the backup", func() string {
		if n := ackedCount(); n < 300 {
			return fmt.Sprintf("%d records acknowledged, want 300", n)
		}
		return ""
	})

	mu.Lock()
	before := make([]int, 0, len(acked))
	for i := range acked {
		before = append(before, i)
	}
	mu.Unlock()
	file := filepath.Join(t.TempDir(), "node.db")
	start := time.Now()
	out, errOut, code := dhtctl(t, ctx, "backup", "--admin", src.Admin, "--out", file)
	end := time.Now()
	if code != 0 {
		t.Fatalf("dhtctl backup --admin %s: exit %d, stdout %q, stderr %q; want 0", src.Admin, code, out, errOut)
	}
	after := ackedCount()
	poll(t, ctx, 20*time.Millisecond, "writes after the backup", func() string {
		if n := ackedCount(); n < after+50 {
			return fmt.Sprintf("%d records acknowledged since the backup, want 50", n-after)
		}
		return ""
	})
	stop()
	mu.Lock()
	during := 0
	for _, at := range acked {
		if at.After(start) && at.Before(end) {
			during++
		}
	}
	total := len(acked)
	if len(werrs) > 0 {
		t.Errorf("writers failed: %s", strings.Join(werrs[:min(5, len(werrs))], "; "))
	}
	mu.Unlock()
	t.Logf("backup of %s: %s; %d records acknowledged before it, %d while it ran, %d in all",
		src.Name, strings.TrimSpace(out), len(before), during, total)

	secret := filepath.Join(src.DataDir, store.SecretFile)
	out, errOut, code = dhtctl(t, ctx, "dump", "--data-dir", file, "--json", "--verify", "--secret", secret)
	if code != 0 {
		t.Fatalf("dhtctl dump --verify of the backup: exit %d, stderr %q, output ends %q; want 0",
			code, errOut, out[max(0, len(out)-600):])
	}
	type record struct {
		Key       string `json:"key"`
		State     string `json:"state"`
		ValueSize int    `json:"value_size"`
	}
	type summary struct {
		Records    int   `json:"records"`
		Tampered   int   `json:"tampered"`
		Verified   bool  `json:"verified"`
		Consistent *bool `json:"consistent"`
	}
	records := map[string]record{}
	var sum *summary
	for l := range strings.Lines(out) {
		var typ struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(l), &typ); err != nil {
			t.Fatalf("dump --json line %q: %v", l, err)
		}
		var err error
		switch typ.Type {
		case "record":
			var r record
			err = json.Unmarshal([]byte(l), &r)
			records[r.Key] = r
		case "summary":
			sum = new(summary)
			err = json.Unmarshal([]byte(l), sum)
		default:
			t.Fatalf("dump --json line of type %q: %s", typ.Type, l)
		}
		if err != nil {
			t.Fatalf("dump --json line %q: %v", l, err)
		}
	}
	switch {
	case sum == nil:
		t.Errorf("dump --json printed no summary")
	case sum.Records != len(records) || sum.Tampered != 0 || !sum.Verified || sum.Consistent == nil || !*sum.Consistent:
		t.Errorf("dump summary %+v (consistent %v); want %d records, none tampered, verified and consistent",
			*sum, sum.Consistent, len(records))
	}
	var missing []int
	for _, i := range before {
		k := testKey(writes, i)
		d, ok := records[hex.EncodeToString(k[:])]
		switch {
		case !ok:
			missing = append(missing, i)
		case d.State != "live" || d.ValueSize != len(testValue(writes, i)):
			t.Errorf("record %d in the backup: state %q, value of %d bytes; want live, %d bytes",
				i, d.State, d.ValueSize, len(testValue(writes, i)))
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("%d of %d records acknowledged before the backup began are not in it (e.g. %v); replica push failures logged by the writers' nodes: %d",
			len(missing), len(before), missing[:min(10, len(missing))],
			nodes[0].countLog("replica push failed")+nodes[1].countLog("replica push failed"))
	}
	if len(records) > total+2 { // at most one unacknowledged write in flight per writer
		t.Errorf("backup holds %d records; only %d were acknowledged (+2 in flight)", len(records), total)
	}
	t.Logf("backup holds %d records", len(records))
}
