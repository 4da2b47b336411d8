package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
)

func withClock(c *clock) func(*Config) { return func(cfg *Config) { cfg.Now = c.Now } }

func TestPutGet(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	ctx := context.Background()
	a1, a2, a3 := rec("a", 1), rec("a", 2), rec("a", 3)
	a2.Primary, a2.Replication = false, 1
	tests := []struct {
		name   string
		put    Record
		stored bool
		want   Record
	}{
		{"new key", a2, true, a2},
		{"older version", a1, false, a2},
		{"same version", a2, false, a2},
		{"newer version", a3, true, a3},
		{"same clock higher node", Record{Key: a3.Key, Value: []byte("n"), Expiry: a3.Expiry, Version: Version{3, 8}}, true,
			Record{Key: a3.Key, Value: []byte("n"), Expiry: a3.Expiry, Version: Version{3, 8}}},
		{"other key", rec("b", 1), true, rec("b", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored, err := s.Put(ctx, tt.put)
			if err != nil || stored != tt.stored {
				t.Fatalf("Put(%v) = %v, %v; want %v, nil", tt.put.Version, stored, err, tt.stored)
			}
			got, err := s.Get(tt.put.Key)
			if err != nil || !sameRecord(got, tt.want) {
				t.Fatalf("Get = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
	if _, err := s.Get(testKey("absent")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(absent) = %v; want ErrNotFound", err)
	}
	mustCheck(t, s)
}

func TestPutInvalid(t *testing.T) {
	c := newClock()
	s := openTest(t, "", withClock(c))
	tests := []struct {
		name    string
		r       Record
		wantErr error
	}{
		{"empty value", Record{Key: testKey("x"), Expiry: testEpoch.Add(time.Hour)}, ErrInvalidRecord},
		{"no expiry", Record{Key: testKey("x"), Value: []byte("v")}, ErrInvalidRecord},
		{"already expired", Record{Key: testKey("x"), Value: []byte("v"), Expiry: testEpoch}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stored, err := s.Put(context.Background(), tt.r)
			if stored || !errors.Is(err, tt.wantErr) {
				t.Errorf("Put = %v, %v; want false, %v", stored, err, tt.wantErr)
			}
		})
	}
	if _, err := s.Get(testKey("x")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(x) = %v; want ErrNotFound", err)
	}
}

func TestDeleteAndSetPrimary(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	ctx := context.Background()
	mustPut(t, s, rec("d", 1))
	mustPut(t, s, rec("p", 1))
	tests := []struct {
		name    string
		do      func() error
		key     string
		wantErr error
		check   func(Record, error) bool
	}{
		{"delete present", func() error { return s.Delete(ctx, testKey("d")) }, "d", nil,
			func(_ Record, err error) bool { return errors.Is(err, ErrNotFound) }},
		{"delete absent", func() error { return s.Delete(ctx, testKey("d")) }, "d", nil,
			func(_ Record, err error) bool { return errors.Is(err, ErrNotFound) }},
		{"demote", func() error { return s.SetPrimary(ctx, testKey("p"), false) }, "p", nil,
			func(r Record, err error) bool { return err == nil && !r.Primary && r.Version == rec("p", 1).Version }},
		{"promote", func() error { return s.SetPrimary(ctx, testKey("p"), true) }, "p", nil,
			func(r Record, err error) bool { return err == nil && r.Primary }},
		{"promote again", func() error { return s.SetPrimary(ctx, testKey("p"), true) }, "p", nil,
			func(r Record, err error) bool { return err == nil && r.Primary }},
		{"set primary absent", func() error { return s.SetPrimary(ctx, testKey("d"), true) }, "d", ErrNotFound,
			func(_ Record, err error) bool { return errors.Is(err, ErrNotFound) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.do(); !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v; want %v", err, tt.wantErr)
			}
			r, err := s.Get(testKey(tt.key))
			if !tt.check(r, err) {
				t.Errorf("Get(%s) = %+v, %v: unexpected", tt.key, r, err)
			}
			mustCheck(t, s)
		})
	}
}

func TestMeta(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key   string
		value []byte
	}{
		{"successors", []byte("a,b,c")},
		{"schema-version", []byte("not the schema")}, // user keys live apart
		{"empty", []byte{}},
		{"successors", nil}, // delete
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if err := s.SetMeta(tt.key, tt.value); err != nil {
				t.Fatalf("SetMeta(%q) = %v", tt.key, err)
			}
			got, err := s.Meta(tt.key)
			if err != nil || !bytes.Equal(got, tt.value) || (got == nil) != (tt.value == nil) {
				t.Errorf("Meta(%q) = %q, %v; want %q", tt.key, got, err, tt.value)
			}
		})
	}
	if err := s.SetMeta("", []byte("x")); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("SetMeta(\"\") = %v; want ErrInvalidArgument", err)
	}
	mustCheck(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Survives a reopen; the schema is intact.
	s = openTest(t, dir, nil)
	if got, err := s.Meta("schema-version"); err != nil || string(got) != "not the schema" {
		t.Errorf("Meta after reopen = %q, %v", got, err)
	}
}

func TestStats(t *testing.T) {
	c := newClock()
	s := openTest(t, "", withClock(c))
	p, r1, r2 := rec("p", 1), rec("r1", 1), rec("r2", 1)
	r1.Primary, r2.Primary = false, false
	r2.Expiry = testEpoch.Add(time.Minute)
	for _, r := range []Record{p, r1, r2} {
		mustPut(t, s, r)
	}
	all := Stats{1, 2, int64(len(p.Value)), int64(len(r1.Value) + len(r2.Value))}
	// Expired records count until the sweeper deletes them.
	tests := []struct {
		at    time.Time
		sweep bool
		want  Stats
	}{
		{testEpoch, false, all},
		{testEpoch.Add(time.Minute), false, all},
		{testEpoch.Add(time.Minute), true, Stats{1, 1, int64(len(p.Value)), int64(len(r1.Value))}},
		{testEpoch.Add(2 * time.Hour), true, Stats{}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.at.Format(time.TimeOnly), "/sweep=", tt.sweep), func(t *testing.T) {
			c.Set(tt.at)
			if tt.sweep {
				if _, err := s.Sweep(context.Background(), tt.at, 0); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := s.Stats(); err != nil || got != tt.want {
				t.Errorf("Stats() = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestWriteToBackup(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	mustPut(t, s, rec("backup", 1))
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("WriteTo = %d, %v (buffer %d)", n, err, buf.Len())
	}
	// The copy, with the secret, is a working store.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DBFile), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SecretFile), s.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, dir, withClock(newClock()))
	if got, err := b.Get(testKey("backup")); err != nil || !sameRecord(got, rec("backup", 1)) {
		t.Errorf("Get from backup = %+v, %v", got, err)
	}
}

func TestBackupFileOpensReadOnly(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	mustPut(t, s, rec("a", 1))
	mustPut(t, s, rec("b", 2))
	var buf bytes.Buffer
	var announced int64 = -1
	n, err := s.Backup(&buf, func(size int64) { announced = size })
	if err != nil || n != int64(buf.Len()) || announced != n {
		t.Fatalf("Backup = %d, %v; announced size %d, buffer %d", n, err, announced, buf.Len())
	}
	// A backup file in a folder of its own, the secret kept elsewhere.
	dir := t.TempDir()
	file := filepath.Join(dir, "node-2026-11-24.db")
	secret := filepath.Join(t.TempDir(), "node.secret")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, s.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		secret   string
		verifies bool
	}{
		{"without secret", "", false},
		{"with secret", secret, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.ReadOnly = true
			cfg.SecretPath = tc.secret
			b, err := Open(file, cfg)
			if err != nil {
				t.Fatalf("Open(%s) = %v", file, err)
			}
			defer b.Close()
			if b.Verifies() != tc.verifies {
				t.Fatalf("Verifies() = %v; want %v", b.Verifies(), tc.verifies)
			}
			var names int
			if err := b.ForEach(func(e Entry) error {
				if e.Tampered {
					t.Errorf("record %x reads as tampered", e.Record.Key[:4])
				}
				names++
				return nil
			}); err != nil || names != 2 {
				t.Fatalf("ForEach = %v, %d records; want 2", err, names)
			}
			mustCheck(t, b)
		})
	}
	// Read-write opens never take a file for a folder.
	if _, err := Open(file, DefaultConfig()); err == nil {
		t.Fatal("read-write Open of a file = nil; want an error")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("opening the backup wrote %d files beside it; want none", len(entries)-1)
	}
}

func TestCloseIdempotent(t *testing.T) {
	s, err := Open(t.TempDir(), DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close #%d = %v", i+1, err)
		}
	}
	ctx := context.Background()
	if _, err := s.Put(ctx, rec("a", 1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v; want ErrClosed", err)
	}
	if _, err := s.Get(testKey("a")); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close = %v; want ErrClosed", err)
	}
	if err := s.Delete(ctx, testKey("a")); !errors.Is(err, ErrClosed) {
		t.Errorf("Delete after Close = %v; want ErrClosed", err)
	}
	if err := s.SetMeta("k", []byte("v")); !errors.Is(err, ErrClosed) {
		t.Errorf("SetMeta after Close = %v; want ErrClosed", err)
	}
	if _, err := s.Sweep(ctx, time.Now(), 10); !errors.Is(err, ErrClosed) {
		t.Errorf("Sweep after Close = %v; want ErrClosed", err)
	}
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, Record{Key: testKey("k"), Value: []byte("v"), Expiry: time.Now().Add(time.Hour)})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, SecretFile))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("node.secret: %v, %v; want 32 bytes, mode 0600", fi, err)
	}
	// Records survive a reopen (same secret).
	s = openTest(t, dir, nil)
	if _, err := s.Get(testKey("k")); err != nil {
		t.Errorf("Get after reopen = %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	existingNoSecret := t.TempDir()
	s, err := Open(existingNoSecret, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(existingNoSecret, SecretFile)); err != nil {
		t.Fatal(err)
	}
	badSecret := t.TempDir()
	if err := os.WriteFile(filepath.Join(badSecret, SecretFile), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	notDB := t.TempDir()
	if err := os.WriteFile(filepath.Join(notDB, DBFile), bytes.Repeat([]byte("garbage!"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dir     string
		cfg     func(*Config)
		wantErr error
	}{
		{"missing dir read-only", filepath.Join(t.TempDir(), "nope"), func(c *Config) { c.ReadOnly = true }, os.ErrNotExist},
		{"secret lost", existingNoSecret, nil, ErrNoSecret},
		{"secret malformed", badSecret, nil, ErrNoSecret},
		{"bad config", t.TempDir(), func(c *Config) { c.Timeout = 0 }, ErrInvalidArgument},
		{"not a database", notDB, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			s, err := Open(tt.dir, cfg)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%s) succeeded; want an error", tt.name)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Open = %v; want %v", err, tt.wantErr)
			}
		})
	}
}

func TestSchemaTooNew(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, DBFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaSchema, []byte("7"))
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.ReadOnly = ro
		_, err := Open(dir, cfg)
		if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "version 7") || !strings.Contains(err.Error(), fmt.Sprintf("up to %d", SchemaVersion)) {
			t.Errorf("Open(read-only=%v) = %v; want ErrSchemaTooNew naming 7 and %d", ro, err, SchemaVersion)
		}
	}
}

// A second opener of a held database fails with ErrLocked (bbolt's flock is
// per open file, so a second handle in the same process is refused too).
func TestLocked(t *testing.T) {
	dir := t.TempDir()
	openTest(t, dir, nil)
	for _, ro := range []bool{false, true} {
		cfg := DefaultConfig()
		cfg.Timeout = 100 * time.Millisecond
		cfg.ReadOnly = ro
		s, err := Open(dir, cfg)
		if !errors.Is(err, ErrLocked) {
			if err == nil {
				s.Close()
			}
			t.Errorf("second Open(read-only=%v) = %v; want ErrLocked", ro, err)
		}
	}
}

func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	r := Record{Key: testKey("ro"), Value: []byte("v"), Expiry: time.Now().Add(time.Hour)}
	mustPut(t, s, r)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro := openTest(t, dir, func(c *Config) { c.ReadOnly = true })
	// Two read-only openers share the lock.
	ro2 := openTest(t, dir, func(c *Config) { c.ReadOnly = true })
	mustCheck(t, ro2)
	if got, err := ro.Get(r.Key); err != nil || string(got.Value) != "v" {
		t.Errorf("read-only Get = %+v, %v", got, err)
	}
	ctx := context.Background()
	if _, err := ro.Put(ctx, r); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only Put = %v; want ErrReadOnly", err)
	}
	if err := ro.SetMeta("k", nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only SetMeta = %v; want ErrReadOnly", err)
	}
	if _, err := ro.Sweep(ctx, time.Now(), 1); !errors.Is(err, ErrReadOnly) {
		t.Errorf("read-only Sweep = %v; want ErrReadOnly", err)
	}
	// Without the secret: readable for dumps, not verifiable.
	if err := os.Remove(filepath.Join(dir, SecretFile)); err != nil {
		t.Fatal(err)
	}
	ns := openTest(t, dir, func(c *Config) { c.ReadOnly = true })
	if ns.Verifies() {
		t.Errorf("Verifies() = true without node.secret")
	}
	if _, err := ns.Get(r.Key); !errors.Is(err, ErrNoSecret) {
		t.Errorf("Get without secret = %v; want ErrNoSecret", err)
	}
	var seen []Entry
	if err := ns.ForEach(func(e Entry) error { seen = append(seen, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].Verified || seen[0].Tampered || string(seen[0].Record.Value) != "v" {
		t.Errorf("ForEach without secret = %+v; want the record, unverified", seen)
	}
}

// counterValue reads a counter (with the given result label, if any) from
// reg; ok is false when it is not registered there.
func counterValue(t *testing.T, reg *prometheus.Registry, name, result string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := result == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					match = true
				}
			}
			if match {
				return m.GetCounter().GetValue(), true
			}
		}
	}
	return 0, false
}

// histogramCount returns the sample count of the unlabelled histogram name
// in reg (0 if it is not registered).
func histogramCount(t *testing.T, reg *prometheus.Registry, name string) uint64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// TestMetrics: the store's counters count what its puts did, every group
// commit is timed in durachord_store_commit_duration_seconds, and a second
// store on the same registry is refused.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := openTest(t, "", func(c *Config) { c.Metrics = reg; c.Now = newClock().Now })
	mustPut(t, s, rec("m", 2))
	mustPut(t, s, rec("m", 1))
	tests := []struct {
		name, result string
		want         float64
	}{
		{"durachord_store_puts_total", "stored", 1},
		{"durachord_store_puts_total", "stale", 1},
		{"durachord_store_puts_total", "expired", 0},
		{"durachord_store_commits_total", "", 2},
		{"durachord_store_committed_writes_total", "", 2},
		{"durachord_store_tampered_records_total", "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.result, func(t *testing.T) {
			if got, ok := counterValue(t, reg, tt.name, tt.result); !ok || got != tt.want {
				t.Errorf("%s{result=%q} = %v (registered %v); want %v", tt.name, tt.result, got, ok, tt.want)
			}
		})
	}
	if got := histogramCount(t, reg, "durachord_store_commit_duration_seconds"); got != 2 {
		t.Errorf("durachord_store_commit_duration_seconds count = %d; want 2 (one per commit)", got)
	}
	// A second store on the same registry is refused, not silently merged.
	if _, err := Open(t.TempDir(), Config{Timeout: time.Second, MaxBatch: 1, Metrics: reg}); err == nil {
		t.Errorf("Open with an already-used registry succeeded")
	}
}

// TestDeleteAndDemoteUpTo: DeleteUpTo and SetPrimaryUpTo change a record at
// the version given or an older one, and leave a newer one as it is.
func TestDeleteAndDemoteUpTo(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	ctx := context.Background()
	mustPut(t, s, rec("new", 5))
	mustPut(t, s, rec("old", 3))
	if ok, err := s.DeleteUpTo(ctx, testKey("new"), rec("new", 4).Version); ok || err != nil {
		t.Errorf("DeleteUpTo(version 4) of a record at 5 = %v, %v; want false, nil", ok, err)
	}
	if _, err := s.Get(testKey("new")); err != nil {
		t.Errorf("record at 5 after DeleteUpTo(4): %v; want it kept", err)
	}
	if err := s.SetPrimaryUpTo(ctx, testKey("new"), false, rec("new", 4).Version); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get(testKey("new")); err != nil || !r.Primary {
		t.Errorf("record at 5 after SetPrimaryUpTo(false, 4) = %+v, %v; want it still primary", r, err)
	}
	if err := s.SetPrimaryUpTo(ctx, testKey("old"), false, rec("old", 3).Version); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Get(testKey("old")); err != nil || r.Primary {
		t.Errorf("record at 3 after SetPrimaryUpTo(false, 3) = %+v, %v; want it demoted", r, err)
	}
	if ok, err := s.DeleteUpTo(ctx, testKey("old"), rec("old", 4).Version); !ok || err != nil {
		t.Errorf("DeleteUpTo(version 4) of a record at 3 = %v, %v; want true, nil", ok, err)
	}
	if _, err := s.Get(testKey("old")); !errors.Is(err, ErrNotFound) {
		t.Errorf("record at 3 after DeleteUpTo(4): %v; want it gone", err)
	}
	mustCheck(t, s)
}
