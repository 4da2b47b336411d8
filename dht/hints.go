package dht

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/internal/ctxutil"
	"github.com/durachord/durachord/store"
)

// Hinted handoff. A PUT that this node took from a client and could not hand
// to the key's owner before the request's deadline (no owner reachable, the
// owner overloaded or short of its write quorum) is not dropped: it is kept
// durably here as a hint, and the PUT counts as done. A GET through this
// node answers from the hint while it is kept, so read-your-writes holds. A
// delivery loop sends each hint to the key's owner as a dht.put carrying the
// time the PUT was taken (hinted_at); the owner stores it unless it already
// holds a version written after that time (the hint is then superseded), and
// the hint is deleted once the owner has answered either way. Hints expire
// with the record they carry.

// Hints is the store of hints; *store.Store implements it. A Records that
// does not is served without hinted handoff.
type Hints interface {
	PutHint(ctx context.Context, h store.Record, maxCount int, maxBytes int64) error
	GetHint(key [32]byte) (store.Record, error)
	Hints(after *store.Position, limit int) ([]store.Record, *store.Position, error)
	DeleteHint(key [32]byte, version store.Version) error
	HintCount() (int, int64)
}

var _ Hints = (*store.Store)(nil)

// Bounds of the hinted handoff.
const (
	// hintMargin is the part of a PUT's time left for writing its hint:
	// the owner is tried until the deadline minus this much (at most a
	// quarter of the time the PUT had).
	hintMargin = 500 * time.Millisecond
	// hintPage is the hints read from the store at a time for delivery.
	hintPage = 256
)

// putOrHint runs put until shortly before ctx's deadline and, when no owner
// took the record by then, keeps it as a hint.
func (s *Service) putOrHint(ctx context.Context, a putArgs, takenAt time.Time) (int, error) {
	if s.hints == nil {
		calls, v, err := s.putVersion(ctx, a)
		if err == nil {
			s.notePut(a, v)
		}
		return calls, err
	}
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if dl, ok := ctx.Deadline(); ok {
		margin := min(hintMargin, time.Until(dl)/4)
		pctx, cancel = context.WithDeadline(ctx, dl.Add(-margin))
	}
	calls, v, err := s.putVersion(pctx, a)
	cancel()
	switch {
	case err == nil:
		s.dropOlderHint([32]byte(a.Key), takenAt)
		s.notePut(a, v)
		return calls, nil
	case !errors.Is(err, ErrNoOwner) || ctx.Err() != nil:
		return calls, err
	}
	h := store.Record{
		Key:         [32]byte(a.Key),
		Value:       a.Value,
		Expiry:      time.Unix(0, a.Expiry),
		Version:     store.Version{Clock: uint64(takenAt.UnixNano())},
		Replication: a.Replication,
	}
	if herr := s.hints.PutHint(ctx, h, s.cfg.MaxHints, s.cfg.MaxHintBytes); herr != nil {
		outcome := "failed"
		if errors.Is(herr, store.ErrHintsFull) {
			outcome = "full"
		}
		s.metrics.hints.WithLabelValues(outcome).Inc()
		return calls, fmt.Errorf("%w; and no hint kept: %w", err, herr)
	}
	s.metrics.hints.WithLabelValues("stored").Inc()
	s.log.Debug("put kept as a hint for its owner", "key", a.Key.Short(), "error", err)
	s.kickHints()
	return calls, nil
}

// dropOlderHint deletes the hint of key taken before takenAt: a later PUT
// of the key reached its owner, and the hint must neither answer GETs here
// nor be delivered over it.
func (s *Service) dropOlderHint(key [32]byte, takenAt time.Time) {
	if n, _ := s.hints.HintCount(); n == 0 {
		return
	}
	h, err := s.hints.GetHint(key)
	if err != nil || h.Version.Clock >= uint64(takenAt.UnixNano()) {
		return
	}
	if err := s.hints.DeleteHint(key, h.Version); err != nil {
		s.log.Warn("could not delete a superseded hint", "key", chord.ID(key).Short(), "error", err)
		return
	}
	s.metrics.hints.WithLabelValues("superseded").Inc()
}

// hinted returns the live hint for key, if this node keeps one.
func (s *Service) hinted(key [32]byte) (store.Record, bool) {
	if s.hints == nil {
		return store.Record{}, false
	}
	if n, _ := s.hints.HintCount(); n == 0 {
		return store.Record{}, false
	}
	h, err := s.hints.GetHint(key)
	if err != nil || !h.Expiry.After(s.now()) {
		return store.Record{}, false
	}
	return h, true
}

// kickHints starts a delivery round soon.
func (s *Service) kickHints() {
	select {
	case s.hintKick <- struct{}{}:
	default:
	}
}

// deliverHints runs delivery rounds every HintInterval, and soon after a
// hint is kept, until ctx ends.
func (s *Service) deliverHints(ctx context.Context) {
	if s.hints == nil {
		return
	}
	t := time.NewTicker(s.cfg.HintInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.hintKick:
			// Let the ring settle a little: the owner was out of reach
			// a moment ago.
			if ctxutil.Sleep(ctx, s.cfg.HintInterval) != nil {
				return
			}
		}
		if n, _ := s.hints.HintCount(); n > 0 {
			s.DeliverHints(ctx)
		}
	}
}

// DeliverHints tries once to hand every hint to its owner and returns how
// many are left.
func (s *Service) DeliverHints(ctx context.Context) int {
	if s.hints == nil {
		return 0
	}
	var after *store.Position
	for ctx.Err() == nil {
		page, next, err := s.hints.Hints(after, hintPage)
		if err != nil {
			s.log.Warn("could not read hints", "error", err)
			break
		}
		for _, h := range page {
			if ctx.Err() != nil {
				break
			}
			s.deliver(ctx, h)
		}
		if next == nil {
			break
		}
		after = next
	}
	n, _ := s.hints.HintCount()
	return n
}

// deliver sends one hint to its owner; the hint is deleted once the owner
// has it (or a newer version), or once it has expired.
func (s *Service) deliver(ctx context.Context, h store.Record) {
	if !h.Expiry.After(s.now()) {
		if err := s.hints.DeleteHint(h.Key, h.Version); err == nil {
			s.metrics.hints.WithLabelValues("expired").Inc()
		}
		return
	}
	a := putArgs{
		Key:         chord.ID(h.Key),
		Value:       h.Value,
		Expiry:      h.Expiry.UnixNano(),
		Replication: h.Replication,
		HintedAt:    int64(h.Version.Clock),
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	_, err := s.put(cctx, a)
	cancel()
	if err != nil {
		s.log.Debug("hint not delivered yet", "key", a.Key.Short(), "error", err)
		return
	}
	// Until now GETs through this node answered the hint itself; from now
	// on they ask the ring, where for a moment a node that only believes
	// it owns the key can answer an older copy. The hint is remembered at
	// the time it was taken, so that a version written after it (the one
	// the owner stored for it, or a later write that superseded it)
	// answers instead of it, and anything older does not.
	s.recent.note(h, time.Now())
	if err := s.hints.DeleteHint(h.Key, h.Version); err != nil {
		s.log.Warn("could not delete a delivered hint", "key", a.Key.Short(), "error", err)
		return
	}
	s.metrics.hints.WithLabelValues("delivered").Inc()
}

// hintedAt returns when the hinted PUT a was taken, cut to this node's clock
// + MaxClockAhead; 0 for a PUT that is not a delivered hint.
func (s *Service) hintedAt(a putArgs) uint64 {
	if a.HintedAt <= 0 {
		return 0
	}
	return min(uint64(a.HintedAt), uint64(s.now().Add(s.cfg.MaxClockAhead).UnixNano()))
}

// superseded reports whether the owner serves a version of a's key written
// at or after the hinted PUT was taken (see hintedAt), and returns it. While
// the owner is out of sync its successors' copies count too.
func (s *Service) superseded(ctx context.Context, a putArgs) (store.Version, bool) {
	at := s.hintedAt(a)
	if at == 0 {
		return store.Version{}, false
	}
	// What the owner serves: a version still short of its write quorum
	// does not supersede the hint, which then goes in as a new version.
	var cur store.Version
	if r, err := s.db.Get([32]byte(a.Key)); err == nil {
		cur = r.Version
	}
	if cur = s.newestVersion(ctx, [32]byte(a.Key), cur); cur.IsZero() || cur.Clock < at {
		return store.Version{}, false
	}
	return cur, true
}

// notePut remembers an acknowledged PUT for read-your-writes (see recent.go).
func (s *Service) notePut(a putArgs, v store.Version) {
	if v.IsZero() {
		return
	}
	s.recent.note(store.Record{Key: [32]byte(a.Key), Value: a.Value, Expiry: time.Unix(0, a.Expiry),
		Version: v, Replication: a.Replication}, time.Now())
}
