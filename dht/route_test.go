package dht

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
)

// calls counts the calls on the ring's network, apart: lookup hops, the
// requests of GETs and PUTs, and replica pushes.
type calls struct{ find, get, put, store uint64 }

func (r *ring) calls() calls {
	return calls{
		find:  r.net.CallsOf("chord.find_successor"),
		get:   r.net.CallsOf(methodGet),
		put:   r.net.CallsOf(methodPut),
		store: r.net.CallsOf(methodStore),
	}
}

func (c calls) since(o calls) calls {
	return calls{find: c.find - o.find, get: c.get - o.get, put: c.put - o.put, store: c.store - o.store}
}

// sorted returns the members in ring order.
func (r *ring) sorted() []*member {
	ms := slices.Clone(r.members)
	slices.SortFunc(ms, func(a, b *member) int { return a.info.ID.Cmp(b.info.ID) })
	return ms
}

// TestWarmRingOneCallPerOperation: once a node has routed to every owner,
// each of its GETs and PUTs is one call to the owner (none when it owns the
// key itself), with no lookup before it; the owner's replica pushes come on
// top of a PUT.
func TestWarmRingOneCallPerOperation(t *testing.T) {
	const keys = 60
	r := newRing(t, chord.DefaultConfig().SuccessorListLen+4) // some owners beyond the entry's successor list
	entry := r.members[0]
	ctx := context.Background()
	for i := range keys {
		if err := entry.svc.Put(ctx, key(i), value(i, 1), time.Hour, 3); err != nil {
			t.Fatalf("Put(key-%d) = %v", i, err)
		}
	}
	r.freeze()  // no rounds: every call on the network is the operation's
	r.quiesce() // and the pushes of the PUTs above have all landed
	for i := range keys {
		want := uint64(1)
		if entry.node.Owns(chord.KeyPosition(key(i))) {
			want = 0
		}
		before := r.calls()
		got, err := entry.svc.Get(ctx, key(i))
		c := r.calls().since(before)
		if err != nil || !bytes.Equal(got, value(i, 1)) {
			t.Fatalf("Get(key-%d) = %q, %v; want %q", i, got, err, value(i, 1))
		}
		if c.find != 0 || c.get != want || c.put != 0 {
			t.Errorf("Get(key-%d) made %+v calls; want %d dht.get and nothing else", i, c, want)
		}
		before = r.calls()
		if err := entry.svc.Put(ctx, key(i), value(i, 2), time.Hour, 3); err != nil {
			t.Fatalf("Put(key-%d) = %v", i, err)
		}
		c = r.calls().since(before)
		if c.find != 0 || c.get != 0 || c.put != want {
			t.Errorf("Put(key-%d) made %+v calls; want %d dht.put and no lookup", i, c, want)
		}
		// The put is acknowledged on its write quorum; the push to the
		// last holder may still be on its way.
		r.quiesce()
		if c = r.calls().since(before); c.store != 2 {
			t.Errorf("Put(key-%d) made %d replica pushes; want 2", i, c.store)
		}
		// A key nobody holds: the owner says so, and its two nearest
		// successors are asked too (a handoff may be in progress), but
		// the owner is no suspect and nothing is looked up.
		absent := key(keys + i)
		before = r.calls()
		if got, err := entry.svc.Get(ctx, absent); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(absent %x) = %q, %v; want %v", absent, got, err, ErrNotFound)
		}
		if c := r.calls().since(before); c.find != 0 || c.get > 3 {
			t.Errorf("Get(absent %x) made %+v calls; want no lookup and at most 3 dht.get", absent, c)
		}
	}
}

// TestRoutedAfterJoin: a node whose owner cache still names the old owner of
// a key after a node joined between the key and that owner sends its GET or
// PUT there, is referred to the newcomer and reaches it without a lookup;
// the PUT lands on the newcomer as the primary copy, and every node reads it.
func TestRoutedAfterJoin(t *testing.T) {
	n := chord.DefaultConfig().SuccessorListLen + 6
	r := newRing(t, n)
	entry := r.members[0]
	ms := r.sorted()
	i := slices.Index(ms, entry)
	ctx := context.Background()
	// Two of the arcs that end at the 3rd, 4th and 5th node before the
	// entry: beyond its successor list, and the entry holds no copies of
	// their records (replication 3). A newcomer joins in each, one for the
	// GET and one for the PUT.
	type arc struct {
		k        [32]byte
		seq      int
		newcomer *member
	}
	var arcs []arc
	seq := r.seq
	for back := 3; back <= 5 && len(arcs) < 2; back++ {
		pred, old := ms[(i-back-1+n)%n], ms[(i-back+n)%n]
		k, s, ok := keyAndNewcomer(seq, pred.info.ID, old.info.ID)
		if !ok {
			continue // too short an arc for the IDs the ring can make
		}
		seq = s
		j := len(arcs)
		if err := entry.svc.Put(ctx, k, value(j, 1), time.Hour, 3); err != nil {
			t.Fatal(err)
		}
		if got, err := entry.svc.Get(ctx, k); err != nil || !bytes.Equal(got, value(j, 1)) {
			t.Fatalf("Get(%x) = %q, %v; want %q", k, got, err, value(j, 1))
		}
		arcs = append(arcs, arc{k: k, seq: s})
	}
	if len(arcs) < 2 {
		t.Fatalf("set-up: newcomers for %d arcs; want 2", len(arcs))
	}
	// The entry's cache knows both arcs before either newcomer joins.
	for j := range arcs {
		r.seq = arcs[j].seq - 1
		arcs[j].newcomer = r.add(true)
	}
	r.waitStable()
	// The newcomers take their arcs' records over. The entry runs no round:
	// its lookups would learn the new arcs, and its cache is to stay stale.
	for range 4 {
		for _, m := range r.live() {
			if m != entry {
				if err := m.svc.Maintain(ctx); err != nil {
					t.Logf("maintain %v: %v", m.info, err)
				}
			}
		}
	}
	r.freeze()
	for _, a := range arcs {
		if !a.newcomer.node.Owns(chord.KeyPosition(a.k)) {
			t.Fatalf("set-up: newcomer %v does not own %x", a.newcomer.info, a.k)
		}
	}

	k := arcs[0].k
	before := r.calls()
	if got, err := entry.svc.Get(ctx, k); err != nil || !bytes.Equal(got, value(0, 1)) {
		t.Fatalf("Get(%x) after the join = %q, %v; want %q", k, got, err, value(0, 1))
	}
	if c := r.calls().since(before); c.find != 0 || c.get != 2 {
		t.Errorf("Get(%x) after the join made %+v calls; want 2 dht.get (old owner, newcomer), no lookup", k, c)
	}

	k, newcomer := arcs[1].k, arcs[1].newcomer
	before = r.calls()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := entry.svc.Put(pctx, k, value(1, 2), time.Hour, 3); err != nil {
		t.Fatalf("Put(%x) after the join = %v", k, err)
	}
	if c := r.calls().since(before); c.find != 0 || c.put != 2 {
		t.Errorf("Put(%x) after the join made %+v calls; want 2 dht.put (old owner, newcomer), no lookup", k, c)
	}
	if rec, err := newcomer.db.Get(k); err != nil || !rec.Primary || !bytes.Equal(rec.Value, value(1, 2)) {
		t.Fatalf("newcomer holds %q (primary %v), %v; want the put, primary", rec.Value, rec.Primary, err)
	}
	for _, m := range r.members {
		if got, err := m.svc.Get(ctx, k); err != nil || !bytes.Equal(got, value(1, 2)) {
			t.Errorf("Get(%x) via %v = %q, %v; want %q", k, m.info, got, err, value(1, 2))
		}
	}
}

// keyAndNewcomer finds a key whose position lies in (from, to) and a member
// sequence number above after whose node ID lies between that position and
// to: a newcomer with it takes the key over from to.
func keyAndNewcomer(after int, from, to chord.ID) ([32]byte, int, bool) {
	for seq := after + 1; seq < 256; seq++ {
		id := chord.KeyPosition([32]byte{byte(seq), 0xd4})
		if !id.InOpen(from, to) {
			continue
		}
		for i := range 100000 {
			if p := chord.KeyPosition(key(i)); p.InOpen(from, id) {
				return key(i), seq, true
			}
		}
	}
	return [32]byte{}, 0, false
}
