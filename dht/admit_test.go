package dht

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestStoreCutsWhatAMemberSends: a dht.store from a member may not give a
// record a version far ahead of the receiver's clock (refused alone, the
// rest of the page kept, and counted), an expiry past now + MaxTTL or a
// replication above MaxReplication (both cut).
func TestStoreCutsWhatAMemberSends(t *testing.T) {
	r := newRing(t, 2)
	r.freeze()
	a, b := r.members[0], r.members[1]
	tr := r.net.Transport(a.info)
	ctx := context.Background()
	now := time.Now()
	cfg := b.svc.cfg
	far := store.Version{Clock: uint64(now.Add(cfg.MaxClockAhead + time.Minute).UnixNano()), Node: 7}
	near := store.Version{Clock: uint64(now.Add(cfg.MaxClockAhead / 2).UnixNano()), Node: 7}
	recs := []wireRecord{
		{Key: chord.ID(key(1)), Value: []byte("ahead"), Expiry: now.Add(time.Hour).UnixNano(), Version: far, Replication: 3},
		{Key: chord.ID(key(2)), Value: []byte("forever"), Expiry: math.MaxInt64, Version: near, Replication: 255},
		{Key: chord.ID(key(3)), Value: []byte("wrapping"), Expiry: now.Add(time.Hour).UnixNano(),
			Version: store.Version{Clock: math.MaxUint64, Node: math.MaxUint64}, Replication: 3},
	}
	var reply storeReply
	if err := tr.Call(ctx, b.info, methodStore, storeArgs{Records: recs}, &reply); err != nil {
		t.Fatal(err)
	}
	if reply.Stored != 1 {
		t.Errorf("dht.store stored %d records; want 1 (the two far ahead refused)", reply.Stored)
	}
	var m dto.Metric
	if err := b.svc.metrics.refused.WithLabelValues("version_ahead").Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got != 2 {
		t.Errorf("durachord_dht_refused_records_total{reason=\"version_ahead\"} = %v; want 2", got)
	}
	for _, k := range []int{1, 3} {
		if _, err := b.db.Get(key(k)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("record %d with a version far ahead: Get = %v; want it refused", k, err)
		}
	}
	got, err := b.db.Get(key(2))
	if err != nil {
		t.Fatal(err)
	}
	if limit := time.Now().Add(cfg.MaxTTL); got.Expiry.After(limit) {
		t.Errorf("expiry %v kept; want at most now + MaxTTL (%v)", got.Expiry, limit)
	}
	if got.Replication != uint8(cfg.MaxReplication) {
		t.Errorf("replication %d kept; want it cut to %d", got.Replication, cfg.MaxReplication)
	}
}

// TestPutCutsWhatAMemberSends: a dht.put from a member is cut the same way
// at the owner, and one with an expiry in the past is refused.
func TestPutCutsWhatAMemberSends(t *testing.T) {
	r := newRing(t, 2)
	r.freeze()
	a := r.members[0]
	var owner *member
	k := 0
	for ; owner == nil; k++ {
		for _, m := range r.members {
			if m != a && m.node.Owns(chord.KeyPosition(key(k))) {
				owner = m
			}
		}
	}
	k--
	tr := r.net.Transport(a.info)
	ctx := context.Background()
	args := putArgs{Key: chord.ID(key(k)), Value: []byte("v"), Expiry: math.MaxInt64, Replication: 255}
	if err := tr.Call(ctx, owner.info, methodPut, args, nil); err != nil {
		t.Fatal(err)
	}
	got, err := owner.db.Get(key(k))
	if err != nil {
		t.Fatal(err)
	}
	if limit := time.Now().Add(owner.svc.cfg.MaxTTL); got.Expiry.After(limit) {
		t.Errorf("expiry %v kept; want at most now + MaxTTL (%v)", got.Expiry, limit)
	}
	if got.Replication != uint8(owner.svc.cfg.MaxReplication) {
		t.Errorf("replication %d kept; want it cut to %d", got.Replication, owner.svc.cfg.MaxReplication)
	}
	args.Expiry = time.Now().Add(-time.Second).UnixNano()
	if err := tr.Call(ctx, owner.info, methodPut, args, nil); !errors.Is(err, chord.ErrBadRequest) {
		t.Errorf("dht.put with an expiry in the past = %v; want %v", err, chord.ErrBadRequest)
	}
}

// TestClockNeverWraps: a stored version at the largest clock value leaves
// no version above it; the owner's PUT fails instead of wrapping to 0 and
// reporting success for a record the store would refuse as older.
func TestClockNeverWraps(t *testing.T) {
	c := newClock(chord.ID{1}, time.Now)
	if _, err := c.next(store.Version{Clock: math.MaxUint64}); !errors.Is(err, errClockExhausted) {
		t.Fatalf("next(MaxUint64) = %v; want %v", err, errClockExhausted)
	}
	v, err := c.next(store.Version{Clock: math.MaxUint64 - 1})
	if err != nil || v.Clock != math.MaxUint64 {
		t.Fatalf("next(MaxUint64-1) = %v, %v; want clock MaxUint64", v, err)
	}
	if _, err := c.next(store.Version{}); !errors.Is(err, errClockExhausted) {
		t.Fatalf("next after issuing MaxUint64 = %v; want %v", err, errClockExhausted)
	}

	r := newRing(t, 1)
	m := r.members[0]
	ctx := context.Background()
	// A record such as a database written before versions were bounded
	// could hold.
	old := store.Record{Key: key(1), Value: []byte("old"), Expiry: time.Now().Add(time.Hour),
		Version: store.Version{Clock: math.MaxUint64, Node: math.MaxUint64}, Primary: true, Replication: 1}
	if _, err := m.db.Put(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := m.svc.Put(ctx, key(1), []byte("new"), time.Hour, 1); !errors.Is(err, errClockExhausted) {
		t.Fatalf("Put over a record at the largest version = %v; want %v", err, errClockExhausted)
	}
}

// TestStoreOnlyFromTheWindow: a dht.store copy of a record the receiver does
// not own is taken only from a node whose replication window, as the
// receiver sees the ring, can include the receiver; a refused copy is named
// in the reply (so the sender does not count it) and counted. A record the
// receiver owns is taken from any member, as a dht.put would be.
func TestStoreOnlyFromTheWindow(t *testing.T) {
	r := newRing(t, 8)
	r.freeze()
	ctx := context.Background()
	k := key(1)
	owner, hs := r.placement(k, 3)
	ms := r.sorted()
	at := slices.Index(ms, hs[1])
	after := ms[(at+1)%len(ms)]                               // beyond the window
	before := ms[(slices.Index(ms, owner)-2+len(ms))%len(ms)] // before the key
	rec := func(repl uint8) wireRecord {
		return wireRecord{Key: chord.ID(k), Value: []byte("v"), Expiry: time.Now().Add(time.Hour).UnixNano(),
			Version: store.Version{Clock: uint64(time.Now().UnixNano()), Node: 1}, Replication: repl}
	}
	send := func(from, to *member, w wireRecord) storeReply {
		t.Helper()
		var reply storeReply
		if err := r.net.Transport(from.info).Call(ctx, to.info, methodStore, storeArgs{Records: []wireRecord{w}}, &reply); err != nil {
			t.Fatal(err)
		}
		return reply
	}
	for _, c := range []struct {
		name     string
		from, to *member
		repl     uint8
		ok       bool
	}{
		{"owner to its second holder", owner, hs[1], 3, true},
		{"first holder to the next (its successor)", hs[0], hs[1], 3, true},
		{"the node after the window", after, hs[1], 3, false},
		{"a node before the key", before, hs[1], 3, false},
		{"owner to a node beyond a replication-2 window", owner, hs[1], 2, false},
		{"anyone to the owner", after, owner, 3, true},
	} {
		refusedBefore := testutilCounter(t, c.to.svc.metrics.refused.WithLabelValues("window"))
		reply := send(c.from, c.to, rec(c.repl))
		refused := testutilCounter(t, c.to.svc.metrics.refused.WithLabelValues("window")) - refusedBefore
		_, err := c.to.db.Get(k)
		if c.ok && (len(reply.Refused) != 0 || err != nil || refused != 0) {
			t.Errorf("%s: reply %+v, Get = %v, %v refusals counted; want the copy taken", c.name, reply, err, refused)
		}
		if !c.ok && (!slices.Equal(reply.Refused, []chord.ID{chord.ID(k)}) || reply.Stored != 0 || refused != 1) {
			t.Errorf("%s: reply %+v, %v refusals counted; want the key refused, named and counted", c.name, reply, refused)
		}
		if !c.ok && err == nil {
			t.Errorf("%s: the receiver holds a copy it refused", c.name)
		}
		_ = c.to.db.Delete(ctx, k)
	}
}

// testutilCounter reads a counter's value.
func testutilCounter(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
