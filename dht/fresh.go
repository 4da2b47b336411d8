package dht

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// Reads that never go back in time. A node's own records can be behind its
// arc's: after a start (it may have been down while others took its arc's
// writes) and after any stretch in which it did not run (frozen, suspended,
// starved of CPU), during which the ring may have evicted it and taken
// writes elsewhere. Until one maintenance round has compared its arc with
// the replica holders since then, the node is not in sync, and as the owner
// it does not answer from its own records alone: a GET, and the version a
// PUT is given, take the newest of its own copy and those of its first two
// successors (the holders of every record with replication up to 3; with a
// write quorum of 2 an acknowledged write is on one of them whenever it is
// not here). The first such copy that is newer is also kept here.

// Bounds of the freshness watch.
const (
	// beatInterval is how often the node notes that it runs.
	beatInterval = 100 * time.Millisecond
	// gapLimit is the longest time between two notes that counts as
	// running throughout; a longer one means the node was not running.
	gapLimit = time.Second
	// syncPeers is how many successors a node out of sync asks.
	syncPeers = 2
)

// freshness says whether the node's own records can be served alone.
type freshness struct {
	epoch time.Time    // the monotonic base of beat
	beat  atomic.Int64 // nanoseconds since epoch of the last note
	// gapFrom and gapTo (nanoseconds since epoch) are the last note
	// before the latest gap and the note that ended it.
	gapFrom, gapTo atomic.Int64
	gen            atomic.Uint64
	synced         atomic.Uint64 // the gen that a completed round synced; in sync when == gen
}

func newFreshness(inSync bool) *freshness {
	f := &freshness{epoch: time.Now()}
	f.gen.Store(1) // out of sync from the start, unless told otherwise
	if inSync {
		f.synced.Store(1)
	}
	return f
}

// since returns the monotonic time since the epoch.
func (f *freshness) since() int64 { return int64(time.Since(f.epoch)) }

// note records that the node runs, and reports whether it had stopped
// running since the last note (the node is then out of sync).
func (f *freshness) note() bool {
	now := f.since()
	last := f.beat.Swap(now)
	if last != 0 && time.Duration(now-last) > gapLimit {
		f.gapFrom.Store(last)
		f.gapTo.Store(now)
		f.gen.Add(1)
		return true
	}
	return false
}

// resumeWindow is how long after a gap a request read from the network
// counts as one that may have waited through the gap: what peers sent while
// this node did not run sits in its sockets and is read at once when it runs
// again, before or just after the watch notes the gap.
const resumeWindow = 2 * beatInterval

// arrival returns when a request read at t may have arrived: t, unless the
// node has just run again after a gap (noted or not yet), when it is the
// start of the gap.
func (f *freshness) arrival(t time.Time) time.Time {
	now := int64(t.Sub(f.epoch))
	if last := f.beat.Load(); last != 0 && time.Duration(now-last) > gapLimit {
		return f.epoch.Add(time.Duration(last)) // a gap the watch has not noted yet
	}
	if to := f.gapTo.Load(); to != 0 && time.Duration(now-to) <= resumeWindow {
		return f.epoch.Add(time.Duration(f.gapFrom.Load()))
	}
	return t
}

// inSync reports whether the node's records may be served alone; it also
// catches a gap that the watch has not noted yet.
func (f *freshness) inSync() bool {
	if last := f.beat.Load(); last != 0 && time.Duration(f.since()-last) > gapLimit {
		return false
	}
	return f.synced.Load() == f.gen.Load()
}

// watch notes every beatInterval that the node runs, until ctx ends; after a
// gap it starts a maintenance round.
func (s *Service) watch(ctx context.Context) {
	t := time.NewTicker(beatInterval)
	defer t.Stop()
	// Once the watch has ended nothing notes a gap any more (the node is
	// shutting down, or a test runs it without its loops).
	defer s.fresh.beat.Store(0)
	s.fresh.note()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if s.fresh.note() {
			s.log.Info("this node did not run for a while; serving its arc with its successors' copies until a round syncs it")
			s.Kick()
		}
	}
}

// syncedBy marks the node in sync as of gen, the generation a maintenance
// round that has just compared the arc with its holders started in.
func (s *Service) syncedBy(gen uint64) {
	if s.fresh.gen.Load() == gen && s.fresh.synced.Swap(gen) != gen {
		s.log.Debug("own records in sync with the replica holders")
	}
}

// ownRecord returns this node's own live copy of key as the owner serves it:
// while the node is not in sync, the newest of its copy and its first
// successors' (and a newer one found there is kept here).
func (s *Service) ownRecord(ctx context.Context, key [32]byte) (store.Record, error) {
	own, err := s.db.Get(key)
	if s.fresh.inSync() {
		return own, err
	}
	self := s.node.Self()
	hs := s.syncPeers(chord.KeyPosition(key))
	if len(hs) == 0 {
		return own, err // alone on the ring: nobody else can be newer
	}
	peers := append([]chord.NodeInfo{self}, hs...)
	rec, _, nerr := s.newest(ctx, key, peers, len(peers))
	if nerr != nil {
		return own, err
	}
	if err != nil || rec.Version.Compare(own.Version) > 0 {
		keep := rec
		keep.Primary = s.owns(chord.KeyPosition(key))
		if _, perr := s.raw.Put(ctx, keep); perr != nil {
			s.log.Debug("could not keep a newer copy from a successor", "key", chord.ID(key).Short(), "error", perr)
		}
		s.metrics.refreshed.Inc()
	}
	return rec, nil
}

// newestVersion returns the newest version of key among this node's store
// (cur, as read) and, while this node is not in sync, its first successors:
// what a PUT's version must go above.
func (s *Service) newestVersion(ctx context.Context, key [32]byte, cur store.Version) store.Version {
	if s.fresh.inSync() {
		return cur
	}
	peers := s.syncPeers(chord.KeyPosition(key))
	if r, _, err := s.newest(ctx, key, peers, len(peers)); err == nil && r.Version.Compare(cur) > 0 {
		return r.Version
	}
	return cur
}

// syncPeers returns the successors a node out of sync reads with for the
// key at pos: those of the position that owns it.
func (s *Service) syncPeers(pos chord.ID) []chord.NodeInfo {
	p := s.sendingPosition(pos)
	return s.windowOf(p.node.Self(), p.node.Successors(), syncPeers+1)
}
