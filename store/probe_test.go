package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// bigRecords returns n records of about 60 KB each: enough of them make a
// commit grow the database's memory map, which waits for every open read
// transaction.
func bigRecords(set string, n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		r := rec(fmt.Sprintf("%s-%d", set, i), 1)
		r.Value = bytes.Repeat([]byte{byte(i)}, 60_000)
		recs[i] = r
	}
	return recs
}

// blockingWriter takes nothing until release is closed; entered is closed on
// the first Write.
type blockingWriter struct {
	entered, release chan struct{}
	buf              bytes.Buffer
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	select {
	case <-w.entered:
	default:
		close(w.entered)
	}
	<-w.release
	return w.buf.Write(p)
}

// A backup whose reader takes nothing holds no transaction: puts that grow
// the memory map still commit, a probe still succeeds, and the copy, once
// read, holds exactly the records from before it began.
func TestBackupStalledReader(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	before := bigRecords("before", 40) // 2.4 MB
	if _, err := s.PutAll(context.Background(), before); err != nil {
		t.Fatal(err)
	}
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := s.Backup(w, nil)
		done <- result{n, err}
	}()
	released := false
	release := func() {
		if !released {
			released = true
			close(w.release)
		}
	}
	var res result
	finished := false
	wait := func() result {
		release()
		if !finished {
			res, finished = <-done, true
		}
		return res
	}
	defer wait()
	<-w.entered

	// The bound is a failure line, not a measurement: with a read
	// transaction held by the stalled reader the commit never finishes.
	put := make(chan error, 1)
	go func() {
		_, err := s.PutAll(context.Background(), bigRecords("during", 80))
		put <- err
	}()
	select {
	case err := <-put:
		if err != nil {
			t.Fatalf("PutAll of 4.8 MB while a backup reader stalls = %v; want nil", err)
		}
	case <-time.After(20 * time.Second):
		wait()
		<-put
		t.Fatal("PutAll of 4.8 MB while a backup reader stalls: not done within 20 s; it waited for the reader")
	}
	if err := returnsWithin(t, 10*time.Second, func() error { return s.Probe(context.Background()) }); err != nil {
		t.Errorf("Probe while a backup reader stalls = %v; want nil", err)
	}
	if left, _ := filepath.Glob(filepath.Join(s.Dir(), snapshotPattern)); len(left) != 0 {
		t.Errorf("snapshot files visible in the data dir while streaming: %v; want none (unlinked)", left)
	}

	res = wait()
	if res.err != nil || res.n != int64(w.buf.Len()) {
		t.Fatalf("Backup = %d, %v (buffer %d); want the whole copy", res.n, res.err, w.buf.Len())
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, DBFile), w.buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, SecretFile), s.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	b := openTest(t, dir, withClock(newClock()))
	for _, r := range before {
		if got, err := b.Get(r.Key); err != nil || !sameRecord(got, r) {
			t.Fatalf("Get(%x) from the copy = %v; want the record put before the backup", r.Key[:4], err)
		}
	}
	if st, err := b.Stats(); err != nil || st.PrimaryRecords != int64(len(before)) {
		t.Errorf("copy Stats = %+v, %v; want %d records (those from before the backup)", st, err, len(before))
	}
}

// TestOpenRemovesLeftOverSnapshots: a read-write Open removes the temporary
// files that a crash during a backup, a compaction or a restore left in the
// data directory.
func TestOpenRemovesLeftOverSnapshots(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, name := range []string{".backup-123.tmp", ".compact-123.tmp", ".restore-123.tmp"} {
		left = append(left, filepath.Join(dir, name))
		if err := os.WriteFile(left[len(left)-1], []byte("partial copy"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	openTest(t, dir, nil)
	for _, p := range left {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Stat(%s) after Open = %v; want it removed", p, err)
		}
	}
}

// A commit stuck behind an open read transaction (it must grow the memory
// map) makes Probe fail within its deadline, a probe while the first still
// runs fail at once, and probes succeed again once the commit goes through.
func TestProbeStuckCommit(t *testing.T) {
	s := openTest(t, "", withClock(newClock()))
	if err := s.Probe(context.Background()); err != nil {
		t.Fatalf("Probe on a fresh store = %v; want nil", err)
	}
	tx, err := s.db.Begin(false) // a reader that does not let go, as a stalled stream did
	if err != nil {
		t.Fatal(err)
	}
	txOpen := true
	rollback := func() {
		if txOpen {
			txOpen = false
			if err := tx.Rollback(); err != nil {
				t.Error(err)
			}
		}
	}
	defer rollback()
	put := make(chan error, 1)
	go func() {
		_, err := s.PutAll(context.Background(), bigRecords("stuck", 80))
		put <- err
	}()
	var putErr error
	putDone := false
	waitPut := func() error {
		rollback()
		if !putDone {
			putErr, putDone = <-put, true
		}
		return putErr
	}
	defer waitPut()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := returnsWithin(t, 10*time.Second, func() error { return s.Probe(ctx) }); !errors.Is(err, ErrStalled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Probe behind a stuck commit = %v; want %v and %v", err, ErrStalled, context.DeadlineExceeded)
	}
	if err := returnsWithin(t, 10*time.Second, func() error { return s.Probe(context.Background()) }); !errors.Is(err, ErrStalled) {
		t.Fatalf("Probe while the last one still runs = %v; want %v at once", err, ErrStalled)
	}
	select {
	case err := <-put:
		putErr, putDone = err, true
		t.Fatalf("PutAll finished (%v) while a read transaction was open; the test needs a commit that waits", err)
	default:
	}

	if err := waitPut(); err != nil {
		t.Fatalf("PutAll after the reader let go = %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.Probe(context.Background())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Probe after the commit went through = %v; want nil", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// returnsWithin runs fn and returns its error, failing the test if fn has not
// returned within d (a bound on a hang, not a measurement).
func returnsWithin(t *testing.T, d time.Duration, fn func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		t.Fatalf("still running after %v", d)
		return nil
	}
}

// A probe that follows one that has returned finds the store free: the
// running flag is cleared before the answer is sent.
func TestProbesInARow(t *testing.T) {
	s := openTest(t, "", nil)
	for i := 0; i < 500; i++ {
		if err := s.Probe(context.Background()); err != nil {
			t.Fatalf("probe %d right after the last one returned = %v; want nil", i, err)
		}
	}
}
