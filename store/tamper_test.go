package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// flipInFile flips one byte in every copy of needle in the file (bbolt may
// keep stale copies in free pages) and returns how many it found.
func flipInFile(t *testing.T, path string, needle []byte) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i := 0; ; {
		j := bytes.Index(b[i:], needle)
		if j < 0 {
			break
		}
		b[i+j+len(needle)/2] ^= 0x20
		n++
		i += j + len(needle)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTamperedRecord(t *testing.T) {
	dir := t.TempDir()
	c := newClock()
	s, err := Open(dir, Config{Timeout: DefaultConfig().Timeout, MaxBatch: 8, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	victim := rec("victim", 4)
	victim.Value = []byte("a value somebody will edit on disk")
	mustPut(t, s, victim)
	mustPut(t, s, rec("bystander", 1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := flipInFile(t, filepath.Join(dir, DBFile), victim.Value); n == 0 {
		t.Fatalf("record value not found in the database file")
	}

	s = openTest(t, dir, withClock(c))
	_, err = s.Get(victim.Key)
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrTampered) {
		t.Fatalf("Get(tampered) = %v; want ErrNotFound and ErrTampered", err)
	}
	if got := s.TamperedCount(); got != 1 {
		t.Errorf("TamperedCount() = %d; want 1", got)
	}
	if _, err := s.Get(testKey("bystander")); err != nil {
		t.Errorf("Get(bystander) = %v", err)
	}
	var ranged int
	if _, err := s.Range(Position{}, Position{}, nil, 0, func(Record) error { ranged++; return nil }); err != nil || ranged != 1 {
		t.Errorf("Range = %d records, %v; want 1 (tampered skipped)", ranged, err)
	}
	if got := s.TamperedCount(); got != 2 {
		t.Errorf("TamperedCount() after Range = %d; want 2", got)
	}
	var tampered []Entry
	if err := s.ForEach(func(e Entry) error {
		if e.Tampered {
			tampered = append(tampered, e)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(tampered) != 1 || tampered[0].Position != victim.Position() || !errors.Is(tampered[0].Err, ErrTampered) {
		t.Errorf("ForEach tampered = %+v; want the victim", tampered)
	}
	// A tampered record is absent for writes too: even an older version
	// replaces it (repair), and it reads back intact.
	old := rec("victim", 1)
	if stored, err := s.Put(context.Background(), old); err != nil || !stored {
		t.Errorf("Put over tampered = %v, %v; want true, nil", stored, err)
	}
	if got, err := s.Get(victim.Key); err != nil || !sameRecord(got, old) {
		t.Errorf("Get after repair = %+v, %v", got, err)
	}
}
