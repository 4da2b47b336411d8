package dht

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/durachord/durachord/chord/chordtest"
	"github.com/durachord/durachord/store"
)

// BenchmarkWarmGet reads records through a node that holds no copy of them,
// on a frozen in-memory ring of 12 nodes (every call encoded and decoded as
// JSON), once the node has read each of them before.
func BenchmarkWarmGet(b *testing.B) {
	r := newRing(b, 12)
	r.putAll(256, 1, 1)
	r.freeze()
	entry := r.members[0]
	ctx := context.Background()
	keys := warmRemoteKeys(b, entry, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := entry.svc.Get(ctx, keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetOwnerOutOfSync is the cost of reads that never go back in
// time: GETs through a node that holds no copy, answered by owners in sync
// (one call) and by owners out of sync (which also ask their first two
// successors, in parallel), on a frozen in-memory ring of 8 nodes with 1 ms
// of one-way latency on every call.
func BenchmarkGetOwnerOutOfSync(b *testing.B) {
	for _, inSync := range []bool{true, false} {
		name := "owner=in-sync"
		if !inSync {
			name = "owner=out-of-sync"
		}
		b.Run(name, func(b *testing.B) {
			r := newRingOn(b, 8, chordtest.Config{Latency: time.Millisecond}, nil)
			r.putAll(128, 1, 3)
			r.freeze()
			if !inSync {
				for _, m := range r.members {
					m.svc.fresh.gen.Add(1) // out of sync until a round: none runs
				}
			}
			entry := r.members[0]
			ctx := context.Background()
			keys := warmRemoteKeys(b, entry, 128)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := entry.svc.Get(ctx, keys[i%len(keys)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// warmRemoteKeys returns the keys among the first n that entry holds no copy
// of, each read through entry once (its caches know their owners).
func warmRemoteKeys(b *testing.B, entry *member, n int) [][32]byte {
	b.Helper()
	var keys [][32]byte
	for i := range n {
		if _, err := entry.db.Get(key(i)); errors.Is(err, store.ErrNotFound) {
			keys = append(keys, key(i))
		}
	}
	for _, k := range keys {
		if _, err := entry.svc.Get(context.Background(), k); err != nil {
			b.Fatal(err)
		}
	}
	return keys
}
