package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/durachord/durachord/crypto"
)

// fakeAdmin serves /status, /ring and /backup as dhtd's admin server does.
func fakeAdmin(t *testing.T, backup []byte, truncate bool) string {
	t.Helper()
	ids := []string{strings.Repeat("00", 31) + "10", "40" + strings.Repeat("00", 31), "c0" + strings.Repeat("00", 31)}
	ring := make([]nodeStatus, len(ids))
	for i, id := range ids {
		ring[i] = nodeStatus{ID: id, Address: fmt.Sprintf("10.0.0.%d:7400", i+1), Ready: true,
			Successors: []peer{{ID: ids[(i+1)%3], Address: fmt.Sprintf("10.0.0.%d:7400", (i+1)%3+1)}},
			Records:    recordsCnt{Primary: int64(10 * (i + 1)), Replica: int64(i)}}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(ring[0]) })
	mux.HandleFunc("GET /ring", func(w http.ResponseWriter, _ *http.Request) { _ = json.NewEncoder(w).Encode(ring) })
	mux.HandleFunc("GET /backup", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(backup)))
		if truncate {
			_, _ = w.Write(backup[:len(backup)/2])
			return // the connection ends short of Content-Length
		}
		_, _ = w.Write(backup)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func runCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(append([]string{"dhtctl"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestStatusAndRing(t *testing.T) {
	admin := fakeAdmin(t, nil, false)
	code, out, errOut := runCmd("status", "--admin", admin)
	if code != 0 || !strings.Contains(out, "10.0.0.1:7400") || !strings.Contains(out, "10 primary") {
		t.Fatalf("status: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runCmd("status", "--admin", admin, "--json")
	var st nodeStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Address != "10.0.0.1:7400" {
		t.Fatalf("status --json: exit %d, %q", code, out)
	}
	code, out, _ = runCmd("ring", "--admin", admin)
	// Shares: (c0, 00..10] wraps round zero: 25%; (00..10, 40] 25%; (40, c0] 50%.
	if code != 0 || strings.Count(out, "25.0%") != 2 || !strings.Contains(out, "50.0%") || !strings.Contains(out, "3 nodes") || !strings.Contains(out, "60") {
		t.Fatalf("ring: exit %d, stdout %q", code, out)
	}
	code, out, _ = runCmd("ring", "--admin", admin, "--json")
	var ring []nodeStatus
	if code != 0 || json.Unmarshal([]byte(out), &ring) != nil || len(ring) != 3 {
		t.Fatalf("ring --json: exit %d, %q", code, out)
	}
}

func TestBackupCommand(t *testing.T) {
	data := bytes.Repeat([]byte("bbolt page "), 1000)
	dir := t.TempDir()
	out := filepath.Join(dir, "node.db")
	code, stdout, errOut := runCmd("backup", "--admin", fakeAdmin(t, data, false), "--out", out, "--json")
	if code != 0 {
		t.Fatalf("backup: exit %d, stderr %q", code, errOut)
	}
	var rep struct {
		File  string `json:"file"`
		Bytes int    `json:"bytes"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.File != out || rep.Bytes != len(data) {
		t.Fatalf("backup --json = %q (%v); want file %s and %d bytes", stdout, err, out, len(data))
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("backup file holds %d bytes (%v); want the %d served", len(got), err, len(data))
	}
	fi, _ := os.Stat(out)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode %v; want 0600", fi.Mode().Perm())
	}
	// An existing file is never overwritten.
	if code, _, errOut := runCmd("backup", "--admin", fakeAdmin(t, data, false), "--out", out); code != 2 || strings.Count(errOut, "\n") != 1 {
		t.Errorf("backup over an existing file: exit %d, stderr %q; want 2 and one line", code, errOut)
	}
	// A stream cut short leaves no file behind.
	short := filepath.Join(dir, "short.db")
	if code, _, errOut := runCmd("backup", "--admin", fakeAdmin(t, data, true), "--out", short); code != 2 || strings.Count(errOut, "\n") != 1 {
		t.Errorf("truncated backup: exit %d, stderr %q; want 2 and one line", code, errOut)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d files after a failed backup; want only the first backup", len(entries))
	}
}

func TestAdminUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	for _, args := range [][]string{{"status"}, {"ring"}, {"backup", "--out", filepath.Join(t.TempDir(), "x")}} {
		code, _, errOut := runCmd(append(args, "--admin", addr)...)
		if code != 2 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, addr) {
			t.Errorf("dhtctl %v against nothing: exit %d, stderr %q; want 2 and one line naming %s", args, code, errOut, addr)
		}
	}
}

// Every admin command sends the token of --admin-token-file (or
// DURACHORD_ADMIN_TOKEN_FILE), and says so in one line when the node
// refuses the request without it.
func TestAdminTokenFile(t *testing.T) {
	const token = "0123456789abcdef-token"
	var (
		mu  sync.Mutex // guards got
		got []string   // Authorization header of each request
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization"))
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error": "admin token required"}`))
			return
		}
		switch r.URL.Path {
		case "/status":
			_, _ = w.Write([]byte(`{"id": "ab", "ready": true}`))
		case "/ring":
			_, _ = w.Write([]byte(`[{"id": "ab", "ready": true}]`))
		case "/backup":
			_, _ = w.Write([]byte("db"))
		}
	}))
	t.Cleanup(srv.Close)
	admin := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	file := filepath.Join(dir, "admin.token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, args := range [][]string{
		{"status"}, {"ring"}, {"backup", "--out", filepath.Join(dir, "a.db")},
	} {
		code, _, errOut := runCmd(append(args, "--admin", admin)...)
		if code != exitError || !strings.Contains(errOut, "401 Unauthorized") || !strings.Contains(errOut, "--admin-token-file") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%s without a token: exit %d, stderr %q; want 2 and one line naming 401 and --admin-token-file", args[0], code, errOut)
		}
		code, _, errOut = runCmd(append(args, "--admin", admin, "--admin-token-file", file)...)
		if code != 0 {
			t.Errorf("%s --admin-token-file: exit %d, stderr %q; want 0", args[0], code, errOut)
		}
		if i == 0 {
			t.Setenv("DURACHORD_ADMIN_TOKEN_FILE", file)
			if code, _, errOut := runCmd(append(args, "--admin", admin)...); code != 0 {
				t.Errorf("%s with DURACHORD_ADMIN_TOKEN_FILE: exit %d, stderr %q; want 0", args[0], code, errOut)
			}
			t.Setenv("DURACHORD_ADMIN_TOKEN_FILE", "")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	sent := 0
	for _, h := range got {
		if h == "Bearer "+token {
			sent++
		}
	}
	if sent != 4 {
		t.Errorf("requests carried the token %d times (%q); want 4", sent, got)
	}
	// A token file others may read is refused before anything is sent.
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd("status", "--admin", admin, "--admin-token-file", file); code != exitError || !strings.Contains(errOut, "0600") {
		t.Errorf("status with a 0644 token file: exit %d, stderr %q; want 2 naming mode 0600", code, errOut)
	}
}

func TestTokenNew(t *testing.T) {
	out := filepath.Join(t.TempDir(), "admin.token")
	if code, _, errOut := runCmd("token", "new", "--out", out); code != 0 {
		t.Fatalf("token new --out: exit %d, %q", code, errOut)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v, mode %v; want 0600", err, fi.Mode())
	}
	if _, err := crypto.LoadToken(out); err != nil {
		t.Errorf("LoadToken(written file) = %v", err)
	}
	if code, _, _ := runCmd("token", "new", "--out", out); code != exitError {
		t.Errorf("token new --out over an existing file: exit %d; want 2", code)
	}
	code, printed, _ := runCmd("token", "new")
	if _, err := crypto.ParseToken([]byte(printed)); code != 0 || err != nil {
		t.Errorf("token new: exit %d, %q: %v", code, printed, err)
	}
}
