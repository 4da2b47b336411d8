package dht

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// Bounds on what one call may ask for.
const (
	maxPageRecords = 1024
	maxFetchKeys   = 1024
)

func (s *Service) register(p *position) {
	handle(s, p, methodPut, s.handlePut)
	handle(s, p, methodGet, s.handleGet)
	handle(s, p, methodStore, s.handleStore)
	handle(s, p, methodRange, s.handleRange)
	handle(s, p, methodDigest, s.handleDigest)
	handle(s, p, methodVersions, s.handleVersions)
	handle(s, p, methodFetch, s.handleFetch)
	handle(s, p, methodRecheck, s.handleRecheck)
}

// recheckArgs is empty: the call only says "your copies may have left a
// replication window".
type recheckArgs struct{}

// handleRecheck starts a maintenance round soon (rounds coalesce: a burst of
// these runs at most one extra round).
func (s *Service) handleRecheck(_ context.Context, _ chord.ID, _ recheckArgs) (any, error) {
	s.Kick()
	return struct{}{}, nil
}

func (s *Service) handlePut(ctx context.Context, _ chord.ID, a putArgs) (any, error) {
	if len(a.Value) < 1 || len(a.Value) > MaxValueBytes || a.Replication < 1 {
		return nil, fmt.Errorf("%w: value of %d bytes, replication %d", chord.ErrBadRequest, len(a.Value), a.Replication)
	}
	at := s.calledAt(ctx)
	if pos := chord.KeyPosition([32]byte(a.Key)); !s.owns(pos) || (a.Route && !at.node.Owns(pos)) {
		return s.refer(at, a.Route, pos)
	}
	// A put read just after this node ran again from a gap may have waited
	// through it: its caller's time is counted from the gap's start, so
	// that one the caller has given up on (and sent elsewhere meanwhile)
	// is not versioned now, above the writes that followed it.
	if dl, ok := ctx.Deadline(); ok {
		t := time.Now()
		if waited := t.Sub(s.fresh.arrival(t)); waited > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-waited))
			defer cancel()
			if ctx.Err() != nil {
				s.metrics.refused.WithLabelValues("late_put").Inc()
				return nil, fmt.Errorf("%w: a put that waited while this node did not run; its caller's time is up", chord.ErrOverloaded)
			}
		}
	}
	// The entry node cut both already; a member that did not is cut here.
	now := s.now()
	if a.Expiry <= now.UnixNano() {
		return nil, fmt.Errorf("%w: expiry %d is not in the future", chord.ErrBadRequest, a.Expiry)
	}
	a.Expiry = min(a.Expiry, now.Add(s.cfg.MaxTTL).UnixNano())
	a.Replication = min(a.Replication, uint8(s.cfg.MaxReplication))
	v, err := s.ownerPut(ctx, a)
	if err != nil {
		return nil, err
	}
	return putReply{Version: v, Neighbours: at.neighbours(a.Neighbours)}, nil
}

// refer answers a request for pos, which the position at that was called
// at does not own: with its referral if the caller routes (route), else
// with ErrNotOwner.
func (s *Service) refer(at *position, route bool, pos chord.ID) (any, error) {
	if !route {
		return nil, chord.ErrNotOwner
	}
	ref, err := at.node.Refer(pos)
	if err != nil {
		return nil, err
	}
	return referralReply{Referral: &ref}, nil
}

// neighbours returns the position's neighbours if asked for, else nil.
func (p *position) neighbours(asked bool) *chord.Neighbours {
	if !asked {
		return nil
	}
	nb := p.node.Neighbours()
	return &nb
}

func (s *Service) handleGet(ctx context.Context, _ chord.ID, a getArgs) (any, error) {
	at := s.calledAt(ctx)
	if pos := chord.KeyPosition([32]byte(a.Key)); a.Route && !at.node.Owns(pos) {
		return s.refer(at, true, pos)
	}
	// A routed get asks the owner, which answers as the owner (see
	// ownRecord); any other asks this node's own copy.
	var rec store.Record
	var err error
	if a.Route {
		rec, err = s.ownRecord(ctx, [32]byte(a.Key))
	} else {
		rec, err = s.db.Get([32]byte(a.Key))
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, chord.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if a.Neighbours {
		return getReply{wireRecord: toWire(rec), Neighbours: at.neighbours(true)}, nil
	}
	return toWire(rec), nil
}

func (s *Service) handleStore(ctx context.Context, from chord.ID, a storeArgs) (any, error) {
	if len(a.Records) > maxPageRecords {
		return nil, fmt.Errorf("%w: %d records in one call, at most %d", chord.ErrBadRequest, len(a.Records), maxPageRecords)
	}
	now := s.now()
	recs := make([]store.Record, 0, len(a.Records))
	var refused []chord.ID
	var views []*ringView // read at the first record this node does not own
	for _, w := range a.Records {
		pos := chord.KeyPosition([32]byte(w.Key))
		owns := s.owns(pos)
		rec, live, err := s.admit(w, owns, now)
		if err == nil && !owns {
			if !s.mayHold(&views, from, pos, int(rec.Replication), a.Skipped) {
				s.metrics.refused.WithLabelValues("window").Inc()
				err = errOutOfWindow
			}
		}
		switch {
		case errors.Is(err, errTooFarAhead), errors.Is(err, errOutOfWindow):
			// Refused alone (and counted, and named in the reply so that
			// the sender does not count this copy): the rest of the page
			// is kept.
			s.log.Debug("record refused", "from", from.Short(), "key", w.Key.Short(), "error", err)
			refused = append(refused, w.Key)
			continue
		case err != nil:
			return nil, fmt.Errorf("%w: %v", chord.ErrBadRequest, err)
		case !live:
			continue // expired records never come back
		}
		recs = append(recs, rec)
	}
	// One queued batch: a page shares its fsyncs instead of paying one per
	// record, which a 2-second call could not afford on a slow disk.
	stored, err := s.db.PutAll(ctx, recs)
	s.metrics.received.Add(float64(stored))
	if err != nil {
		return nil, err
	}
	return storeReply{Stored: stored, Refused: refused}, nil
}

func (s *Service) handleRange(_ context.Context, _ chord.ID, a rangeArgs) (any, error) {
	limit := a.Limit
	if limit <= 0 || limit > maxPageRecords {
		limit = maxPageRecords
	}
	var reply rangeReply
	var bytes int
	next, err := s.scan(a.From, a.To, a.After, limit, func(r store.Record) bool {
		if len(reply.Records) > 0 && bytes+len(r.Value) > s.cfg.PageBytes {
			return false
		}
		bytes += len(r.Value)
		reply.Records = append(reply.Records, toWire(r))
		return true
	})
	if err != nil {
		return nil, err
	}
	reply.Next = next
	return reply, nil
}

func (s *Service) handleDigest(_ context.Context, _ chord.ID, a digestArgs) (any, error) {
	d, err := s.digest(a.From, a.To)
	if err != nil {
		return nil, err
	}
	return digestReply{Buckets: d.level(int(a.MinReplication)), Skipped: s.suspects.current()}, nil
}

func (s *Service) handleVersions(ctx context.Context, _ chord.ID, a versionsArgs) (any, error) {
	if a.Owner != nil {
		if at := s.calledAt(ctx); !at.node.Owns(*a.Owner) || !at.node.Owns(a.To) {
			return nil, fmt.Errorf("%w: %s..%s", chord.ErrNotOwner, a.Owner.Short(), a.To.Short())
		}
	}
	limit := a.Limit
	if limit <= 0 || limit > maxPageRecords {
		limit = maxPageRecords
	}
	entries, next, err := s.versions(a, limit)
	if err != nil {
		return nil, err
	}
	return versionsReply{Entries: entries, Next: next}, nil
}

func (s *Service) handleFetch(_ context.Context, _ chord.ID, a fetchArgs) (any, error) {
	if len(a.Keys) > maxFetchKeys {
		return nil, fmt.Errorf("%w: %d keys in one call, at most %d", chord.ErrBadRequest, len(a.Keys), maxFetchKeys)
	}
	var reply fetchReply
	var bytes int
	for i, k := range a.Keys {
		rec, err := s.db.Get([32]byte(k))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(reply.Records) > 0 && bytes+len(rec.Value) > s.cfg.PageBytes {
			reply.Rest = a.Keys[i:] // the caller asks again for these
			break
		}
		bytes += len(rec.Value)
		reply.Records = append(reply.Records, toWire(rec))
	}
	return reply, nil
}
