package dht

import (
	"context"
	"errors"
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
			// Without the lie, the owner takes the records and confirms,
			// and the copies outside its window go.
			honest.svc.tr = l.Transport
			if err := honest.svc.Maintain(ctx); err != nil {
				t.Fatal(err)
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
