package dht

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/durachord/durachord/store"
)

// TestEntryRemembersItsPuts: right after a PUT through a node, a GET through
// the same node answers that PUT's value even when the node it reaches
// answers an older copy (as a node that believes for a moment that it still
// owns the key would); a GET through another node gets what the ring holds.
func TestEntryRemembersItsPuts(t *testing.T) {
	r := newRing(t, 4)
	r.freeze()
	entry := r.members[0]
	k := key(7)
	ctx := context.Background()
	if err := entry.svc.Put(ctx, k, []byte("acknowledged"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	r.quiesce()
	// Every copy replaced by an older one.
	old := store.Record{Key: k, Value: []byte("older"), Expiry: time.Now().Add(time.Hour), Replication: 3,
		Version: store.Version{Clock: 1, Node: 1}}
	for _, m := range r.members {
		if err := m.db.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
		if _, err := m.db.Put(ctx, old); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := entry.svc.Get(ctx, k); err != nil || !bytes.Equal(got, []byte("acknowledged")) {
		t.Fatalf("Get through the entry = %q, %v; want the PUT it acknowledged", got, err)
	}
	other := r.members[1]
	if got, err := other.svc.Get(ctx, k); err != nil || !bytes.Equal(got, []byte("older")) {
		t.Fatalf("Get through another node = %q, %v; want what the ring holds", got, err)
	}
	// A newer write through another node wins at the entry too.
	if err := other.svc.Put(ctx, k, []byte("newer"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	if got, err := entry.svc.Get(ctx, k); err != nil || !bytes.Equal(got, []byte("newer")) {
		t.Fatalf("Get through the entry after a newer PUT elsewhere = %q, %v; want %q", got, err, "newer")
	}
}

// TestRecentPutsBounded: the memory keeps at most its bytes, forgets what
// is older than recentFor, and never goes back to an older version.
func TestRecentPutsBounded(t *testing.T) {
	r := newRecentPuts()
	now := time.Now()
	big := store.Record{Key: key(1), Value: make([]byte, recentMaxBytes), Expiry: now.Add(time.Hour), Version: store.Version{Clock: 5}}
	r.note(big, now)
	small := store.Record{Key: key(2), Value: []byte("x"), Expiry: now.Add(time.Hour), Version: store.Version{Clock: 5}}
	r.note(small, now)
	if _, ok := r.newer(key(2), store.Version{}, false, now, now); ok {
		t.Fatal("a PUT over the byte bound was remembered")
	}
	if _, ok := r.newer(key(1), store.Version{}, false, now.Add(recentFor), now); ok {
		t.Fatal("a PUT older than recentFor was still remembered")
	}
	r.note(small, now)
	older := small
	older.Version = store.Version{Clock: 4}
	older.Value = []byte("older")
	r.note(older, now)
	if got, ok := r.newer(key(2), store.Version{Clock: 1}, true, now, now); !ok || string(got.Value) != "x" {
		t.Fatalf("newer = %q, %v; want the newest PUT remembered", got.Value, ok)
	}
}
