package dht

import (
	"slices"
	"sync"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// Holders that lose what they acknowledged. A node that takes a copy in
// dht.store and says "stored" must hold it (at that version or newer) when
// it is next compared: copies only leave a holder once it is outside the
// record's window, which the node that pushed them would then no longer
// compare with it. A holder found lacking copies it acknowledged, in two
// comparisons in a row, is a suspect: this node's placement skips it (the
// window extends to the next node, so a record keeps its replication count of
// nodes that keep copies), names it in every dht.store and digest answer as
// skipped (so that the node after the window takes and keeps the extra copy),
// and keeps comparing with it: a suspect found holding every copy it
// acknowledged since is cleared. A false suspicion costs one copy more, never
// one less: no node drops a copy because it is named as skipped itself.

const (
	// suspectStrikes is the number of comparisons in a row that must find
	// acknowledged copies missing before a holder is a suspect.
	suspectStrikes = 2
	// maxTrackedAcks bounds the acknowledged copies remembered per peer;
	// maxTrackedPeers the peers remembered.
	maxTrackedAcks  = 256
	maxTrackedPeers = 64
	// maxSkipped bounds the suspects named in one dht.store or digest
	// answer.
	maxSkipped = 8
)

type peerAcks struct {
	acked   map[[32]byte]store.Version // acknowledged, not yet seen held
	strikes int
	suspect bool
	seq     uint64 // when last acked, in acked calls: the oldest goes first
}

// suspects remembers what each peer acknowledged and which peers lost it.
type suspects struct {
	mu    sync.Mutex
	peers map[chord.ID]*peerAcks
	seq   uint64
	// list is the current suspects, replaced wholesale (a copy handed out
	// stays valid).
	list []chord.ID
	// changed reports a peer becoming a suspect (true) or cleared (false).
	changed func(peer chord.ID, suspect bool)
}

func newSuspects(changed func(chord.ID, bool)) *suspects {
	return &suspects{peers: make(map[chord.ID]*peerAcks), changed: changed}
}

// acked records that peer acknowledged storing recs.
func (s *suspects) acked(peer chord.ID, recs []store.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.peers[peer]
	if p == nil {
		if len(s.peers) >= maxTrackedPeers && !s.evict() {
			return
		}
		p = &peerAcks{acked: make(map[[32]byte]store.Version)}
		s.peers[peer] = p
	}
	s.seq++
	p.seq = s.seq
	for _, r := range recs {
		if len(p.acked) >= maxTrackedAcks {
			break
		}
		if v, ok := p.acked[r.Key]; !ok || v.Compare(r.Version) < 0 {
			p.acked[r.Key] = r.Version
		}
	}
}

// evict forgets the peer acked longest ago that is not a suspect (one that
// left the ring, most likely); s.mu is held. It reports false when every
// peer tracked is a suspect.
func (s *suspects) evict() bool {
	var oldest chord.ID
	var at uint64
	found := false
	for id, p := range s.peers {
		if !p.suspect && (!found || p.seq < at) {
			oldest, at, found = id, p.seq, true
		}
	}
	if found {
		delete(s.peers, oldest)
	}
	return found
}

// compared takes the result of comparing the records of (from, to] with
// peer: diff are the buckets whose digests differed, remote the peer's
// versions of those buckets' records, and live tells whether this node
// still holds a key at a version (a copy that expired or was replaced here
// proves nothing). A copy the peer acknowledged that it now lacks is a
// strike against it; a comparison that finds every acknowledged copy held
// clears it.
func (s *suspects) compared(peer, from, to chord.ID, diff []int, remote map[chord.ID]store.Version, live func([32]byte, store.Version) bool) {
	s.mu.Lock()
	p := s.peers[peer]
	if p == nil {
		s.mu.Unlock()
		return
	}
	lost, held := 0, 0
	for k, v := range p.acked {
		pos := chord.KeyPosition(k)
		if !pos.InHalfOpen(from, to) {
			continue
		}
		delete(p.acked, k)
		if !slices.Contains(diff, int(pos[0])) {
			held++ // the bucket's digests agree
			continue
		}
		if rv, ok := remote[chord.ID(k)]; ok && rv.Compare(v) >= 0 {
			held++
			continue
		}
		if live(k, v) {
			lost++
		}
	}
	var changed, now bool
	switch {
	case lost > 0:
		p.strikes++
		if p.strikes >= suspectStrikes && !p.suspect {
			p.suspect, changed, now = true, true, true
		}
	case held > 0:
		p.strikes = 0
		if p.suspect {
			p.suspect, changed = false, true
		}
	}
	if !p.suspect && p.strikes == 0 && len(p.acked) == 0 {
		delete(s.peers, peer)
	}
	if changed {
		s.rebuild()
	}
	fn := s.changed
	s.mu.Unlock()
	if changed && fn != nil {
		fn(peer, now)
	}
}

// rebuild remakes the list of suspects; s.mu is held.
func (s *suspects) rebuild() {
	var l []chord.ID
	for id, p := range s.peers {
		if p.suspect {
			l = append(l, id)
		}
	}
	slices.SortFunc(l, chord.ID.Cmp)
	if len(l) > maxSkipped {
		l = l[:maxSkipped]
	}
	s.list = l
}

// current returns the suspects (nil when there are none).
func (s *suspects) current() []chord.ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list
}

// is reports whether peer is a suspect.
func (s *suspects) is(peer chord.ID) bool {
	return slices.Contains(s.current(), peer)
}

// without returns succs less the nodes in skip other than self.
func without(succs []chord.NodeInfo, skip []chord.ID, self chord.ID) []chord.NodeInfo {
	if len(skip) == 0 {
		return succs
	}
	out := make([]chord.NodeInfo, 0, len(succs))
	for _, n := range succs {
		if n.ID == self || !slices.Contains(skip, n.ID) {
			out = append(out, n)
		}
	}
	return out
}

// windowOf returns the replica holders of a record of this node's arc with
// replication r: the first r-1 distinct successors, skipping suspects.
func (s *Service) windowOf(self chord.NodeInfo, succs []chord.NodeInfo, r int) []chord.NodeInfo {
	return holders(self, without(succs, s.suspects.current(), self.ID), r)
}

// suspectChanged logs a peer becoming a suspect or being cleared.
func (s *Service) suspectChanged(peer chord.ID, suspect bool) {
	if suspect {
		s.log.Warn("holder lacks copies it acknowledged; placement skips it until it holds them", "peer", peer.Short())
		return
	}
	s.log.Info("holder holds the copies it acknowledged again; placement counts it", "peer", peer.Short())
}
