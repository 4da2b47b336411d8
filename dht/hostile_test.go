package dht

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// liar is the transport of an honest node as seen through a lying member:
// every call to the liar is answered as the liar pleases.
type liar struct {
	chord.Transport
	liar chord.ID
	// swallow: digests and version lists answered empty, pushes answered
	// "stored" and thrown away.
	swallow bool
	// skip: this node left out of the liar's successor list.
	skip chord.ID
}

func (l *liar) Call(ctx context.Context, to chord.NodeInfo, method string, args, reply any) error {
	if to.ID != l.liar {
		return l.Transport.Call(ctx, to, method, args, reply)
	}
	switch {
	case l.swallow && method == methodDigest:
		*reply.(*digestReply) = digestReply{}
		return nil
	case l.swallow && method == methodVersions:
		*reply.(*versionsReply) = versionsReply{}
		return nil
	case l.swallow && method == methodStore:
		return nil
	}
	err := l.Transport.Call(ctx, to, method, args, reply)
	if nb, ok := reply.(*neighbours); ok && err == nil && l.skip != (chord.ID{}) {
		kept := nb.Successors[:0]
		for _, n := range nb.Successors {
			if n.ID != l.skip {
				kept = append(kept, n)
			}
		}
		nb.Successors = kept
	}
	return err
}

// TestLyingOwnerCannotMakeNodesDropCopies: a member that answers digests
// and version lists as empty and throws pushes away, or that leaves a
// holder out of its successor list, gets no honest node to drop a copy:
// a node lets a copy go only once the owner has confirmed it holds it, and
// only on a successor list that agrees with its own view.
func TestLyingOwnerCannotMakeNodesDropCopies(t *testing.T) {
	const n = 20
	for _, tc := range []struct {
		name string
		lie  func(l *liar, honest *member)
		// where the honest node's copies sit relative to the liar
		holder bool
	}{
		{"empty digests and swallowed pushes", func(l *liar, _ *member) { l.swallow = true }, false},
		{"successor list without the holder", func(l *liar, h *member) { l.skip = h.info.ID }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRing(t, 5)
			r.lying = true
			r.freeze()
			ms := r.sorted()
			owner := ms[0]  // the liar
			honest := ms[3] // not in the liar's window with replication 3
			if tc.holder {
				honest = ms[1] // the liar's first successor: a holder
			}
			ctx := context.Background()
			var keys [][32]byte
			for i := 0; len(keys) < n; i++ {
				k := key(i)
				if !owner.node.Owns(chord.KeyPosition(k)) {
					continue
				}
				keys = append(keys, k)
				rec := store.Record{Key: k, Value: value(i, 1), Expiry: time.Now().Add(time.Hour), Replication: 2,
					Version: store.Version{Clock: uint64(time.Now().UnixNano()), Node: 3}}
				if tc.holder {
					rec.Replication = 3
				}
				if _, err := honest.db.Put(ctx, rec); err != nil {
					t.Fatal(err)
				}
			}
			l := &liar{Transport: honest.svc.tr, liar: owner.info.ID}
			tc.lie(l, honest)
			honest.svc.tr = l
			for range 3 {
				_ = honest.svc.Maintain(ctx)
			}
			for _, k := range keys {
				if _, err := honest.db.Get(k); errors.Is(err, store.ErrNotFound) {
					t.Fatalf("the honest node dropped its copy of %s on a lying owner's word", chord.KeyPosition(k).Short())
				}
			}
			if tc.holder {
				return // a holder keeps its copies anyway once the lie ends
			}
			// The owner took the handover and lost it, round after round.
			if !honest.svc.suspects.is(owner.info.ID) {
				t.Fatalf("the owner swallowed the handover 3 times and is not a suspect")
			}
			// Without the lie, the owner takes the records and confirms,
			// and the copies outside its window go: the first round finds
			// it still without what it swallowed and hands it over, the
			// next finds it holding everything and clears it.
			honest.svc.tr = l.Transport
			for range 2 {
				if err := honest.svc.Maintain(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if honest.svc.suspects.is(owner.info.ID) {
				t.Errorf("the owner holds what it took and is still a suspect")
			}
			for _, k := range keys {
				if _, err := honest.db.Get(k); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("copy of %s kept after the owner confirmed it: %v", chord.KeyPosition(k).Short(), err)
				}
				if _, err := owner.db.Get(k); err != nil {
					t.Errorf("owner lacks %s after the handoff: %v", chord.KeyPosition(k).Short(), err)
				}
			}
		})
	}
}

// hostileMember serves a ring member's calls as a member bent on harm would:
// it names itself the owner of every identifier, answers successor lists
// with nodes that do not exist and in the wrong order, answers digests,
// version lists and fetches as empty, says it holds no record, and takes
// pushes and throws them away. Whatever it is not lying about it serves as
// the member would.
type hostileMember struct {
	honest chord.Handler
	self   chord.NodeInfo
	fakes  []chord.NodeInfo // IDs nobody serves
}

func (h hostileMember) ServeRPC(ctx context.Context, from chord.ID, method string, params json.RawMessage) (any, error) {
	switch method {
	case "chord.find_successor":
		self := h.self
		return chord.Referral{Owner: &self, OwnerIsSelf: true, Successors: h.fakes}, nil
	case "chord.neighbours":
		pred := h.fakes[0]
		succs := slices.Clone(h.fakes)
		slices.Reverse(succs) // and out of ring order
		return chord.Neighbours{Predecessor: &pred, Successors: succs}, nil
	case methodDigest:
		return digestReply{}, nil
	case methodVersions:
		return versionsReply{}, nil
	case methodFetch:
		return fetchReply{}, nil
	case methodGet:
		return nil, chord.ErrNotFound
	case methodStore:
		var a storeArgs
		if err := json.Unmarshal(params, &a); err != nil {
			return nil, err
		}
		return storeReply{Stored: len(a.Records)}, nil
	}
	return h.honest.ServeRPC(ctx, from, method, params)
}

// lie makes the hostile member's calls to one honest node: pushes of
// records with versions far ahead of any clock (for keys of its own and for
// the honest writers' keys), with expiries centuries away and replication
// 255, and puts of the same; a notify that it has just joined as the node's
// successor; and a leave that hands over nodes that do not exist.
func (h hostileMember) lie(ctx context.Context, tr chord.Transport, to chord.NodeInfo, round int, honestKeys int, bound time.Duration) {
	now := time.Now()
	forever := int64(math.MaxInt64)
	junk := func(i int) chord.ID { return chord.ID(key(1_000_000 + round*100 + i)) }
	recs := []wireRecord{
		{Key: junk(0), Value: []byte("never replaced"), Expiry: forever, Replication: 255,
			Version: store.Version{Clock: math.MaxUint64, Node: math.MaxUint64}},
		{Key: chord.ID(key(round % honestKeys)), Value: []byte("overwritten"), Expiry: forever, Replication: 255,
			Version: store.Version{Clock: uint64(now.Add(bound + time.Minute).UnixNano()), Node: math.MaxUint64}},
		{Key: junk(1), Value: []byte("outlives its TTL"), Expiry: forever, Replication: 255,
			Version: store.Version{Clock: uint64(now.Add(bound / 2).UnixNano()), Node: 1}},
	}
	_ = tr.Call(ctx, to, methodStore, storeArgs{Records: recs}, nil)
	_ = tr.Call(ctx, to, methodPut, putArgs{Key: junk(2), Value: []byte("put forever"), Expiry: forever, Replication: 255}, nil)
	self := h.self
	_ = tr.Call(ctx, to, "chord.notify", map[string]any{"node": self, "role": "successor"}, nil)
	_ = tr.Call(ctx, to, "chord.leave", map[string]any{"node": self, "predecessor": h.fakes[0], "successors": h.fakes}, nil)
}

// TestHostileMemberManyRounds: one member of ten lies in every way listed
// for hostileMember and sends its lies to every honest node, round after
// round, while honest nodes take PUTs and run their maintenance (every
// 50 ms). After many rounds: every acknowledged PUT reads back through every
// honest node; every honest node in a record's window (the true ring's
// owner and its successors) holds the newest copy, and so many honest
// nodes hold it as its replication count, also when the liar is in its
// window (the holders find that the liar loses what it acknowledges and
// extend their windows past it); and no honest store holds a record that outlives
// the maximum TTL, has a replication above the maximum or a version ahead
// of the clock bound.
func TestHostileMemberManyRounds(t *testing.T) {
	const (
		n       = 10
		keys    = 120
		gens    = 4
		repl    = 3
		maintEv = 50 * time.Millisecond
	)
	r := newRingMaintained(t, n, maintEv)
	r.lying = true
	ms := r.sorted()
	bad := ms[4]
	var order []string
	for _, m := range ms {
		order = append(order, m.info.String())
	}
	t.Logf("ring %v; the liar is %v", order, bad.info)
	h := hostileMember{honest: bad.node, self: bad.info}
	for i := range 3 {
		// Between the liar and its successor, so that they would be
		// adopted if they were not checked.
		id := bad.info.ID.AddPow2(200 - i*8)
		h.fakes = append(h.fakes, chord.NodeInfo{ID: id, Addr: fmt.Sprintf("nobody-%d", i)})
	}
	slices.SortFunc(h.fakes, func(a, b chord.NodeInfo) int { return bad.info.ID.Distance(a.ID).Cmp(bad.info.ID.Distance(b.ID)) })
	var honest []*member
	for _, m := range r.members {
		if m != bad {
			honest = append(honest, m)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, m := range honest {
		wg.Go(func() { _ = m.svc.Run(ctx) })
	}
	r.net.Listen(bad.info, h)
	badTr := r.net.Transport(bad.info)
	lying := make(chan struct{})
	wg.Go(func() {
		for round := 0; ; round++ {
			for _, m := range honest {
				h.lie(ctx, badTr, m.info, round, keys, bad.svc.cfg.MaxClockAhead)
			}
			select {
			case <-lying:
				return
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})

	// The honest writers, with rounds in between.
	for gen := 1; gen <= gens; gen++ {
		for i := range keys {
			pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
			err := honest[i%len(honest)].svc.Put(pctx, key(i), value(i, gen), time.Hour, repl)
			pcancel()
			if err != nil {
				t.Fatalf("Put(key-%d) gen %d via %v = %v", i, gen, honest[i%len(honest)].info, err)
			}
		}
		time.Sleep(20 * maintEv)
	}

	// Still lying: every copy an honest node should hold gets there, and
	// stays.
	window := func(i int) []*member {
		pos := chord.KeyPosition(key(i))
		at, _ := slices.BinarySearchFunc(ms, pos, func(m *member, id chord.ID) int { return m.info.ID.Cmp(id) })
		var w []*member
		for j := range repl {
			w = append(w, ms[(at+j)%len(ms)])
		}
		return w
	}
	missing := func() string {
		for i := range keys {
			for _, m := range window(i) {
				if m == bad {
					continue
				}
				got, err := m.db.Get(key(i))
				if err != nil || !bytes.Equal(got.Value, value(i, gens)) {
					return fmt.Sprintf("key-%d: honest window member %v holds %q, %v; want %q", i, m.info, got.Value, err, value(i, gens))
				}
			}
			held := 0
			for _, m := range honest {
				if got, err := m.db.Get(key(i)); err == nil && bytes.Equal(got.Value, value(i, gens)) {
					held++
				}
			}
			if held < repl {
				return fmt.Sprintf("key-%d: the newest copy is on %d honest nodes; want %d", i, held, repl)
			}
		}
		return ""
	}
	deadline := time.Now().Add(20 * time.Second)
	for msg := missing(); msg != ""; msg = missing() {
		if time.Now().After(deadline) {
			t.Fatalf("20 s after the last PUT, with the liar still lying: %s", msg)
		}
		time.Sleep(maintEv)
	}
	time.Sleep(20 * maintEv) // and many rounds more
	if msg := missing(); msg != "" {
		t.Fatalf("copies lost in later rounds: %s", msg)
	}
	for _, m := range honest {
		for i := range keys {
			gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
			got, err := m.svc.Get(gctx, key(i))
			gcancel()
			if err != nil || !bytes.Equal(got, value(i, gens)) {
				t.Fatalf("Get(key-%d) via %v = %q, %v; want %q", i, m.info, got, err, value(i, gens))
			}
		}
	}
	close(lying)
	cfg := bad.svc.cfg
	for _, m := range honest {
		limit := time.Now().Add(cfg.MaxTTL)
		ahead := uint64(time.Now().Add(cfg.MaxClockAhead).UnixNano())
		err := m.db.ForEach(func(e store.Entry) error {
			rec := e.Record
			switch {
			case rec.Expiry.After(limit):
				return fmt.Errorf("%s expires %v, after now + MaxTTL", chord.KeyPosition(rec.Key).Short(), rec.Expiry)
			case rec.Replication > uint8(cfg.MaxReplication):
				return fmt.Errorf("%s has replication %d", chord.KeyPosition(rec.Key).Short(), rec.Replication)
			case rec.Version.Clock > ahead:
				return fmt.Errorf("%s has version %v, ahead of the clock bound", chord.KeyPosition(rec.Key).Short(), rec.Version)
			}
			return nil
		})
		if err != nil {
			t.Errorf("honest node %v: %v", m.info, err)
		}
	}
}

// arrivingRecords is a store into which a newer version of a record arrives
// just before its first conditional delete or demotion: as a PUT or push
// that lands while a maintenance round lets copies go.
type arrivingRecords struct {
	Records
	newer map[[32]byte]store.Record
}

func (a *arrivingRecords) arrive(ctx context.Context, key [32]byte) error {
	if r, ok := a.newer[key]; ok {
		delete(a.newer, key)
		if _, err := a.Records.Put(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

func (a *arrivingRecords) DeleteUpTo(ctx context.Context, key [32]byte, v store.Version) (bool, error) {
	if err := a.arrive(ctx, key); err != nil {
		return false, err
	}
	return a.Records.DeleteUpTo(ctx, key, v)
}

// TestPlacementKeepsVersionArrivedMeanwhile: a round that lets copies go
// deletes them only at the version the owner confirmed; a newer version
// that arrived since stays for a later round to compare.
func TestPlacementKeepsVersionArrivedMeanwhile(t *testing.T) {
	r := newRing(t, 5)
	r.freeze()
	ms := r.sorted()
	owner, stray := ms[0], ms[3] // not in the owner's window with replication 2
	ctx := context.Background()
	k := ownedBy(owner)
	now := time.Now()
	old := store.Record{Key: k, Value: []byte("old"), Expiry: now.Add(time.Hour), Replication: 2,
		Version: store.Version{Clock: uint64(now.UnixNano()), Node: 3}}
	if _, err := stray.db.Put(ctx, old); err != nil {
		t.Fatal(err)
	}
	newer := old
	newer.Value, newer.Version.Clock = []byte("newer"), old.Version.Clock+1
	arriving := &arrivingRecords{Records: stray.svc.raw, newer: map[[32]byte]store.Record{k: newer}}
	stray.svc.raw = arriving
	if err := stray.svc.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if len(arriving.newer) != 0 {
		t.Fatal("the round let no copy go: the test proves nothing")
	}
	got, err := stray.db.Get(k)
	if err != nil || !bytes.Equal(got.Value, newer.Value) {
		t.Fatalf("stray copy after the round = %q, %v; want the version that arrived meanwhile kept", got.Value, err)
	}
	if got, err := owner.db.Get(k); err != nil || !bytes.Equal(got.Value, old.Value) {
		t.Fatalf("owner holds %q, %v; want the old version handed over", got.Value, err)
	}
}
