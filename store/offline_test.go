package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/internal/testenv"
)

// closedStore writes records a, b and c into a new data directory, closes
// it, and returns the directory.
func closedStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, Config{Timeout: time.Second, MaxBatch: 16, Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		mustPut(t, s, rec(name, 1))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestOfflineErrors: Compact and Restore fail with the sentinel of each
// refusal (ErrLocked, ErrExists, ErrCorrupt, ErrNoSecret, ErrInvalidArgument),
// so that callers tell them apart with errors.Is.
func TestOfflineErrors(t *testing.T) {
	dir := closedStore(t)
	secret := filepath.Join(dir, SecretFile)
	backup := filepath.Join(t.TempDir(), "backup.db")
	b, err := os.ReadFile(filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(backup, b, 0o600); err != nil {
		t.Fatal(err)
	}
	tampered := filepath.Join(t.TempDir(), "tampered.db")
	v := rec("a", 1).Value
	if err := os.WriteFile(tampered, bytes.Replace(b, v, bytes.ToUpper(v), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	inUse := t.TempDir()
	openTest(t, inUse, nil)

	cfg := DefaultOfflineConfig()
	cfg.Timeout = 100 * time.Millisecond
	withSecret := cfg
	withSecret.SecretPath = secret
	withForce := withSecret
	withForce.Force = true
	badTimeout := cfg
	badTimeout.Timeout = 0

	_, compactInUse := Compact(inUse, cfg)
	_, compactBadTimeout := Compact(dir, badTimeout)
	_, restoreExists := Restore(backup, dir, cfg)
	_, restoreInUse := Restore(backup, inUse, withForce)
	_, restoreTampered := Restore(tampered, filepath.Join(t.TempDir(), "new"), withSecret)
	_, restoreNoSecret := Restore(backup, filepath.Join(t.TempDir(), "new"), cfg)
	_, restoreItself := Restore(filepath.Join(dir, DBFile), dir, withForce)
	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"Compact in use", compactInUse, ErrLocked},
		{"Compact with a zero timeout", compactBadTimeout, ErrInvalidArgument},
		{"Restore over a database", restoreExists, ErrExists},
		{"Restore --force in use", restoreInUse, ErrLocked},
		{"Restore tampered", restoreTampered, ErrCorrupt},
		{"Restore without a secret", restoreNoSecret, ErrNoSecret},
		{"Restore a database onto itself", restoreItself, ErrInvalidArgument},
	} {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v; want %v", tt.name, tt.err, tt.want)
		}
	}

	// Both work on the same inputs once nothing stands in the way.
	res, err := Compact(dir, cfg)
	if err != nil || res.Records != 3 || res.BytesAfter <= 0 {
		t.Errorf("Compact = %+v, %v; want 3 records", res, err)
	}
	rres, err := Restore(backup, dir, withForce)
	if err != nil || !rres.Replaced || rres.SecretInstalled || rres.Records != 3 || rres.Bytes != int64(len(b)) {
		t.Errorf("Restore --force = %+v, %v; want 3 records replacing the database, no secret installed", rres, err)
	}
	s := openTest(t, dir, withClock(newClock()))
	for _, name := range []string{"a", "b", "c"} {
		if got, err := s.Get(testKey(name)); err != nil || !sameRecord(got, rec(name, 1)) {
			t.Errorf("Get(%s) after Compact and Restore = %+v, %v; want %+v", name, got, err, rec(name, 1))
		}
	}
}

// TestOfflineKeepsTheNodesOwner: run as root (an operator's sudo), Compact
// leaves records.db with the owner the node's user gave it, and Restore
// gives what it writes to the owner of the data directory, so that the node
// can open its files afterwards.
func TestOfflineKeepsTheNodesOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "needs root: files change owner only when a root process writes them")
	}
	const uid, gid = 4242, 4343
	owner := func(path string) (uint32, uint32) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return st.Uid, st.Gid
	}
	dir := closedStore(t)
	secret := filepath.Join(dir, SecretFile)
	if err := os.Chown(filepath.Join(dir, DBFile), uid, gid); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultOfflineConfig()
	if _, err := Compact(dir, cfg); err != nil {
		t.Fatal(err)
	}
	if u, g := owner(filepath.Join(dir, DBFile)); u != uid || g != gid {
		t.Errorf("records.db after Compact owned by %d:%d; want %d:%d as before", u, g, uid, gid)
	}

	backup := filepath.Join(t.TempDir(), "backup.db")
	b, err := os.ReadFile(filepath.Join(dir, DBFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(backup, b, 0o600); err != nil {
		t.Fatal(err)
	}
	into := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(into, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(into, uid, gid); err != nil {
		t.Fatal(err)
	}
	withSecret := cfg
	withSecret.SecretPath = secret
	if _, err := Restore(backup, into, withSecret); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{DBFile, SecretFile} {
		if u, g := owner(filepath.Join(into, f)); u != uid || g != gid {
			t.Errorf("%s after Restore owned by %d:%d; want the data directory's %d:%d", f, u, g, uid, gid)
		}
	}
}
