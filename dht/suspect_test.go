package dht

import (
	"fmt"
	"slices"
	"testing"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// TestSuspectsStrikesAndClearing: a peer becomes a suspect only after two
// comparisons in a row find copies it acknowledged missing; copies that
// expired or were never acknowledged prove nothing; a digest that agrees or
// a version list that shows the copies clears it.
func TestSuspectsStrikesAndClearing(t *testing.T) {
	peer := chord.ID{0x42}
	all := func() (chord.ID, chord.ID) { return chord.ID{}, chord.ID{} } // (x, x] is the whole circle
	var events []bool
	s := newSuspects(func(p chord.ID, now bool) {
		if p != peer {
			t.Errorf("change reported for %v", p.Short())
		}
		events = append(events, now)
	})
	recs := []store.Record{{Key: key(1), Version: store.Version{Clock: 10, Node: 1}}, {Key: key(2), Version: store.Version{Clock: 20, Node: 1}}}
	buckets := func() []int {
		var b []int
		for _, r := range recs {
			b = append(b, int(chord.KeyPosition(r.Key)[0]))
		}
		return b
	}
	live := func([32]byte, store.Version) bool { return true }
	gone := func([32]byte, store.Version) bool { return false }
	from, to := all()

	// Not acknowledged: nothing to hold against the peer.
	s.compared(peer, from, to, buckets(), nil, live)
	if s.is(peer) {
		t.Fatal("suspect without an acknowledged copy")
	}
	// Acknowledged, then gone here too (expired, replaced): no strike.
	s.acked(peer, recs)
	s.compared(peer, from, to, buckets(), nil, gone)
	s.acked(peer, recs)
	s.compared(peer, from, to, buckets(), nil, gone)
	if s.is(peer) {
		t.Fatal("suspect for copies this node no longer holds either")
	}
	// Lost once: one strike, no suspect yet.
	s.acked(peer, recs)
	s.compared(peer, from, to, buckets(), map[chord.ID]store.Version{}, live)
	if s.is(peer) {
		t.Fatal("suspect after one comparison")
	}
	// A comparison of another arc leaves the strikes alone.
	s.acked(peer, recs)
	other := chord.KeyPosition(key(1))
	s.compared(peer, other, other.AddPow2(0), buckets(), nil, live)
	if s.is(peer) {
		t.Fatal("suspect after a comparison of an arc without its copies")
	}
	// Lost twice in a row: a suspect.
	s.compared(peer, from, to, buckets(), map[chord.ID]store.Version{}, live)
	if !s.is(peer) || !slices.Equal(s.current(), []chord.ID{peer}) {
		t.Fatalf("not a suspect after losing acknowledged copies twice: %v", s.current())
	}
	// It holds the next ones (one at a newer version): cleared.
	s.acked(peer, recs)
	s.compared(peer, from, to, buckets(), map[chord.ID]store.Version{
		chord.ID(key(1)): recs[0].Version,
		chord.ID(key(2)): {Clock: 30, Node: 2},
	}, live)
	if s.is(peer) {
		t.Fatal("still a suspect after holding every copy")
	}
	// Suspect again, then a digest that agrees clears it.
	for range 2 {
		s.acked(peer, recs)
		s.compared(peer, from, to, buckets(), nil, live)
	}
	if !s.is(peer) {
		t.Fatal("not a suspect again")
	}
	s.acked(peer, recs)
	s.compared(peer, from, to, nil, nil, live)
	if s.is(peer) || len(s.peers) != 0 {
		t.Fatalf("digests agree and the peer is still tracked: %v", s.peers)
	}
	if want := []bool{true, false, true, false}; !slices.Equal(events, want) {
		t.Errorf("changes %v; want %v", events, want)
	}
}

// TestSuspectsBounded: what a node remembers is bounded per peer and in
// peers.
func TestSuspectsBounded(t *testing.T) {
	s := newSuspects(nil)
	for p := range maxTrackedPeers + 10 {
		var recs []store.Record
		for i := range maxTrackedAcks + 10 {
			recs = append(recs, store.Record{Key: key(p*1000 + i), Version: store.Version{Clock: 1}})
		}
		s.acked(chord.ID{byte(p), 1}, recs)
	}
	if len(s.peers) != maxTrackedPeers {
		t.Errorf("%d peers tracked; at most %d", len(s.peers), maxTrackedPeers)
	}
	// The peers acked longest ago went first.
	for p := range 10 {
		if _, ok := s.peers[chord.ID{byte(p), 1}]; ok {
			t.Errorf("peer %d, among the first acked, is still tracked", p)
		}
	}
	if _, ok := s.peers[chord.ID{byte(maxTrackedPeers + 9), 1}]; !ok {
		t.Errorf("the last peer acked is not tracked")
	}
	for id, p := range s.peers {
		if len(p.acked) != maxTrackedAcks {
			t.Errorf("%v: %d copies tracked; at most %d", id.Short(), len(p.acked), maxTrackedAcks)
		}
	}
}

// TestMayHoldFromSkipped: the nodes a sender names as skipped are not
// counted between it and the receiver, up to replication-1 of them.
func TestMayHoldFromSkipped(t *testing.T) {
	id := func(b byte) chord.ID { return chord.ID{b} }
	at := func(b byte) chord.NodeInfo { return chord.NodeInfo{ID: id(b), Addr: fmt.Sprintf("node-%x", b)} }
	// The receiver at 0x50; the sender at 0x10 owns the key at 0x08; 0x20,
	// 0x30 and 0x40 lie between.
	view := &ringView{self: at(0x50), pred: id(0x40), hasPred: true, known: []chord.NodeInfo{at(0x40), at(0x10), at(0x20), at(0x30), at(0x60)}}
	pos, from := id(0x08), id(0x10)
	for _, c := range []struct {
		r       int
		skipped []chord.ID
		ok      bool
	}{
		{5, nil, true},                   // three between, within a window of 5
		{4, nil, false},                  // three between, a window of 4
		{4, []chord.ID{id(0x20)}, true},  // one of them skipped
		{4, []chord.ID{id(0x60)}, false}, // a node not between does not count
		{2, []chord.ID{id(0x20), id(0x30), id(0x40)}, false},
		{3, []chord.ID{id(0x20), id(0x30), id(0x40)}, true}, // only r-1 = 2 of them count
	} {
		if got := view.mayHoldFrom(from, pos, c.r, c.skipped); got != c.ok {
			t.Errorf("replication %d, skipped %v: %v; want %v", c.r, c.skipped, got, c.ok)
		}
	}
}

// TestHoldersDistinctPhysical: with several positions per physical node (an
// address), a record's holders are the first replication-1 physical nodes
// after its owner other than the owner's, each once, at every ring size
// from 1 to 8.
func TestHoldersDistinctPhysical(t *testing.T) {
	const v = 4
	for n := 1; n <= 8; n++ {
		var ring []chord.NodeInfo
		for p := range n {
			for i := range v {
				ring = append(ring, chord.NodeInfo{ID: chord.KeyPosition(key(p*100 + i)), Addr: fmt.Sprintf("node-%d", p)})
			}
		}
		slices.SortFunc(ring, func(a, b chord.NodeInfo) int { return a.ID.Cmp(b.ID) })
		for at, owner := range ring {
			// The owner's successor list: every other position after it.
			var succs []chord.NodeInfo
			for j := 1; j < len(ring); j++ {
				succs = append(succs, ring[(at+j)%len(ring)])
			}
			for r := 1; r <= 5; r++ {
				hs := holders(owner, succs, r)
				if want := min(r-1, n-1); len(hs) != want {
					t.Fatalf("n=%d r=%d: %d holders; want %d", n, r, len(hs), want)
				}
				seen := map[string]bool{owner.Addr: true}
				next := 0 // each holder is the next new physical node in ring order
				for _, h := range hs {
					if seen[h.Addr] {
						t.Fatalf("n=%d r=%d owner %v: %v holds twice on one physical node (%v)", n, r, owner, h.Addr, hs)
					}
					for seen[succs[next].Addr] {
						next++
					}
					if succs[next] != h {
						t.Fatalf("n=%d r=%d owner %v: holder %v; want the next physical node's first position %v", n, r, owner, h, succs[next])
					}
					seen[h.Addr] = true
				}
			}
		}
	}
}

// TestMayHoldFromCountsPhysicalNodes: between the sender and the receiver,
// further positions of the sender, of the receiver and of one other node
// count as that many physical nodes; a receiver with several positions that
// does not know the sender's address allows one node more (it may be the
// sender's).
func TestMayHoldFromCountsPhysicalNodes(t *testing.T) {
	at := func(b byte, addr string) chord.NodeInfo { return chord.NodeInfo{ID: chord.ID{b}, Addr: addr} }
	self := at(0x50, "me")
	from, pos := chord.ID{0x10}, chord.ID{0x08}
	for _, c := range []struct {
		name  string
		known []chord.NodeInfo
		multi bool
		r     int
		ok    bool
	}{
		{"one other node at three positions", []chord.NodeInfo{at(0x10, "sender"), at(0x20, "b"), at(0x30, "b"), at(0x40, "b")}, true, 3, true},
		{"two other nodes", []chord.NodeInfo{at(0x10, "sender"), at(0x20, "b"), at(0x30, "c")}, true, 3, false},
		{"the sender's and this node's positions", []chord.NodeInfo{at(0x10, "sender"), at(0x20, "sender"), at(0x30, "me"), at(0x40, "b")}, true, 3, true},
		{"sender unknown, one node may be its", []chord.NodeInfo{at(0x20, "b"), at(0x30, "c")}, true, 3, true},
		{"sender unknown, one position per node", []chord.NodeInfo{at(0x20, "b"), at(0x30, "c")}, false, 3, false},
	} {
		v := &ringView{self: self, known: c.known, multi: c.multi}
		if got := v.mayHoldFrom(from, pos, c.r, nil); got != c.ok {
			t.Errorf("%s: %v; want %v", c.name, got, c.ok)
		}
	}
}
