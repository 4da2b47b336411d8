package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/durachord/durachord/store"
)

// makeDumpDB writes a database with a live primary, a live replica and an
// expired record, closes it, and returns its directory and the records.
func makeDumpDB(t *testing.T) (string, []store.Record) {
	t.Helper()
	dir := t.TempDir()
	cfg := store.DefaultConfig()
	past := time.Now().Add(-2 * time.Hour)
	cfg.Now = func() time.Time { return past } // so an expired record can be written
	s, err := store.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	recs := []store.Record{
		{Key: [32]byte{1}, Value: []byte("hello primary"), Expiry: time.Now().Add(time.Hour), Version: store.Version{Clock: 3, Node: 1}, Primary: true, Replication: 3},
		{Key: [32]byte{2}, Value: []byte{0, 1, 2, 0xff}, Expiry: time.Now().Add(time.Hour), Version: store.Version{Clock: 1, Node: 2}, Replication: 2},
		{Key: [32]byte{3}, Value: []byte("stale and expired"), Expiry: time.Now().Add(-time.Hour), Version: store.Version{Clock: 1, Node: 1}, Primary: true, Replication: 1},
	}
	for _, r := range recs {
		if stored, err := s.Put(context.Background(), r); err != nil || !stored {
			t.Fatalf("Put = %v, %v", stored, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, recs
}

func runDumpCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"dhtctl", "dump", "--lock-timeout", "200ms"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestDumpText(t *testing.T) {
	dir, recs := makeDumpDB(t)
	code, out, errOut := runDumpCmd(t, "--data-dir", dir, "--verify")
	if code != exitOK || errOut != "" {
		t.Fatalf("dump --verify = %d, stderr %q; want 0", code, errOut)
	}
	for _, want := range []string{
		hex.EncodeToString(recs[0].Key[:]),
		hex.EncodeToString(recs[0].Key[:]),
		`"hello primary"`, "0x000102ff", "replica", "3.1", "expired",
		"3 records (2 primary, 1 replica, 1 expired), 0 tampered, consistency ok",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("dump output lacks %q:\n%s", want, out)
		}
	}
	pos := store.PositionOf(recs[2].Key)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, hex.EncodeToString(pos[:])) && !strings.Contains(line, "expired") {
			t.Errorf("expired record not flagged: %q", line)
		}
	}
}

func TestDumpJSON(t *testing.T) {
	dir, _ := makeDumpDB(t)
	code, out, errOut := runDumpCmd(t, "--data-dir", dir, "--json")
	if code != exitOK {
		t.Fatalf("dump --json = %d, stderr %q", code, errOut)
	}
	var recs []dumpRecord
	var sum dumpSummary
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var probe struct{ Type string }
		if err := json.Unmarshal(sc.Bytes(), &probe); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		switch probe.Type {
		case "record":
			var r dumpRecord
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		case "summary":
			if err := json.Unmarshal(sc.Bytes(), &sum); err != nil {
				t.Fatal(err)
			}
		default:
			t.Errorf("line of unknown type: %q", sc.Text())
		}
	}
	if len(recs) != 3 || sum.Records != 3 || sum.Expired != 1 || sum.Primary != 2 || sum.Tampered != 0 || sum.Consistent != nil {
		t.Errorf("dump --json = %d records, summary %+v", len(recs), sum)
	}
	expired := 0
	for _, r := range recs {
		if r.Expired {
			expired++
			if r.State != "expired" {
				t.Errorf("expired record state = %q", r.State)
			}
		}
	}
	if expired != 1 {
		t.Errorf("expired records in JSON = %d; want 1", expired)
	}
}

func TestDumpTampered(t *testing.T) {
	dir, recs := makeDumpDB(t)
	path := filepath.Join(dir, store.DBFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	needle := recs[0].Value
	if bytes.Count(b, needle) == 0 {
		t.Fatalf("value not found in the file")
	}
	b = bytes.ReplaceAll(b, needle, []byte("hello PRIMARY"))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runDumpCmd(t, "--data-dir", dir, "--verify")
	if code != exitError || !strings.Contains(errOut, "1 tampered record") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("dump --verify of a tampered db = %d, stderr %q; want 2 and one line naming 1 tampered record", code, errOut)
	}
	if !strings.Contains(out, "TAMPERED") || !strings.Contains(out, "1 tampered") {
		t.Errorf("dump --verify output does not show the tampered record:\n%s", out)
	}
}

func TestDumpErrors(t *testing.T) {
	locked := t.TempDir()
	s, err := store.Open(locked, store.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })

	empty := t.TempDir()
	garbage := t.TempDir()
	if err := os.WriteFile(filepath.Join(garbage, store.DBFile), bytes.Repeat([]byte("not bbolt"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	noSecret, _ := makeDumpDB(t)
	if err := os.Remove(filepath.Join(noSecret, store.SecretFile)); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		want string
	}{
		{"missing folder", []string{"--data-dir", filepath.Join(empty, "nope")}, "does not exist"},
		{"no database", []string{"--data-dir", empty}, "no database"},
		{"locked by a running node", []string{"--data-dir", locked}, "in use by a running node"},
		{"unreadable database", []string{"--data-dir", garbage}, "cannot read"},
		{"verify without secret", []string{"--data-dir", noSecret, "--verify"}, "node secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runDumpCmd(t, tt.args...)
			if code != exitError || !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("dump %v = %d, stderr %q; want 2 and one line with %q", tt.args, code, errOut, tt.want)
			}
		})
	}
	// Without --verify and without the secret, the records still print.
	if code, out, _ := runDumpCmd(t, "--data-dir", noSecret); code != exitOK || !strings.Contains(out, "HMACs not checked") {
		t.Errorf("dump without secret = %d:\n%s", code, out)
	}
}

func TestDumpBackupFile(t *testing.T) {
	dir, _ := makeDumpDB(t)
	// A backup as dhtctl backup writes it: the database file alone, in a
	// folder without the node secret.
	backupDir := t.TempDir()
	file := filepath.Join(backupDir, "node1.db")
	b, err := os.ReadFile(filepath.Join(dir, store.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runDumpCmd(t, "--data-dir", file)
	if code != 0 || !strings.Contains(out, "hello primary") {
		t.Fatalf("dump of a backup file: exit %d, stdout %q, stderr %q; want exit 0 and the records", code, out, errOut)
	}
	code, _, errOut = runDumpCmd(t, "--data-dir", file, "--verify")
	if code != 2 || !strings.Contains(errOut, "--secret") || strings.Count(errOut, "\n") != 1 {
		t.Fatalf("dump --verify without the secret: exit %d, stderr %q; want exit 2 and one line naming --secret", code, errOut)
	}
	code, out, errOut = runDumpCmd(t, "--data-dir", file, "--verify", "--secret", filepath.Join(dir, store.SecretFile))
	if code != 0 || !strings.Contains(out, "hello primary") {
		t.Fatalf("dump --verify --secret of a backup: exit %d, stdout %q, stderr %q; want exit 0", code, out, errOut)
	}
}
