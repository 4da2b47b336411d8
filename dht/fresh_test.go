package dht

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// behindOwner is a frozen ring of 4 where key k's owner holds an old copy and
// its first successor a newer one, written (as while the owner was away)
// with a clock 30 s ahead; the owner is then marked out of sync.
func behindOwner(t *testing.T) (r *ring, owner, succ, entry *member, k [32]byte, newer store.Record) {
	t.Helper()
	r = newRing(t, 4)
	r.freeze()
	ms := r.sorted()
	owner, succ, entry = ms[0], ms[1], ms[2]
	k = ownedBy(owner)
	ctx := context.Background()
	if err := entry.svc.Put(ctx, k, []byte("old"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	r.quiesce()
	newer = store.Record{Key: k, Value: []byte("newer"), Expiry: time.Now().Add(time.Hour), Replication: 3,
		Version: store.Version{Clock: uint64(time.Now().Add(30 * time.Second).UnixNano()), Node: 9}}
	if _, err := succ.db.Put(ctx, newer); err != nil {
		t.Fatal(err)
	}
	owner.svc.fresh.gen.Add(1) // as after a gap or a restart
	return r, owner, succ, entry, k, newer
}

// TestOwnerOutOfSyncReadsSuccessors: an owner that is not in sync with its
// holders answers a GET with the newest copy among itself and its first
// successors, keeps it, and answers from its own records alone again once a
// maintenance round has synced it.
func TestOwnerOutOfSyncReadsSuccessors(t *testing.T) {
	_, owner, _, entry, k, _ := behindOwner(t)
	ctx := context.Background()
	got, err := entry.svc.Get(ctx, k)
	if err != nil || !bytes.Equal(got, []byte("newer")) {
		t.Fatalf("Get through another node = %q, %v; want the successor's newer copy", got, err)
	}
	if rec, err := owner.db.Get(k); err != nil || !bytes.Equal(rec.Value, []byte("newer")) || !rec.Primary {
		t.Errorf("owner keeps %q (primary %v), %v; want the newer copy as its primary", rec.Value, rec.Primary, err)
	}
	if owner.svc.fresh.inSync() {
		t.Fatal("owner in sync before any round")
	}
	if err := owner.svc.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if !owner.svc.fresh.inSync() {
		t.Fatal("owner still out of sync after a completed round")
	}
}

// TestOwnerOutOfSyncVersionsAboveSuccessors: a PUT at an owner out of sync
// is versioned above the newest version among its first successors, so that
// it does not lose to the copy written while the owner was away, even with
// that copy's clock 30 s ahead of the owner's.
func TestOwnerOutOfSyncVersionsAboveSuccessors(t *testing.T) {
	r, owner, succ, entry, k, newer := behindOwner(t)
	ctx := context.Background()
	if err := entry.svc.Put(ctx, k, []byte("latest"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	r.quiesce()
	for _, m := range []*member{owner, succ} {
		rec, err := m.db.Get(k)
		if err != nil || !bytes.Equal(rec.Value, []byte("latest")) || rec.Version.Compare(newer.Version) <= 0 {
			t.Errorf("%s holds %q at %v, %v; want %q above %v", m.info.Addr, rec.Value, rec.Version, err, "latest", newer.Version)
		}
	}
}

// TestGapMeansOutOfSync: a stretch longer than gapLimit between two notes
// of the watch (the node was frozen or starved) puts the node out of sync,
// and is seen even before the watch notes it.
func TestGapMeansOutOfSync(t *testing.T) {
	f := newFreshness(false)
	f.note()
	f.synced.Store(f.gen.Load())
	if !f.inSync() {
		t.Fatal("not in sync right after a note")
	}
	f.beat.Store(f.since() - int64(2*gapLimit))
	if f.inSync() {
		t.Fatal("in sync with the last note 2 gap limits ago")
	}
	if !f.note() {
		t.Fatal("note after a gap did not report it")
	}
	if f.inSync() {
		t.Fatal("in sync after a gap, before a round")
	}
}

// TestArcGrowthMeansOutOfSync: when a node's predecessor dies its arc grows,
// and for the grown part a write acknowledged on the old owner and the
// second holder may be newer than its own copy: until a round syncs it, it
// serves and versions those keys with its successors' copies.
func TestArcGrowthMeansOutOfSync(t *testing.T) {
	r := newRing(t, 5)
	ms := r.sorted()
	old, heir, second := ms[0], ms[1], ms[2]
	k := ownedBy(old)
	ctx := context.Background()
	if err := old.svc.Put(ctx, k, []byte("v1"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	r.quiesce()
	// v2 acknowledged on the old owner and the second holder only.
	v2 := store.Record{Key: k, Value: []byte("v2"), Expiry: time.Now().Add(time.Hour), Replication: 3,
		Version: store.Version{Clock: uint64(time.Now().Add(time.Second).UnixNano()), Node: 5}}
	for _, m := range []*member{old, second} {
		if _, err := m.db.Put(ctx, v2); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(10 * time.Second); !heir.svc.fresh.inSync(); {
		if time.Now().After(deadline) {
			t.Fatal("the heir is not in sync 10 s after the ring formed")
		}
		_ = heir.svc.Maintain(ctx) // the members' rounds run only when called here
		time.Sleep(20 * time.Millisecond)
	}
	heir.svc.maintainMu.Lock() // no round syncs the heir meanwhile
	locked := true
	defer func() {
		if locked {
			heir.svc.maintainMu.Unlock()
		}
	}()
	r.kill(old)
	deadline := time.Now().Add(10 * time.Second)
	for !heir.node.Owns(chord.KeyPosition(k)) {
		if time.Now().After(deadline) {
			t.Fatal("the heir did not take the dead owner's arc")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if heir.svc.fresh.inSync() {
		t.Fatal("the heir counts as in sync right after its arc grew")
	}
	got, err := ms[3].svc.Get(ctx, k)
	if err != nil || !bytes.Equal(got, []byte("v2")) {
		t.Fatalf("Get through another node = %q, %v; want v2, acknowledged before the owner died", got, err)
	}
	heir.svc.maintainMu.Unlock()
	locked = false
}

// TestArrivalAfterGap: a request read while a gap is not yet noted, or just
// after it was, counts as arrived at the gap's start; one read later counts
// as arrived when it was read.
func TestArrivalAfterGap(t *testing.T) {
	f := newFreshness(true)
	start := time.Now()
	f.beat.Store(int64(start.Sub(f.epoch)))
	at := start.Add(5 * time.Second) // the node did not run for 5 s
	if got := f.arrival(at); !got.Equal(f.epoch.Add(time.Duration(f.beat.Load()))) {
		t.Errorf("arrival during an unnoted gap = %v; want the last note before it", got.Sub(start))
	}
	f.gapFrom.Store(int64(start.Sub(f.epoch)))
	f.gapTo.Store(int64(at.Sub(f.epoch)))
	f.beat.Store(int64(at.Sub(f.epoch)))
	if got := f.arrival(at.Add(resumeWindow / 2)); got.Sub(start).Abs() > time.Millisecond {
		t.Errorf("arrival just after a noted gap = %v after its start; want its start", got.Sub(start))
	}
	f.beat.Store(int64(at.Add(resumeWindow).Sub(f.epoch)))
	later := at.Add(2 * resumeWindow)
	if got := f.arrival(later); !got.Equal(later) {
		t.Errorf("arrival well after the gap = %v; want the time it was read", got.Sub(later))
	}
}

// TestLatePutAfterGapRefused: a dht.put that an owner reads just after it
// ran again from a gap longer than the caller's time is refused as
// overloaded and versions nothing: the caller has given up on it and sent it
// elsewhere, and a version taken now would go above the writes since.
func TestLatePutAfterGapRefused(t *testing.T) {
	r := newRing(t, 3)
	r.freeze()
	entry := r.members[0]
	var owner *member
	var k [32]byte
	for i := 0; owner == nil; i++ {
		k = key(i)
		for _, m := range r.members[1:] {
			if m.node.Owns(chord.KeyPosition(k)) {
				owner = m
			}
		}
	}
	// The owner's last note is 5 s old: it has just run again.
	owner.svc.fresh.beat.Store(owner.svc.fresh.since() - int64(5*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a := putArgs{Key: chord.ID(k), Value: []byte("late"), Expiry: time.Now().Add(time.Hour).UnixNano(), Replication: 1}
	err := r.net.Transport(entry.info).Call(ctx, owner.info, methodPut, a, nil)
	if !errors.Is(err, chord.ErrOverloaded) {
		t.Fatalf("dht.put read after a 5 s gap with 2 s to go = %v; want %v", err, chord.ErrOverloaded)
	}
	if _, err := owner.db.Get(k); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("owner stored the late put: %v", err)
	}
	owner.svc.fresh.note() // ran again: notes the gap; after the window, puts go in
	owner.svc.fresh.beat.Store(owner.svc.fresh.since())
	owner.svc.fresh.gapTo.Store(owner.svc.fresh.since() - int64(2*resumeWindow))
	if err := r.net.Transport(entry.info).Call(ctx, owner.info, methodPut, a, nil); err != nil {
		t.Fatalf("dht.put well after the gap = %v; want it stored", err)
	}
}
