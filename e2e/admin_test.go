package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/crypto"
)

// writeAdminToken writes a new admin token file (mode 0600) and returns the
// token.
func writeAdminToken(t *testing.T, path string) string {
	t.Helper()
	tok, err := crypto.NewToken()
	if err != nil {
		t.Fatalf("NewToken() = %v", err)
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return tok
}

// stalledBackup asks addr for /backup over a connection with a 4 KiB receive
// buffer, reads the response header and then nothing more; the connection is
// closed when the test ends. It returns the announced length.
func stalledBackup(t *testing.T, ctx context.Context, addr string) (net.Conn, int64) {
	t.Helper()
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := io.WriteString(conn, "GET /backup HTTP/1.1\r\nHost: node\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil {
		t.Fatalf("GET /backup: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /backup = %s; want 200", resp.Status)
	}
	return conn, resp.ContentLength
}

// TestBackupStalledReader: a /backup reader that stops reading while 20 MB of
// PUTs go in costs the node nothing but that connection: every PUT lands,
// each GET that reads one back is answered within 1 s, and /readyz stays
// ready. (Before, the backup's read transaction blocked the first commit that
// had to grow the database's memory map, and every write and read after it.)
func TestBackupStalledReader(t *testing.T) {
	c := NewCluster(t, ClusterOptions{})
	// A write timeout longer than the test: the stalled reader stays
	// connected throughout, so what keeps the node going is not the timeout.
	n := c.NewNode(NodeOptions{ExtraConfig: "[admin]\nwrite_timeout = \"10m\"\n"})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	n.Start()
	c.WaitStable(ctx)

	const records, size = 400, 50_000 // 20 MB
	value := func(set string, i int) []byte {
		v := bytes.Repeat([]byte{'a' + byte(i%26)}, size)
		copy(v, fmt.Sprintf("%s-%d.", set, i))
		return v
	}
	cl := n.Dial(ctx)
	for i := range records {
		if err := cl.Put(ctx, api.Put{Key: testKey("fill", i), Value: value("fill", i)}); err != nil {
			t.Fatalf("fill put %d: %v", i, err)
		}
	}
	if v, err := cl.Get(ctx, testKey("fill", records-1)); err != nil || !bytes.Equal(v, value("fill", records-1)) {
		t.Fatalf("fill: last record read back as %d bytes, %v", len(v), err)
	}

	_, length := stalledBackup(t, ctx, n.Admin)
	if length < records*size {
		t.Fatalf("backup of %d bytes announced; want at least the %d written", length, records*size)
	}
	t.Logf("backup of %d bytes requested; its reader stops after the header", length)

	var slowest time.Duration
	for i := range records {
		key, want := testKey("during", i), value("during", i)
		if err := cl.Put(ctx, api.Put{Key: key, Value: want}); err != nil {
			t.Fatalf("put %d while the backup stalls: %v", i, err)
		}
		// The GET on the same connection sees the PUT (read-your-writes),
		// so it answers only once the PUT has been committed.
		gctx, gcancel := context.WithTimeout(ctx, time.Second)
		began := time.Now()
		v, err := cl.Get(gctx, key)
		took := time.Since(began)
		gcancel()
		if err != nil || !bytes.Equal(v, want) {
			t.Fatalf("get %d of %d while the backup stalls = %d bytes, %v after %v; want the value within 1 s", i, records, len(v), err, took.Round(time.Millisecond))
		}
		slowest = max(slowest, took)
		if i%100 == 99 {
			if _, err := n.adminGet(ctx, "/readyz"); err != nil {
				t.Fatalf("/readyz after %d puts while the backup stalls: %v", i+1, err)
			}
		}
	}
	t.Logf("%d puts of %d bytes while the backup stalled; slowest read-back %v", records, size, slowest.Round(time.Millisecond))
	if n.LogContains("backup stream failed") {
		t.Errorf("the stalled backup ended before the test did; the test proves nothing then")
	}
	if !n.Running() {
		t.Fatal("dhtd exited")
	}
}

// httpGetEnvVar makes the test binary, run with it set to a URL, GET that
// URL (with the bearer token in httpTokenEnvVar, if set), print the status
// code and exit (see TestMain): the way a test reaches a server in a network
// namespace it cannot dial from its own.
const (
	httpGetEnvVar   = "DURACHORD_E2E_HTTP_GET"
	httpTokenEnvVar = "DURACHORD_E2E_HTTP_TOKEN"
)

// httpGetMain is the test binary's work when httpGetEnvVar is set.
func httpGetMain(url string) int {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if tok := os.Getenv(httpTokenEnvVar); tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	fmt.Println(resp.StatusCode)
	return 0
}

// netnsGet GETs path from addr inside the client namespace, with the bearer
// token (none if ""), and returns the status code.
func (c *nsCluster) netnsGet(ctx context.Context, addr, path, token string) int {
	c.t.Helper()
	self, err := os.Executable()
	if err != nil {
		c.t.Fatal(err)
	}
	env := []string{httpGetEnvVar + "=http://" + addr + path, httpTokenEnvVar + "=" + token}
	out, errOut, code := c.inClient(ctx, env, self)
	status, err := strconv.Atoi(strings.TrimSpace(out))
	if code != 0 || err != nil {
		c.t.Fatalf("GET http://%s%s from the client host: exit %d, %q, %s", addr, path, code, out, errOut)
	}
	return status
}

// TestNetnsAdminToken: a node whose admin address is not loopback (its
// host's address in a network namespace of its own) refuses to start without
// admin.token_file; with one, every endpoint but /healthz, /readyz and
// /metrics answers 401 without the token and 200 with it, to clients on
// another host; dhtctl sends it with --admin-token-file.
func TestNetnsAdminToken(t *testing.T) {
	c := newNSCluster(t, 1)
	n := c.nodes[0]
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// The cluster's configs name a token file: without it the node stops.
	cfgText, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	noToken := strings.Replace(string(cfgText), fmt.Sprintf("[admin]\ntoken_file = %q\n", c.tokenFile), "", 1)
	if noToken == string(cfgText) {
		t.Fatalf("the node's config sets no admin.token_file:\n%s", cfgText)
	}
	if err := os.WriteFile(n.ConfigPath, []byte(noToken), 0o600); err != nil {
		t.Fatal(err)
	}
	n.Start()
	select {
	case <-n.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("dhtd with admin address %s and no token file still runs 20 s after its start", n.Admin)
	}
	if log := tail(n.LogPath, 5); !strings.Contains(log, "admin.token_file: required when admin_address is not loopback") {
		t.Fatalf("dhtd with admin address %s and no token file exited with log\n%s\nwant it to name admin.token_file", n.Admin, log)
	}

	if err := os.WriteFile(n.ConfigPath, cfgText, 0o600); err != nil {
		t.Fatal(err)
	}
	tokBytes, err := os.ReadFile(c.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokBytes))
	n.Start()
	c.waitRing(ctx, c.nodes) // dhtctl ring in the client namespace, with the token

	for _, tt := range []struct {
		path string
		open bool
	}{
		{"/healthz", true}, {"/readyz", true}, {"/metrics", true},
		{"/status", false}, {"/ring", false}, {"/backup", false},
	} {
		without := c.netnsGet(ctx, n.Admin, tt.path, "")
		wrong := c.netnsGet(ctx, n.Admin, tt.path, token[:len(token)-1]+"x")
		with := c.netnsGet(ctx, n.Admin, tt.path, token)
		want := http.StatusUnauthorized
		if tt.open {
			want = http.StatusOK
		}
		if without != want || wrong != want || with != http.StatusOK {
			t.Errorf("GET http://%s%s from another host: %d without the token, %d with a wrong one, %d with it; want %d, %d, 200",
				n.Admin, tt.path, without, wrong, with, want, want)
		}
	}
	// pprof is off unless configured: not there even with the token.
	if got := c.netnsGet(ctx, n.Admin, "/debug/pprof/", token); got != http.StatusNotFound {
		t.Errorf("GET /debug/pprof/ with the token = %d; want 404 (admin.pprof is off)", got)
	}

	// dhtctl: refused in one line without the token, served with it.
	_, errOut, code := c.inClient(ctx, []string{"DURACHORD_ADMIN_TOKEN_FILE="}, dhtctlPath(), "status", "--admin", n.Admin)
	if code != 2 || !strings.Contains(errOut, "401 Unauthorized") || !strings.Contains(errOut, "--admin-token-file") {
		t.Errorf("dhtctl status without a token: exit %d, stderr %q; want 2, naming 401 and --admin-token-file", code, errOut)
	}
	out := filepath.Join(t.TempDir(), "node.db")
	_, errOut, code = c.inClient(ctx, []string{"DURACHORD_ADMIN_TOKEN_FILE="}, dhtctlPath(), "backup", "--admin", n.Admin, "--admin-token-file", c.tokenFile, "--out", out)
	if code != 0 {
		t.Fatalf("dhtctl backup --admin-token-file: exit %d, stderr %q; want 0", code, errOut)
	}
	if _, errOut, code := dhtctl(t, ctx, "dump", "--data-dir", out); code != 0 {
		t.Errorf("dhtctl dump of the backup: exit %d, %q", code, errOut)
	}
}
