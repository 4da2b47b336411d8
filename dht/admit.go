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

// ringView is what one position of this node knows of the ring for
// mayHoldFrom, read once per dht.store call: its predecessor and the
// distinct other nodes of its successor list and fingers. multi says that
// this node stands at several positions (and so, the cluster's nodes do).
type ringView struct {
	self    chord.NodeInfo
	pred    chord.ID
	hasPred bool
	known   []chord.NodeInfo
	multi   bool
}

func (s *Service) ringView(p *position) *ringView {
	v := &ringView{self: p.node.Self(), multi: len(s.ps()) > 1}
	if pr, ok := p.node.Predecessor(); ok {
		v.pred, v.hasPred = pr.ID, true
		v.known = append(v.known, pr)
	}
	add := func(ns []chord.NodeInfo) {
		for _, n := range ns {
			if n.ID != v.self.ID && !n.ID.IsZero() && !slices.ContainsFunc(v.known, func(k chord.NodeInfo) bool { return k.ID == n.ID }) {
				v.known = append(v.known, n)
			}
		}
	}
	add(p.node.Successors())
	add(p.node.DistinctFingers())
	return v
}

// mayHold reports whether from may hand this node a copy of the record at
// pos with replication r, at any of its positions (views, read at the first
// record of a call that needs them).
func (s *Service) mayHold(views *[]*ringView, from, pos chord.ID, r int, skipped []chord.ID) bool {
	if *views == nil {
		for _, p := range s.ps() {
			*views = append(*views, s.ringView(p))
		}
	}
	for _, v := range *views {
		if v.mayHoldFrom(from, pos, r, skipped) {
			return true
		}
	}
	return false
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
// Nodes are counted as physical nodes (addresses; see holders): further
// positions of one node, of the sender or of this node count for nothing.
// Where this node stands at several positions and does not know the
// sender's address, one node between may be the sender's.
func (view *ringView) mayHoldFrom(from, pos chord.ID, r int, skipped []chord.ID) bool {
	self := view.self.ID
	if from != pos && !from.InOpen(pos, self) {
		return false
	}
	if view.hasPred && from == view.pred {
		return true
	}
	fromAddr := ""
	for _, k := range view.known {
		if k.ID == from {
			fromAddr = k.Addr
		}
	}
	allowed := max(r-2, 0)
	if view.multi && fromAddr == "" {
		allowed++
	}
	between, skips := 0, 0
	var seen []string
	for _, k := range view.known {
		if k.ID == from || !k.ID.InOpen(from, self) || samePhysical(k, view.self) || (fromAddr != "" && k.Addr == fromAddr) {
			continue
		}
		if skips < r-1 && slices.Contains(skipped, k.ID) {
			skips++
			continue
		}
		if slices.Contains(seen, k.Addr) {
			continue
		}
		seen = append(seen, k.Addr)
		if between++; between > allowed {
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
