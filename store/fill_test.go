package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Environment of the fill tool (scripts/mem-1m.sh): not a test, a way to
// build a large data directory through the store's own write path.
const (
	fillDirEnv     = "DURACHORD_FILL_DIR"
	fillRecordsEnv = "DURACHORD_FILL_RECORDS"
	fillValueEnv   = "DURACHORD_FILL_VALUE_BYTES"
)

// TestFill writes DURACHORD_FILL_RECORDS primary records (default 1M) of
// DURACHORD_FILL_VALUE_BYTES (default 100) into the data directory
// DURACHORD_FILL_DIR, live for 12 hours, through PutAll in batches of
// 65,536. Keys are chosen so that positions are written in ring order,
// which keeps each batch on adjacent pages: a million records take seconds
// instead of minutes. Without DURACHORD_FILL_DIR it skips.
func TestFill(t *testing.T) {
	dir := os.Getenv(fillDirEnv)
	if dir == "" {
		t.Skip(fillDirEnv + " not set: the fill tool runs only when asked (scripts/mem-1m.sh)")
	}
	n := envInt(t, fillRecordsEnv, 1_000_000)
	size := envInt(t, fillValueEnv, 100)
	const batch = 1 << 16
	cfg := DefaultConfig()
	cfg.MaxBatch = batch
	s, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}()

	type keyed struct {
		key [32]byte
		pos Position
	}
	keys := make([]keyed, n)
	for i := range keys {
		var k [32]byte
		binary.BigEndian.PutUint64(k[:], uint64(i))
		k = sha256.Sum256(k[:])
		keys[i] = keyed{key: k, pos: PositionOf(k)}
	}
	slices.SortFunc(keys, func(a, b keyed) int { return bytes.Compare(a.pos[:], b.pos[:]) })

	value := bytes.Repeat([]byte{'v'}, size)
	expiry := time.Now().Add(12 * time.Hour)
	recs := make([]Record, 0, batch)
	start := time.Now()
	for i := 0; i < n; i += batch {
		recs = recs[:0]
		for _, k := range keys[i:min(i+batch, n)] {
			recs = append(recs, Record{Key: k.key, Value: value, Expiry: expiry,
				Version: Version{Clock: 1, Node: 1}, Primary: true, Replication: 1})
		}
		if _, err := s.PutAll(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("wrote %d records of %d bytes in %s", n, size, time.Since(start).Round(time.Millisecond))
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
