package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/durachord/durachord/store"
)

// sweptRecord is record i of the compaction test: 16 bytes of value, live
// for 10 hours after now when i%10 == 0, else for 1 hour.
func sweptRecord(i int, now time.Time) store.Record {
	var k [32]byte
	binary.BigEndian.PutUint64(k[:], uint64(i)+1)
	copy(k[8:], "compact")
	r := store.Record{
		Key:         k,
		Value:       []byte("value-" + strings.Repeat("x", 4) + string(rune('a'+i%26)) + "-end"),
		Expiry:      now.Add(time.Hour),
		Version:     store.Version{Clock: uint64(i) + 1, Node: 1},
		Primary:     i%2 == 0,
		Replication: 3,
	}
	if i%10 == 0 {
		r.Expiry = now.Add(10 * time.Hour)
	}
	return r
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestCompactShrinks: a database of 100,000 records of which 90% expired and
// were swept compacts to at most half its size, and every one of the 10,000
// live records reads back from the compacted file with a valid HMAC.
func TestCompactShrinks(t *testing.T) {
	const total = 100_000
	dir := t.TempDir()
	now := time.Now()
	cfg := store.DefaultConfig()
	cfg.MaxBatch = 10_000 // ten commits for the whole load
	s, err := store.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]store.Record, total)
	for i := range recs {
		recs[i] = sweptRecord(i, now)
	}
	if n, err := s.PutAll(context.Background(), recs); err != nil || n != total {
		t.Fatalf("PutAll = %d, %v; want %d", n, err, total)
	}
	// Two hours later, as the sweeper sees it: 90% have expired.
	if n, err := s.Sweep(context.Background(), now.Add(2*time.Hour), 10_000); err != nil || n != total*9/10 {
		t.Fatalf("Sweep = %d, %v; want %d", n, err, total*9/10)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, store.DBFile)
	before := fileSize(t, path)

	code, out, errOut := runCmd("compact", "--data-dir", dir, "--json")
	if code != exitOK {
		t.Fatalf("compact = %d, stderr %q; want 0", code, errOut)
	}
	var res struct {
		Before  int64 `json:"bytes_before"`
		After   int64 `json:"bytes_after"`
		Records int64 `json:"records"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("compact --json printed %q: %v", out, err)
	}
	after := fileSize(t, path)
	t.Logf("records.db: %d bytes before, %d after compaction (%d live records)", before, after, res.Records)
	if res.Before != before || res.After != after || res.Records != total/10 {
		t.Errorf("compact reported %+v; want before %d, after %d, %d records", res, before, after, total/10)
	}
	if after*2 > before {
		t.Errorf("compacted to %d bytes from %d; want at most half", after, before)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".compact-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	ro := store.DefaultConfig()
	ro.ReadOnly = true
	c, err := store.Open(dir, ro)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Check(); err != nil {
		t.Fatalf("Check of the compacted database: %v", err)
	}
	if st, err := c.Stats(); err != nil || st.PrimaryRecords+st.ReplicaRecords != total/10 {
		t.Errorf("Stats of the compacted database = %+v, %v; want %d records", st, err, total/10)
	}
	for i, want := range recs {
		if i%10 != 0 {
			continue
		}
		got, err := c.Get(want.Key)
		if err != nil || !bytes.Equal(got.Value, want.Value) || got.Version != want.Version {
			t.Fatalf("Get(record %d) = %q %v, %v; want %q %v", i, got.Value, got.Version, err, want.Value, want.Version)
		}
	}
	if n := c.TamperedCount(); n != 0 {
		t.Errorf("%d records failed their HMAC", n)
	}
}

// TestCompactText: without --json, compact prints the sizes before and after,
// human-readable and in bytes, and the record count.
func TestCompactText(t *testing.T) {
	dir, _ := makeDumpDB(t)
	before := fileSize(t, filepath.Join(dir, store.DBFile))
	code, out, errOut := runCmd("compact", "--data-dir", dir)
	after := fileSize(t, filepath.Join(dir, store.DBFile))
	want := "compacted " + dir + ": " + humanBytes(before) + " (" + strconv.FormatInt(before, 10) + " bytes) -> " +
		humanBytes(after) + " (" + strconv.FormatInt(after, 10) + " bytes), 3 records verified\n"
	if code != exitOK || out != want {
		t.Fatalf("compact = %d, stdout %q, stderr %q; want 0 and %q", code, out, errOut, want)
	}
}

// TestCompactInUse: compact of a database a running node holds (a store open
// in this process) fails with one line saying so, within the lock timeout.
func TestCompactInUse(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir, store.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan struct{})
	var code int
	var errOut string
	go func() {
		defer close(done)
		code, _, errOut = runCmd("compact", "--data-dir", dir)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("compact of a database in use has not returned after 10 s")
	}
	if code != exitError || !strings.Contains(errOut, "in use by a running node (stop it first)") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("compact of a database in use = %d, stderr %q; want 2 and one line saying it is in use", code, errOut)
	}
}

// TestCompactRefusesTampered: a database with a record altered on disk is not
// swapped: compact fails naming the integrity check, records.db keeps every
// byte, and the temporary copy is gone.
func TestCompactRefusesTampered(t *testing.T) {
	dir, recs := makeDumpDB(t)
	path := filepath.Join(dir, store.DBFile)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, recs[0].Value, []byte("hello PRIMARY"))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd("compact", "--data-dir", dir)
	if code != exitError || !strings.Contains(errOut, "1 of 3 records fail their integrity check") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("compact of a tampered database = %d, stderr %q; want 2 and one line naming the record", code, errOut)
	}
	if after, err := os.ReadFile(path); err != nil || !bytes.Equal(after, b) {
		t.Errorf("records.db changed by a refused compaction (err %v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".compact-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestCompactErrors: each bad input is refused in one line.
func TestCompactErrors(t *testing.T) {
	empty := t.TempDir()
	noSecret, _ := makeDumpDB(t)
	if err := os.Remove(filepath.Join(noSecret, store.SecretFile)); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"missing folder", []string{"--data-dir", filepath.Join(empty, "nope")}, "does not exist"},
		{"no database", []string{"--data-dir", empty}, "no database in"},
		{"no secret", []string{"--data-dir", noSecret}, "node.secret is needed to verify"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCmd(append([]string{"compact"}, tt.args...)...)
			if code != exitError || !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("compact %v = %d, stderr %q; want 2 and one line with %q", tt.args, code, errOut, tt.want)
			}
		})
	}
}

// backupOf writes a backup of the database in dir as the admin /backup
// endpoint makes it (Store.Backup of the open store) into a folder of its
// own, and returns the file.
func backupOf(t *testing.T, dir string) string {
	t.Helper()
	s, err := store.Open(dir, store.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.Backup(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "node.db")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestRestore: a backup restored with its node secret into a new data
// directory opens as a store holding every record of the original, with the
// secret installed (0600) and the directory made with mode 0700.
func TestRestore(t *testing.T) {
	src, recs := makeDumpDB(t)
	file := backupOf(t, src)
	dir := filepath.Join(t.TempDir(), "data")
	code, out, errOut := runCmd("restore", "--from", file, "--data-dir", dir,
		"--secret", filepath.Join(src, store.SecretFile))
	if code != exitOK || !strings.Contains(out, "3 records verified") || !strings.Contains(out, "installed the node secret") {
		t.Fatalf("restore = %d, stdout %q, stderr %q; want 0, 3 records and the secret installed", code, out, errOut)
	}
	for path, mode := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, filepath.Join(dir, store.SecretFile): 0o600, filepath.Join(dir, store.DBFile): 0o600} {
		if fi, err := os.Stat(path); err != nil || fi.Mode() != mode {
			t.Errorf("%s: %v, %v; want mode %v", path, fi.Mode(), err, mode)
		}
	}
	cfg := store.DefaultConfig()
	cfg.Now = func() time.Time { return time.Now().Add(-2 * time.Hour) } // the expired record is live then
	s, err := store.Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, want := range recs {
		got, err := s.Get(want.Key)
		if err != nil || !bytes.Equal(got.Value, want.Value) || got.Version != want.Version || got.Primary != want.Primary {
			t.Errorf("Get(%x) after restore = %+v, %v; want %+v", want.Key[:4], got, err, want)
		}
	}
	if err := s.Check(); err != nil {
		t.Errorf("Check after restore: %v", err)
	}
}

// TestRestoreRefuses: restore refuses, in one line and without changing the
// data directory, a database already there (unless --force), a data directory
// in use even with --force, a tampered or corrupt backup, a missing secret
// and a secret other than the directory's own.
func TestRestoreRefuses(t *testing.T) {
	src, recs := makeDumpDB(t)
	secret := filepath.Join(src, store.SecretFile)
	good := backupOf(t, src)

	tampered := filepath.Join(t.TempDir(), "tampered.db")
	b, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(b, recs[0].Value) != 1 {
		t.Fatal("value not found once in the backup")
	}
	if err := os.WriteFile(tampered, bytes.ReplaceAll(b, recs[0].Value, []byte("hello PRIMARY")), 0o600); err != nil {
		t.Fatal(err)
	}
	// Every record's HMAC holds, but one has lost its expiry index entry.
	inconsistent := filepath.Join(t.TempDir(), "inconsistent.db")
	if err := os.WriteFile(inconsistent, b, 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(inconsistent, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		k, _ := tx.Bucket([]byte("expiry")).Cursor().First()
		return tx.Bucket([]byte("expiry")).Delete(k)
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(t.TempDir(), "corrupt.db")
	if err := os.WriteFile(corrupt, bytes.Repeat([]byte("not bbolt"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}

	// A data directory with a database of its own (another backup of src).
	existing := t.TempDir()
	if code, _, errOut := runCmd("restore", "--from", backupOf(t, src), "--data-dir", existing, "--secret", secret); code != exitOK {
		t.Fatalf("restore into an empty directory = %d, %q", code, errOut)
	}
	existingDB, err := os.ReadFile(filepath.Join(existing, store.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	// A data directory in use by a running node, with the same secret.
	inUse := t.TempDir()
	if code, _, errOut := runCmd("restore", "--from", backupOf(t, src), "--data-dir", inUse, "--secret", secret); code != exitOK {
		t.Fatalf("restore into an empty directory = %d, %q", code, errOut)
	}
	s, err := store.Open(inUse, store.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	otherSecret := t.TempDir() // a node secret of another node
	o, err := store.Open(otherSecret, store.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(otherSecret, store.DBFile)); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		args []string
		dir  string
		want string
	}{
		{"existing database", []string{"--from", good, "--secret", secret}, existing, "already holds a database (records.db); --force replaces it"},
		{"in use", []string{"--from", good, "--secret", secret}, inUse, "is in use by a running node (stop it first)"},
		{"in use, with --force", []string{"--from", good, "--secret", secret, "--force"}, inUse, "is in use by a running node (stop it first)"},
		{"tampered backup", []string{"--from", tampered, "--secret", secret}, "", "1 of 3 records fail their integrity check"},
		{"inconsistent backup", []string{"--from", inconsistent, "--secret", secret}, "", "no expiry index entry"},
		{"corrupt backup", []string{"--from", corrupt, "--secret", secret}, "", "failed verification"},
		{"missing backup", []string{"--from", filepath.Join(otherSecret, "nope.db"), "--secret", secret}, "", "nope.db: no such file"},
		{"no secret", []string{"--from", good}, "", "node.secret does not exist"},
		{"wrong secret", []string{"--from", good, "--secret", secret}, otherSecret, "node.secret differs from"},
		{"secret of another node", []string{"--from", good, "--secret", filepath.Join(otherSecret, store.SecretFile)}, "", "3 of 3 records fail their integrity check"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "data")
			}
			code, _, errOut := runCmd(append([]string{"restore", "--lock-timeout", "300ms", "--data-dir", dir}, tt.args...)...)
			if code != exitError || !strings.Contains(errOut, tt.want) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("restore %v = %d, stderr %q; want 2 and one line with %q", tt.args, code, errOut, tt.want)
			}
			if tt.dir == "" {
				if _, err := os.Stat(dir); err == nil {
					t.Errorf("a refused restore created %s", dir)
				}
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(existing, store.DBFile)); err != nil || !bytes.Equal(b, existingDB) {
		t.Errorf("refused restore changed the existing database (err %v)", err)
	}

	// --force replaces the existing database, with the backup's records.
	code, out, errOut := runCmd("restore", "--from", good, "--data-dir", existing, "--force")
	if code != exitOK || !strings.Contains(out, "replacing the database it held") {
		t.Errorf("restore --force = %d, stdout %q, stderr %q; want 0 and the database replaced", code, out, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(existing, store.DBFile)); err != nil || !bytes.Equal(b, mustRead(t, good)) {
		t.Errorf("restore --force: records.db is not the backup (err %v)", err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
