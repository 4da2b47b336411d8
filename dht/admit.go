package dht

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// What a record from another node may carry. Every record that enters this
// node from the network (a push, a handoff, a repair, a fetched copy, a
// replica's answer to a GET) goes through admit: its expiry is cut to now +
// Config.MaxTTL and its replication to Config.MaxReplication, and a version
// more than Config.MaxClockAhead ahead of this node's clock is refused, so
// that no member can make a record that no later PUT replaces or that
// outlives the maximum TTL.

// errTooFarAhead: a record's version is further ahead of this node's clock
// than Config.MaxClockAhead.
var errTooFarAhead = errors.New("dht: version too far ahead of this node's clock")

// admit turns a record received from another node into one this node keeps:
// the first return is false for a record that is expired (nothing to keep);
// an error says why the record is refused.
func (s *Service) admit(w wireRecord, primary bool, now time.Time) (store.Record, bool, error) {
	rec, err := w.record(primary)
	if err != nil {
		return store.Record{}, false, err
	}
	if limit := now.Add(s.cfg.MaxTTL); rec.Expiry.After(limit) {
		rec.Expiry = limit
	}
	if rec.Replication > uint8(s.cfg.MaxReplication) {
		rec.Replication = uint8(s.cfg.MaxReplication)
	}
	if ahead := aheadOf(rec.Version, now); ahead > s.cfg.MaxClockAhead {
		s.metrics.refused.WithLabelValues("version_ahead").Inc()
		return store.Record{}, false, fmt.Errorf("%w: version %v is %v ahead (at most %v)",
			errTooFarAhead, rec.Version, ahead.Round(time.Millisecond), s.cfg.MaxClockAhead)
	}
	return rec, rec.Expiry.After(now), nil
}

// errOutOfWindow: a dht.store sent a copy of a record to a node that, as it
// sees the ring, is not in the sender's replication window for it.
var errOutOfWindow = errors.New("dht: this node is not in the sender's replication window for the key")

// ringView is what this node knows of the ring for mayHoldFrom, read once
// per dht.store call: its predecessor and the distinct other nodes of its
// successor list and fingers.
type ringView struct {
	self    chord.ID
	pred    chord.ID
	hasPred bool
	known   []chord.ID
}

func (s *Service) ringView() *ringView {
	v := &ringView{self: s.node.Self().ID}
	if p, ok := s.node.Predecessor(); ok {
		v.pred, v.hasPred = p.ID, true
		v.known = append(v.known, p.ID)
	}
	add := func(ns []chord.NodeInfo) {
		for _, n := range ns {
			if n.ID != v.self && !n.ID.IsZero() && !slices.Contains(v.known, n.ID) {
				v.known = append(v.known, n.ID)
			}
		}
	}
	add(s.node.Successors())
	add(s.node.DistinctFingers())
	return v
}

// mayHoldFrom reports whether from may hand this node a copy of the record at
// pos with replication r, a position this node does not own (a copy of one
// it owns is taken from anyone: the old owner handing over, a node placing a
// stray copy or delivering a hint, what a dht.put could do anyway), as this
// node sees the ring (view, read once per dht.store call): only when from lies on the
// arc from pos to this node (it can be the owner, or a holder passing its
// copy on as it leaves) and this node knows of fewer than r-1 nodes between
// from and itself, so that it can be in from's window. Its immediate
// predecessor may always hand it copies: it is the node whose arc and
// windows this node takes over when it leaves. Of the nodes between, those
// the sender names as skipped (its suspects, see suspect.go) are not
// counted, up to r-1 of them: a sender's window reaches at most twice as far.
func (view *ringView) mayHoldFrom(from, pos chord.ID, r int, skipped []chord.ID) bool {
	if from != pos && !from.InOpen(pos, view.self) {
		return false
	}
	if view.hasPred && from == view.pred {
		return true
	}
	between, skips := 0, 0
	for _, id := range view.known {
		if id == from || !id.InOpen(from, view.self) {
			continue
		}
		if skips < r-1 && slices.Contains(skipped, id) {
			skips++
			continue
		}
		if between++; between > max(r-2, 0) {
			return false
		}
	}
	return true
}

// aheadOf returns how far v's clock is ahead of now (0 or less when it is
// not).
func aheadOf(v store.Version, now time.Time) time.Duration {
	t := uint64(now.UnixNano())
	if v.Clock <= t {
		return 0
	}
	d := v.Clock - t
	if d > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}
