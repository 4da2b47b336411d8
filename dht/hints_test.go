package dht

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/durachord/durachord/store"
)

// hintRing is a frozen ring of 4 (views stay as they are) and a key owned
// by the entry's successor: with the owner out of reach, no other node takes
// the key over (the entry is not the owner's successor, the owner's
// successors still see it as their predecessor).
func hintRing(t *testing.T) (r *ring, entry, owner *member, k [32]byte) {
	t.Helper()
	r = newRing(t, 4)
	r.freeze()
	entry = r.members[0]
	owner = r.member(entry.node.Successors()[0].ID)
	return r, entry, owner, ownedBy(owner)
}

// TestHintKeepsPutWhileOwnerUnreachable: a PUT whose owner cannot be
// reached before the request's deadline is kept by the entry node as a hint
// (the PUT succeeds), a GET through the entry node sees it, and once the
// owner answers again the hint is delivered, stored by the owner, and gone.
func TestHintKeepsPutWhileOwnerUnreachable(t *testing.T) {
	r, entry, owner, k := hintRing(t)
	r.net.Down(owner.info.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	err := entry.svc.Put(ctx, k, []byte("hinted"), time.Hour, 3)
	cancel()
	if err != nil {
		t.Fatalf("Put with the owner unreachable = %v; want it kept as a hint", err)
	}
	if n, _ := entry.db.HintCount(); n != 1 {
		t.Fatalf("entry keeps %d hints; want 1", n)
	}
	got, err := entry.svc.Get(context.Background(), k)
	if err != nil || !bytes.Equal(got, []byte("hinted")) {
		t.Fatalf("Get through the entry node = %q, %v; want the hinted value", got, err)
	}
	if left := entry.svc.DeliverHints(context.Background()); left != 1 {
		t.Fatalf("DeliverHints with the owner still unreachable left %d hints; want 1", left)
	}
	r.net.Up(owner.info.Addr)
	if left := entry.svc.DeliverHints(context.Background()); left != 0 {
		t.Fatalf("DeliverHints with the owner back left %d hints; want 0", left)
	}
	rec, err := owner.db.Get(k)
	if err != nil || !bytes.Equal(rec.Value, []byte("hinted")) || !rec.Primary {
		t.Fatalf("owner holds %+v, %v; want the hinted value as its primary copy", rec, err)
	}
	got, err = entry.svc.Get(context.Background(), k)
	if err != nil || !bytes.Equal(got, []byte("hinted")) {
		t.Fatalf("Get after delivery = %q, %v; want the delivered value", got, err)
	}
}

// TestHintSupersededByLaterPut: a hint is never delivered over a version
// the owner took after the hinted PUT, and a later PUT through the same
// entry node that reaches the owner removes the hint, so that GETs there do
// not answer from it.
func TestHintSupersededByLaterPut(t *testing.T) {
	r, entry, owner, k := hintRing(t)
	other := r.members[1]
	if other == owner {
		other = r.members[2]
	}
	ctx := context.Background()
	r.net.Down(owner.info.Addr)
	tctx, cancel := context.WithTimeout(ctx, time.Second)
	if err := entry.svc.Put(tctx, k, []byte("old"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	cancel()
	r.net.Up(owner.info.Addr)
	if err := other.svc.Put(ctx, k, []byte("new"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	if left := entry.svc.DeliverHints(ctx); left != 0 {
		t.Fatalf("DeliverHints left %d hints; want 0", left)
	}
	if rec, err := owner.db.Get(k); err != nil || !bytes.Equal(rec.Value, []byte("new")) {
		t.Fatalf("owner holds %q, %v after the old hint was delivered; want %q", rec.Value, err, "new")
	}

	// A hint, then a later PUT through the same entry that reaches the owner.
	r.net.Down(owner.info.Addr)
	tctx, cancel = context.WithTimeout(ctx, time.Second)
	if err := entry.svc.Put(tctx, k, []byte("hinted-2"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	cancel()
	r.net.Up(owner.info.Addr)
	if err := entry.svc.Put(ctx, k, []byte("direct"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	if n, _ := entry.db.HintCount(); n != 0 {
		t.Errorf("entry keeps %d hints after a later PUT reached the owner; want 0", n)
	}
	if got, err := entry.svc.Get(ctx, k); err != nil || !bytes.Equal(got, []byte("direct")) {
		t.Errorf("Get through the entry = %q, %v; want %q", got, err, "direct")
	}
}

// TestHintsBounded: with no room for hints a PUT whose owner is unreachable
// fails as before.
func TestHintsBounded(t *testing.T) {
	r, entry, owner, k := hintRing(t)
	entry.svc.cfg.MaxHints = 0
	r.net.Down(owner.info.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := entry.svc.Put(ctx, k, []byte("v"), time.Hour, 3); err == nil {
		t.Fatal("Put with the owner unreachable and no room for hints succeeded; want an error")
	}
	if n, _ := entry.db.HintCount(); n != 0 {
		t.Errorf("entry keeps %d hints; want 0", n)
	}
}

// TestLaterHintWinsWhateverTheDeliveryOrder: two entry nodes keep hints of
// one key, taken at t1 and t2 > t1; the older is delivered first. The owner
// keeps the time a hint was taken as its version, so the newer hint still
// goes in after it: newer wins by when the PUT was taken.
func TestLaterHintWinsWhateverTheDeliveryOrder(t *testing.T) {
	r, entry, owner, k := hintRing(t)
	other := r.members[1]
	if other == owner {
		other = r.members[2]
	}
	ctx := context.Background()
	t1 := time.Now().Add(-2 * time.Second)
	t2 := t1.Add(time.Second)
	for _, h := range []struct {
		m  *member
		v  string
		at time.Time
	}{{entry, "older", t1}, {other, "newer", t2}} {
		rec := store.Record{Key: k, Value: []byte(h.v), Expiry: time.Now().Add(time.Hour), Replication: 3,
			Version: store.Version{Clock: uint64(h.at.UnixNano())}}
		if err := h.m.db.PutHint(ctx, rec, 10, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	if left := entry.svc.DeliverHints(ctx); left != 0 {
		t.Fatalf("%d hints left at the first entry", left)
	}
	if left := other.svc.DeliverHints(ctx); left != 0 {
		t.Fatalf("%d hints left at the second entry", left)
	}
	if rec, err := owner.db.Get(k); err != nil || !bytes.Equal(rec.Value, []byte("newer")) {
		t.Fatalf("owner holds %q, %v; want the hint taken last", rec.Value, err)
	}
}

// TestHintDeliveredToItselfIsSuperseded: a node that keeps a hint of a key
// and has since become its owner does not let the hint overwrite a version
// written after the hint was taken.
func TestHintDeliveredToItselfIsSuperseded(t *testing.T) {
	r := newRing(t, 3)
	r.freeze()
	m := r.members[0]
	k := ownedBy(m)
	ctx := context.Background()
	taken := time.Now().Add(-time.Second)
	if err := m.svc.Put(ctx, k, []byte("written later"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	old := store.Record{Key: k, Value: []byte("hinted earlier"), Expiry: time.Now().Add(time.Hour), Replication: 3,
		Version: store.Version{Clock: uint64(taken.UnixNano())}}
	if err := m.db.PutHint(ctx, old, 10, 1<<20); err != nil {
		t.Fatal(err)
	}
	if left := m.svc.DeliverHints(ctx); left != 0 {
		t.Fatalf("%d hints left", left)
	}
	if rec, err := m.db.Get(k); err != nil || !bytes.Equal(rec.Value, []byte("written later")) {
		t.Fatalf("owner holds %q, %v; want the write made after the hint was taken", rec.Value, err)
	}
}

// TestDeliveredHintStillReadThroughEntry: once a hint is delivered, GETs
// through the entry node no longer answer it from the hint store but from
// the ring; a node that answers an older copy then (one that only believes
// it owns the key, or that has not synced yet) does not take the entry
// node's GETs back in time, while a write newer than the hint answers.
func TestDeliveredHintStillReadThroughEntry(t *testing.T) {
	r, entry, owner, k := hintRing(t)
	ctx := context.Background()
	r.net.Down(owner.info.Addr)
	tctx, cancel := context.WithTimeout(ctx, time.Second)
	err := entry.svc.Put(tctx, k, []byte("hinted"), time.Hour, 3)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	r.net.Up(owner.info.Addr)
	if left := entry.svc.DeliverHints(ctx); left != 0 {
		t.Fatalf("DeliverHints left %d hints; want 0", left)
	}
	// The owner answers a copy from before the hint.
	if err := owner.db.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	stale := store.Record{Key: k, Value: []byte("before the hint"), Expiry: time.Now().Add(time.Hour), Primary: true,
		Replication: 3, Version: store.Version{Clock: uint64(time.Now().Add(-time.Minute).UnixNano()), Node: 1}}
	if _, err := owner.db.Put(ctx, stale); err != nil {
		t.Fatal(err)
	}
	if got, err := entry.svc.Get(ctx, k); err != nil || !bytes.Equal(got, []byte("hinted")) {
		t.Fatalf("Get through the entry node after delivery, the owner answering an older copy = %q, %v; want %q", got, err, "hinted")
	}
	other := r.members[1]
	if other == owner {
		other = r.members[2]
	}
	if err := other.svc.Put(ctx, k, []byte("written later"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	if got, err := entry.svc.Get(ctx, k); err != nil || !bytes.Equal(got, []byte("written later")) {
		t.Fatalf("Get through the entry node after a later PUT elsewhere = %q, %v; want %q", got, err, "written later")
	}
}

// TestHintKeepsPutWhenEntryOwnsItShortOfQuorum: the entry node is the key's
// owner and cannot get the record onto its write quorum before the request's
// deadline (its replica holders are out of reach). The PUT is kept as a
// hint, as a PUT to an unreachable owner is: it counts as done, and a GET
// through the entry answers it, not the value before it, which is all the
// owner serves while the new version is short of its quorum. Once the
// holders answer again the hint is delivered and the owner serves it.
func TestHintKeepsPutWhenEntryOwnsItShortOfQuorum(t *testing.T) {
	r := newRing(t, 4)
	r.freeze()
	entry := r.members[0]
	k := ownedBy(entry)
	ctx := context.Background()
	if err := entry.svc.Put(ctx, k, []byte("before"), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	hs := holders(entry.info, entry.node.Successors(), 3)
	for _, h := range hs {
		r.net.Down(h.Addr)
	}
	tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := entry.svc.Put(tctx, k, []byte("after"), time.Hour, 3)
	cancel()
	if err != nil {
		t.Fatalf("Put at the owner with its holders %v unreachable = %v; want it kept as a hint", hs, err)
	}
	if n, _ := entry.db.HintCount(); n != 1 {
		t.Fatalf("entry keeps %d hints; want 1", n)
	}
	if got, err := entry.svc.Get(ctx, k); err != nil || !bytes.Equal(got, []byte("after")) {
		t.Fatalf("Get through the entry after the PUT = %q, %v; want %q", got, err, "after")
	}
	for _, h := range hs {
		r.net.Up(h.Addr)
	}
	if left := entry.svc.DeliverHints(ctx); left != 0 {
		t.Fatalf("DeliverHints with the holders back left %d hints; want 0", left)
	}
	if got, err := entry.svc.Get(ctx, k); err != nil || !bytes.Equal(got, []byte("after")) {
		t.Fatalf("Get through the entry after delivery = %q, %v; want %q", got, err, "after")
	}
	r.quiesce() // the push to the holder beyond the quorum goes on in the background
	for _, h := range hs {
		if rec, err := r.member(h.ID).db.Get(k); err != nil || !bytes.Equal(rec.Value, []byte("after")) {
			t.Errorf("holder %v holds %q, %v; want %q", h, rec.Value, err, "after")
		}
	}
}
