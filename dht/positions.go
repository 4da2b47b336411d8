package dht

import (
	"context"
	"slices"

	"github.com/durachord/durachord/chord"
)

// Virtual nodes. A Service may stand at several positions of the ring, each
// a ring member of its own (a chord.Node with its arc, successor list and
// maintenance) over the one store of the physical node. What the records
// layer decides per position:
//
//   - a record belongs to the position that owns its key (ownerOf), and that
//     position's successor list makes its window: the first replication
//     distinct physical nodes from the owner (holders);
//   - a copy leaves this node from the position nearest after its key
//     (sendingPosition): the owner when that is local, else the position
//     whose window may include it, so that the receiver's window check sees
//     the sender where it stands;
//   - maintenance promotes, and compares with the holders, per position; it
//     places the records in the gaps between this node's arcs, each gap
//     with the position that follows it (gaps);
//   - a graceful leave hands each arc, and the gap before it, to that
//     position's first successor on another physical node.

// Position is one ring position a Service stands at: its ring, and the
// transport of the calls made from it.
type Position struct {
	Node      Overlay
	Transport chord.Transport
}

type position struct {
	node Overlay
	tr   chord.Transport
	// window and pred are the position's window and predecessor as last
	// seen by onRingChange (on Service.windowMu).
	window  []chord.NodeInfo
	pred    chord.ID
	hasPred bool
}

// ps returns the positions this node stands at, the first one first.
func (s *Service) ps() []*position { return *s.positions.Load() }

// transport returns the transport of calls made from p: Service.tr for the
// first position (which tests may wrap), p's own for the others.
func (s *Service) transport(p *position) chord.Transport {
	if p == s.ps()[0] {
		return s.tr
	}
	return p.tr
}

// calledKey is the context key of the position a call reached.
type calledKey struct{}

// calledAt returns the position a call was for (the first position for
// calls made in this process).
func (s *Service) calledAt(ctx context.Context) *position {
	if p, ok := ctx.Value(calledKey{}).(*position); ok {
		return p
	}
	return s.ps()[0]
}

// ownerOf returns the local position that owns id, or nil.
func (s *Service) ownerOf(id chord.ID) *position {
	for _, p := range s.ps() {
		if p.node.Owns(id) {
			return p
		}
	}
	return nil
}

// owns reports whether one of this node's positions owns id.
func (s *Service) owns(id chord.ID) bool { return s.ownerOf(id) != nil }

// isLocal reports whether id is one of this node's positions.
func (s *Service) isLocal(id chord.ID) bool {
	for _, p := range s.ps() {
		if p.node.Self().ID == id {
			return true
		}
	}
	return false
}

// sendingPosition returns the local position nearest after pos (pos
// itself included): the owner of pos when a local position owns it.
func (s *Service) sendingPosition(pos chord.ID) *position {
	return s.nearest(func(self chord.ID) chord.ID { return pos.Distance(self) })
}

// nearest returns the local position whose ID has the least dist, from
// one snapshot of the positions, among those that have joined the ring: a
// position still joining (at a start, or moving) has no tables to route
// with or successors to send to. With none joined it is the first.
func (s *Service) nearest(dist func(self chord.ID) chord.ID) *position {
	ps := s.ps()
	var best *position
	var bestDist chord.ID
	for _, p := range ps {
		if !p.node.Joined() {
			continue
		}
		if d := dist(p.node.Self().ID); best == nil || d.Cmp(bestDist) < 0 {
			best, bestDist = p, d
		}
	}
	if best == nil {
		return ps[0]
	}
	return best
}

// routeFrom returns the local position a request for pos starts from: the
// one that owns it, if one does (the request is then served here, with no
// call), else the one nearest before it, whose fingers reach it in the
// fewest hops.
func (s *Service) routeFrom(pos chord.ID) *position {
	if p := s.ownerOf(pos); p != nil {
		return p
	}
	return s.nearest(func(self chord.ID) chord.ID { return self.Distance(pos) })
}

// gap is the arc (from, to] between two of this node's arcs, and the
// position that follows it.
type gap struct {
	from, to chord.ID
	next     *position
}

// gaps returns the arcs this node owns at none of its positions, each with
// the position after it: with one position the arc from it around to its
// predecessor. A position whose predecessor is unknown, or lies outside the
// stretch from the previous local position, has no gap before it: nothing
// there is placed until its view settles.
func (s *Service) gaps() []gap {
	ps := slices.Clone(s.ps())
	slices.SortFunc(ps, func(a, b *position) int { return a.node.Self().ID.Cmp(b.node.Self().ID) })
	var out []gap
	for i, p := range ps {
		prev := ps[(i+len(ps)-1)%len(ps)].node.Self().ID
		pred, ok := p.node.Predecessor()
		self := p.node.Self().ID
		if !ok || pred.ID == prev || pred.ID == self {
			continue // no gap: the arcs touch
		}
		if len(ps) > 1 && !pred.ID.InOpen(prev, self) {
			continue
		}
		out = append(out, gap{from: prev, to: pred.ID, next: p})
	}
	return out
}
