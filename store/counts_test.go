package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// recountEntries counts what ForEach sees, by kind: the reference the kept
// counts must equal.
func recountEntries(t testing.TB, s *Store) Stats {
	t.Helper()
	var st Stats
	err := s.ForEach(func(e Entry) error {
		if e.Record.Primary {
			st.PrimaryRecords++
			st.PrimaryBytes += int64(len(e.Record.Value))
		} else {
			st.ReplicaRecords++
			st.ReplicaBytes += int64(len(e.Record.Value))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("ForEach: %v", err)
	}
	return st
}

// mustMatchRecount fails unless Stats equals a recount of the records.
func mustMatchRecount(t testing.TB, s *Store, when string) Stats {
	t.Helper()
	got, err := s.Stats()
	if err != nil {
		t.Fatalf("%s: Stats: %v", when, err)
	}
	if want := recountEntries(t, s); got != want {
		t.Fatalf("%s: Stats() = %+v; a recount gives %+v", when, got, want)
	}
	return got
}

// randomOps makes random writes over a small key space: puts of newer,
// older and equal versions of either kind, batched puts, deletes, flag
// changes, and sweeps after time moves on.
type randomOps struct {
	s   *Store
	c   *clock
	mu  sync.Mutex // guards rnd (shared by concurrent writers)
	rnd *rand.Rand
}

func (r *randomOps) record() Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	size := 1 + r.rnd.IntN(300)
	return Record{
		Key:         testKey(fmt.Sprint(r.rnd.IntN(40))),
		Value:       make([]byte, size),
		Expiry:      r.c.Now().Add(time.Duration(1+r.rnd.IntN(600)) * time.Second),
		Version:     Version{Clock: uint64(1 + r.rnd.IntN(6)), Node: uint64(1 + r.rnd.IntN(3))},
		Primary:     r.rnd.IntN(2) == 0,
		Replication: 3,
	}
}

func (r *randomOps) pick() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rnd.IntN(10)
}

// step applies one random write and names it.
func (r *randomOps) step(sweeps bool) (string, error) {
	ctx := context.Background()
	switch op := r.pick(); {
	case op < 4:
		_, err := r.s.Put(ctx, r.record())
		return "put", err
	case op < 5:
		_, err := r.s.PutAll(ctx, []Record{r.record(), r.record(), r.record()})
		return "put-all", err
	case op < 7:
		return "delete", r.s.Delete(ctx, r.record().Key)
	case op < 9:
		rec := r.record()
		err := r.s.SetPrimary(ctx, rec.Key, rec.Primary)
		if errors.Is(err, ErrNotFound) {
			err = nil
		}
		return "set-primary", err
	case sweeps:
		r.c.Set(r.c.Now().Add(time.Duration(r.pick()*30) * time.Second))
		_, err := r.s.Sweep(ctx, r.c.Now(), 1+r.pick())
		return "sweep", err
	}
	return "nothing", nil
}

// TestCountsModel: after every write of a random mix, after concurrent
// writers whose writes share group commits, and after a reopen, the kept
// counts equal a full recount.
func TestCountsModel(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			dir := t.TempDir()
			c := newClock()
			s := openTest(t, dir, func(cfg *Config) { cfg.Now = c.Now; cfg.MaxBatch = 16 })
			r := &randomOps{s: s, c: c, rnd: rand.New(rand.NewPCG(seed, 1))}
			seen := map[string]int{}
			for i := range 400 {
				op, err := r.step(true)
				if err != nil {
					t.Fatalf("write %d (%s): %v", i, op, err)
				}
				seen[op]++
				mustMatchRecount(t, s, fmt.Sprintf("after write %d (%s)", i, op))
			}
			// Several writers at once: their writes share transactions.
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for range 100 {
						if op, err := r.step(false); err != nil {
							t.Errorf("concurrent %s: %v", op, err)
							return
						}
					}
				})
			}
			wg.Wait()
			before := mustMatchRecount(t, s, "after concurrent writers")
			mustCheck(t, s)
			if before.PrimaryRecords == 0 || before.ReplicaRecords == 0 {
				t.Errorf("Stats() = %+v: the mix left no records of a kind", before)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openTest(t, dir, withClock(c))
			if got := mustMatchRecount(t, s, "after reopen"); got != before {
				t.Errorf("Stats() after reopen = %+v; before %+v", got, before)
			}
			t.Logf("writes: %v; counts %+v", seen, before)
		})
	}
}

// downgrade rewrites the database in dir as schema version 1 wrote it: no
// record counts.
func downgrade(t *testing.T, dir string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, DBFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if err := meta.Delete(metaCounts); err != nil {
			return err
		}
		return meta.Put(metaSchema, []byte("1"))
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
}

// rawMeta reads the schema version and the counts key straight from the file.
func rawMeta(t *testing.T, dir string) (schema string, counts []byte) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, DBFile), 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		schema = string(meta.Get(metaSchema))
		if v := meta.Get(metaCounts); v != nil {
			counts = append([]byte(nil), v...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return schema, counts
}

// TestCountsUpgrade: a database of schema version 1 (no counts) is counted
// once on the first read-write open, which saves the counts and version 2;
// opened read-only, it is recounted on each Stats.
func TestCountsUpgrade(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s := openTest(t, dir, withClock(c))
	p, r, gone := rec("p", 1), rec("r", 1), rec("expired", 1)
	r.Primary = false
	gone.Expiry = testEpoch.Add(time.Second)
	for _, x := range []Record{p, r, gone} {
		mustPut(t, s, x)
	}
	c.Set(testEpoch.Add(time.Minute)) // gone expired, not swept: still held
	want := Stats{2, 1, int64(len(p.Value) + len(gone.Value)), int64(len(r.Value))}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	downgrade(t, dir)

	ro := openTest(t, dir, func(cfg *Config) { cfg.Now = c.Now; cfg.ReadOnly = true })
	if got, err := ro.Stats(); err != nil || got != want {
		t.Errorf("read-only Stats() of a version 1 database = %+v, %v; want %+v", got, err, want)
	}
	if err := ro.Check(); err != nil {
		t.Errorf("read-only Check() of a version 1 database: %v", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	if schema, counts := rawMeta(t, dir); schema != "1" || counts != nil {
		t.Fatalf("after a read-only open: schema %q, counts %x; want 1 and none", schema, counts)
	}

	s = openTest(t, dir, withClock(c))
	if got := mustMatchRecount(t, s, "after the upgrade"); got != want {
		t.Errorf("Stats() after the upgrade = %+v; want %+v", got, want)
	}
	mustCheck(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	schema, counts := rawMeta(t, dir)
	if got, err := decodeCounts(counts); schema != fmt.Sprint(SchemaVersion) || err != nil || got != want {
		t.Errorf("saved schema %q, counts %+v, %v; want %d, %+v", schema, got, err, SchemaVersion, want)
	}
}

// TestCheckCounts: Check reports counts that do not match the records.
func TestCheckCounts(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, rec("a", 1))
	if err := s.Check(); err != nil {
		t.Fatalf("Check() = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(dir, DBFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaCounts, Stats{PrimaryRecords: 2, PrimaryBytes: 7}.encode())
	})
	if err := errors.Join(err, db.Close()); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.ReadOnly = true
	s, err = Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err == nil || !strings.Contains(err.Error(), "record counts") {
		t.Errorf("Check() of wrong counts = %v; want an error about record counts", err)
	}
}

// freelistRecorded reports whether the newest meta page of the database
// file at path records a freelist page, reading both meta pages as bbolt
// lays them out: a page header of 16 bytes, then magic, version, page size
// and flags (4 bytes each), the root bucket (16), the freelist page, the
// high-water page and the transaction ID (8 each), in native byte order.
func freelistRecorded(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const noFreelist = ^uint64(0)
	ne := binary.NativeEndian
	pageSize := int(ne.Uint32(b[24:]))
	var newest, freelist uint64
	for _, off := range []int{0, pageSize} {
		m := b[off:]
		if txid := ne.Uint64(m[64:]); txid >= newest {
			newest, freelist = txid, ne.Uint64(m[48:])
		}
	}
	return freelist != noFreelist
}

// TestFreelistSynced: the database file records its free pages after every
// commit while they are few, and after Close whatever their number, so that
// opening it reads them from one page instead of walking every page of the
// file. After a mass expiry leaves many free pages, commits leave the list
// out (writing it would cost each of them more than one walk).
func TestFreelistSynced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DBFile)
	c := newClock()
	s := openTest(t, dir, withClock(c))
	for i := range 50 {
		mustPut(t, s, rec(fmt.Sprint(i), 1))
	}
	if !freelistRecorded(t, path) {
		t.Errorf("after 50 puts (%d free pages) the file records no freelist: an open after a crash walks it all", s.db.Stats().FreePageN)
	}

	var many []Record
	for i := range 20000 {
		r := rec(fmt.Sprint("short-", i), 1)
		r.Expiry = testEpoch.Add(time.Second)
		many = append(many, r)
	}
	if _, err := s.PutAll(context.Background(), many); err != nil {
		t.Fatal(err)
	}
	c.Set(testEpoch.Add(time.Minute))
	if n, err := s.Sweep(context.Background(), c.Now(), 0); err != nil || n != len(many) {
		t.Fatalf("Sweep = %d, %v; want %d", n, err, len(many))
	}
	mustPut(t, s, rec("after the sweep", 1))
	if free := s.db.Stats().FreePageN; free <= freelistSyncMax || freelistRecorded(t, path) {
		t.Errorf("after a mass expiry (%d free pages), freelist recorded = %v; want more than %d pages, not recorded",
			free, freelistRecorded(t, path), freelistSyncMax)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !freelistRecorded(t, path) {
		t.Errorf("after Close the file records no freelist: the next open walks it all")
	}
}
