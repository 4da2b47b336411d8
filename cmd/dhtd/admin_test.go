package main

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
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/config"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/store"
)

// withAdmin turns the admin server on, on a free 127.0.0.1 port.
func withAdmin(cfg *config.Config) { cfg.AdminAddress = "127.0.0.1:0" }

// writeToken writes a new token file (mode 0600) and returns its path and
// the token.
func writeToken(t *testing.T) (path, token string) {
	t.Helper()
	token, err := crypto.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "admin.token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, token
}

// adminStatus GETs path on the daemon's admin server with the bearer token
// (none if ""), and returns the status code.
func (d *testDaemon) adminStatus(t *testing.T, path, token string) int {
	t.Helper()
	var mod func(*http.Request)
	if token != "" {
		mod = bearer(token)
	}
	resp, _ := d.adminGet(t, path, mod)
	return resp.StatusCode
}

// With a token file, every endpoint but /healthz, /readyz and /metrics
// answers 401 without the token or with another one, and as usual with it;
// pprof is there only when configured.
func TestAdminToken(t *testing.T) {
	tokenFile, token := writeToken(t)
	other, err := crypto.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	for _, pprofOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("pprof=%v", pprofOn), func(t *testing.T) {
			d := startDaemon(t, withAdmin, func(c *config.Config) {
				c.Admin.TokenFile = tokenFile
				c.Admin.PProf = pprofOn
			})
			pprofCode := http.StatusNotFound
			if pprofOn {
				pprofCode = http.StatusOK
			}
			for _, tt := range []struct {
				path      string
				open      bool
				withToken int
			}{
				{"/healthz", true, http.StatusOK},
				{"/metrics", true, http.StatusOK},
				{"/readyz", true, http.StatusServiceUnavailable}, // not joined
				{"/status", false, http.StatusOK},
				{"/ring", false, http.StatusOK},
				{"/backup", false, http.StatusOK},
				{"/ui", false, http.StatusOK},
				{"/debug/pprof/", false, pprofCode},
				{"/debug/pprof/cmdline", false, pprofCode},
			} {
				if got := d.adminStatus(t, tt.path, token); got != tt.withToken {
					t.Errorf("GET %s with the token = %d; want %d", tt.path, got, tt.withToken)
				}
				want := http.StatusUnauthorized
				if tt.open {
					want = tt.withToken
				}
				for _, tok := range []string{"", other, token[:len(token)-1]} {
					if got := d.adminStatus(t, tt.path, tok); got != want {
						t.Errorf("GET %s with token %q = %d; want %d", tt.path, tok, got, want)
					}
				}
			}
		})
	}
}

// Without a token file on loopback, nothing asks for one; pprof stays off
// unless configured.
func TestAdminLoopbackWithoutToken(t *testing.T) {
	d := startDaemon(t, withAdmin)
	for path, want := range map[string]int{"/status": 200, "/backup": 200, "/healthz": 200, "/debug/pprof/": 404} {
		if got := d.adminStatus(t, path, ""); got != want {
			t.Errorf("GET %s = %d; want %d", path, got, want)
		}
	}
}

// A token file readable by others, or none off loopback, stops the node
// from starting.
func TestAdminTokenRefused(t *testing.T) {
	loose, _ := writeToken(t)
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name    string
		mod     func(*config.Config)
		wantErr error
		want    string
	}{
		{"mode 0644", func(c *config.Config) { c.AdminAddress = "127.0.0.1:0"; c.Admin.TokenFile = loose }, crypto.ErrInsecureFile, "admin.token_file"},
		{"off loopback without token", func(c *config.Config) { c.AdminAddress = "0.0.0.0:0" }, nil, "admin.token_file: required"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.P2PAddress = "127.0.0.1:0"
			cfg.APIAddress = ""
			cfg.DataDir = filepath.Join(t.TempDir(), "data")
			td := startDaemon(t) // for its TLS folder and keys
			cfg.TLSDir, cfg.HMACKeys = td.cfg.TLSDir, td.cfg.HMACKeys
			tt.mod(&cfg)
			d := &daemon{cfg: cfg, log: newLogger(cfg, io.Discard)}
			err := d.open()
			d.close()
			if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Fatalf("open = %v; want an error naming %q (wrapping %v)", err, tt.want, tt.wantErr)
			}
		})
	}
}

// smallWindowDial connects with a 4 KiB receive buffer, so that a reader
// that stops reading soon stops the sender.
func smallWindowDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	dialer := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	conn, err := dialer.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// fill writes about mb megabytes of records into the daemon's store.
func fill(t *testing.T, d *testDaemon, mb int) {
	t.Helper()
	recs := make([]store.Record, 0, mb*1e6/60_000)
	for i := range cap(recs) {
		recs = append(recs, store.Record{
			Key:         [32]byte{byte(i), byte(i >> 8), 1},
			Value:       bytes.Repeat([]byte{byte(i)}, 60_000),
			Expiry:      time.Now().Add(time.Hour),
			Version:     store.Version{Clock: 1, Node: 1},
			Primary:     true,
			Replication: 1,
		})
	}
	if _, err := d.db.PutAll(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
}

// A /backup reader that stops reading is disconnected once it has taken
// nothing for admin.write_timeout; meanwhile a second backup beyond
// admin.max_backups is refused, and the slot is free again afterwards.
func TestBackupStalledReaderDisconnected(t *testing.T) {
	d := startDaemon(t, withAdmin, func(c *config.Config) {
		c.Admin.WriteTimeout = config.D(300 * time.Millisecond)
		c.Admin.MaxBackups = 1
	})
	fill(t, d, 12) // more than the socket buffers hold
	conn := smallWindowDial(t, d.adminLn.Addr().String())
	if _, err := io.WriteString(conn, "GET /backup HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReaderSize(conn, 1024)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /backup = %v, %v; want 200", resp, err)
	}
	// The reader stops here. While its stream is open, it holds the only slot.
	if got := d.adminStatus(t, "/backup", ""); got != http.StatusServiceUnavailable {
		t.Errorf("second GET /backup while one streams = %d; want 503 (admin.max_backups = 1)", got)
	}
	// The bound is a failure line, not a measurement: without a write
	// deadline the stream would wait for the reader for ever.
	deadline := time.Now().Add(20 * time.Second)
	for len(d.backups) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled backup still holds its slot 20 s later; want it cut after admin.write_timeout (300ms)")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// What the node sent before it gave up, then the end of the stream.
	n, err := io.Copy(io.Discard, resp.Body)
	if err == nil || n >= resp.ContentLength {
		t.Errorf("stalled reader got %d of %d bytes, err %v; want a stream cut short", n, resp.ContentLength, err)
	}
	if !strings.Contains(d.out.String(), "backup stream failed") {
		t.Errorf("log has no \"backup stream failed\" line:\n%s", d.out.String())
	}
	if got := d.adminStatus(t, "/backup", ""); got != http.StatusOK {
		t.Errorf("GET /backup after the stalled one ended = %d; want 200", got)
	}
	if left, _ := filepath.Glob(filepath.Join(d.cfg.DataDir, ".backup-*")); len(left) != 0 {
		t.Errorf("files left in the data dir: %v", left)
	}
}

// A reader slower than the write timeout in total, but never stalled for
// that long, gets the whole backup: the deadline follows its progress.
func TestBackupSlowReaderCompletes(t *testing.T) {
	d := startDaemon(t, withAdmin, func(c *config.Config) {
		c.Admin.WriteTimeout = config.D(500 * time.Millisecond)
	})
	fill(t, d, 12)
	conn := smallWindowDial(t, d.adminLn.Addr().String())
	if _, err := io.WriteString(conn, "GET /backup HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /backup = %v, %v; want 200", resp, err)
	}
	// 1 MiB every 100 ms: about 1.2 s in all, more than twice the timeout.
	buf := make([]byte, 1<<20)
	var n int64
	for {
		m, err := io.ReadFull(resp.Body, buf)
		n += int64(m)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n != resp.ContentLength {
		t.Fatalf("slow reader got %d of %d bytes; want all of them", n, resp.ContentLength)
	}
}

// /ring runs one walk at a time, whatever the number of requests, and
// serves its answer for the cache's lifetime.
func TestRingCache(t *testing.T) {
	var walks atomic.Int32
	release := make(chan struct{})
	c := &ringCache{ttl: time.Hour, walk: func(ctx context.Context) ([]chord.Status, error) {
		walks.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return []chord.Status{{Address: fmt.Sprintf("walk %d", walks.Load())}}, nil
	}}
	var wg sync.WaitGroup
	results := make(chan string, 20)
	for range 20 {
		wg.Go(func() {
			ring, err := c.get(t.Context())
			if err != nil || len(ring) != 1 {
				results <- fmt.Sprintf("error %v", err)
				return
			}
			results <- ring[0].Address
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for walks.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(results)
	for r := range results {
		if r != "walk 1" {
			t.Errorf("a request got %q; want the answer of the one walk, \"walk 1\"", r)
		}
	}
	if got := walks.Load(); got != 1 {
		t.Errorf("20 concurrent requests ran %d walks; want 1", got)
	}
	if _, err := c.get(t.Context()); err != nil || walks.Load() != 1 {
		t.Errorf("a request within the cache lifetime: err %v, %d walks; want the cached answer", err, walks.Load())
	}

	// A walk cut short by its caller is not cached.
	c2 := &ringCache{ttl: time.Hour, walk: func(ctx context.Context) ([]chord.Status, error) {
		walks.Add(1)
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c2.get(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("get with a cancelled ctx = %v; want %v", err, context.Canceled)
	}
	if !c2.at.IsZero() {
		t.Errorf("a cancelled walk was cached")
	}
}
