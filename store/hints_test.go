package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestHints: a hint replaces the earlier one of its key, is read back,
// listed in pages, deleted only at its own version, bounded by count and
// bytes, and its counts survive a restart.
func TestHints(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir, nil)
	ctx := context.Background()
	for i := range 10 {
		if err := s.PutHint(ctx, rec(fmt.Sprint(i), 100), 10, 1<<20); err != nil {
			t.Fatalf("PutHint(%d) = %v", i, err)
		}
	}
	// Full by count; a replacement still goes in.
	if err := s.PutHint(ctx, rec("10", 100), 10, 1<<20); !errors.Is(err, ErrHintsFull) {
		t.Fatalf("PutHint over the count = %v; want %v", err, ErrHintsFull)
	}
	newer := rec("3", 200)
	newer.Value = []byte("replaced")
	if err := s.PutHint(ctx, newer, 10, 1<<20); err != nil {
		t.Fatalf("PutHint replacing a hint = %v", err)
	}
	if n, _ := s.HintCount(); n != 10 {
		t.Fatalf("HintCount = %d; want 10", n)
	}
	h, err := s.GetHint(testKey("3"))
	if err != nil || string(h.Value) != "replaced" || h.Version.Clock != 200 || h.Primary {
		t.Fatalf("GetHint = %+v, %v; want the replacement, not primary", h, err)
	}
	if _, err := s.Get(testKey("3")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a key with only a hint = %v; want ErrNotFound (hints are not records)", err)
	}
	// Paged listing sees each hint once.
	seen := map[[32]byte]bool{}
	var after *Position
	for {
		page, next, err := s.Hints(after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range page {
			if seen[h.Key] {
				t.Fatalf("hint %x listed twice", h.Key[:4])
			}
			seen[h.Key] = true
		}
		if next == nil {
			break
		}
		after = next
	}
	if len(seen) != 10 {
		t.Fatalf("Hints listed %d hints; want 10", len(seen))
	}
	// Deleting at an older version keeps the newer hint.
	if err := s.DeleteHint(testKey("3"), Version{Clock: 100, Node: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetHint(testKey("3")); err != nil {
		t.Fatalf("DeleteHint at an older version removed the newer hint: %v", err)
	}
	if err := s.DeleteHint(testKey("3"), Version{Clock: 200, Node: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetHint(testKey("3")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetHint after DeleteHint = %v; want ErrNotFound", err)
	}
	_, bytes := s.HintCount()
	// Full by bytes.
	big := rec("big", 1)
	big.Value = make([]byte, 100)
	if err := s.PutHint(ctx, big, 100, bytes+99); !errors.Is(err, ErrHintsFull) {
		t.Fatalf("PutHint over the bytes = %v; want %v", err, ErrHintsFull)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTest(t, dir, nil)
	if n, b := s.HintCount(); n != 9 || b != bytes {
		t.Errorf("after a restart HintCount = %d, %d; want 9, %d", n, b, bytes)
	}
}
