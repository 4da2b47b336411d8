package dht

import (
	"context"
	"errors"
	"testing"

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
	var keys [][32]byte
	for i := range 256 {
		if _, err := entry.db.Get(key(i)); errors.Is(err, store.ErrNotFound) {
			keys = append(keys, key(i))
		}
	}
	for _, k := range keys {
		if _, err := entry.svc.Get(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := entry.svc.Get(ctx, keys[i%len(keys)]); err != nil {
			b.Fatal(err)
		}
	}
}
