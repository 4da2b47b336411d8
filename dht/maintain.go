package dht

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/internal/ctxutil"
	"github.com/durachord/durachord/store"
)

// Bounds of one maintenance round.
const (
	// maxOwnerGroups caps the lookups one placement pass makes.
	maxOwnerGroups = 256
	// sweepBatch caps the records one sweep transaction deletes.
	sweepBatch = 1000
	// flagWorkers is how many flag changes and deletes run at once, so that
	// the store's group commit can share their fsyncs.
	flagWorkers = 32
	// recheckQueue bounds the recheck hints waiting to be sent; more are
	// dropped (the periodic round does their work).
	recheckQueue = 16
)

var errStop = errors.New("dht: stop scan")

// scan walks the live records of the arc (from, to] in ring order after
// `after`, at most limit of them, while fn accepts them. It returns the
// position to resume from, or nil when the arc is done.
func (s *Service) scan(from, to chord.ID, after *chord.ID, limit int, fn func(store.Record) bool) (*chord.ID, error) {
	var last *chord.ID
	stopped := false
	next, err := s.db.Range(store.Position(from), store.Position(to), (*store.Position)(after), limit, func(r store.Record) error {
		if !fn(r) {
			stopped = true
			return errStop
		}
		p := chord.KeyPosition(r.Key)
		last = &p
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	if stopped {
		if last == nil {
			return after, nil
		}
		return last, nil
	}
	return (*chord.ID)(next), nil
}

// scanAll walks every live record of the arc (from, to] in pages.
func (s *Service) scanAll(ctx context.Context, from, to chord.ID, fn func(store.Record) error) error {
	var after *chord.ID
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		next, err := s.scan(from, to, after, maxPageRecords, func(r store.Record) bool {
			ferr = fn(r)
			return ferr == nil
		})
		if ferr != nil {
			return ferr
		}
		if err != nil {
			return err
		}
		if next == nil {
			return nil
		}
		after = next
	}
}

func versionHash(pos chord.ID, v store.Version) uint64 {
	var b [chord.IDBytes + 16]byte
	copy(b[:], pos[:])
	binary.BigEndian.PutUint64(b[chord.IDBytes:], v.Clock)
	binary.BigEndian.PutUint64(b[chord.IDBytes+8:], v.Node)
	h := sha256.Sum256(b[:])
	return binary.BigEndian.Uint64(h[:8])
}

// digestSet holds, per requested replication, the count and XOR hash of the
// records in each top-byte bucket.
type digestSet map[uint8]*[256]bucketDigest

func (s *Service) digest(from, to chord.ID) (digestSet, error) {
	d := digestSet{}
	err := s.scanAll(context.Background(), from, to, func(r store.Record) error {
		b := d[r.Replication]
		if b == nil {
			b = new([256]bucketDigest)
			d[r.Replication] = b
		}
		pos := chord.KeyPosition(r.Key)
		b[pos[0]].Count++
		b[pos[0]].Hash ^= versionHash(pos, r.Version)
		return nil
	})
	return d, err
}

// level folds the digests of the records whose replication is at least min.
func (d digestSet) level(minRepl int) []bucketDigest {
	var sum [256]bucketDigest
	for r, b := range d {
		if int(r) < minRepl {
			continue
		}
		for i := range b {
			sum[i].Count += b[i].Count
			sum[i].Hash ^= b[i].Hash
		}
	}
	var out []bucketDigest
	for i, b := range sum {
		if b.Count > 0 {
			out = append(out, bucketDigest{Bucket: i, Count: b.Count, Hash: b.Hash})
		}
	}
	return out
}

// mismatched returns the buckets where two digests differ.
func mismatched(a, b []bucketDigest) []int {
	idx := func(ds []bucketDigest) map[int]bucketDigest {
		m := make(map[int]bucketDigest, len(ds))
		for _, d := range ds {
			m[d.Bucket] = d
		}
		return m
	}
	ma, mb := idx(a), idx(b)
	var out []int
	for k, da := range ma {
		if db, ok := mb[k]; !ok || db != da {
			out = append(out, k)
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func (s *Service) versions(a versionsArgs, limit int) ([]versionEntry, *chord.ID, error) {
	var out []versionEntry
	next, err := s.scan(a.From, a.To, a.After, 0, func(r store.Record) bool {
		if len(out) >= limit {
			return false
		}
		pos := chord.KeyPosition(r.Key)
		if int(r.Replication) < int(a.MinReplication) {
			return true
		}
		if len(a.Buckets) > 0 && !slices.Contains(a.Buckets, int(pos[0])) {
			return true
		}
		out = append(out, versionEntry{Key: chord.ID(r.Key), Version: r.Version})
		return true
	})
	return out, next, err
}

// remoteVersions collects a peer's versions for an arc.
func (s *Service) remoteVersions(ctx context.Context, peer chord.NodeInfo, a versionsArgs) (map[chord.ID]store.Version, error) {
	out := map[chord.ID]store.Version{}
	for {
		var reply versionsReply
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
		err := s.tr.Call(cctx, peer, methodVersions, a, &reply)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("versions from %v: %w", peer, err)
		}
		for _, e := range reply.Entries {
			out[e.Key] = e.Version
		}
		if reply.Next == nil {
			return out, nil
		}
		a.After = reply.Next
	}
}

// push sends records to peer in pages, paced by the repair rate.
func (s *Service) push(ctx context.Context, peer chord.NodeInfo, recs []store.Record) error {
	return s.sendPages(ctx, peer, recs, true)
}

// sendPages sends records to peer in pages of at most maxPageRecords records
// and PageBytes value bytes, paced by the repair rate when paced is set.
// A page goes from one position (sendingPosition of its records).
func (s *Service) sendPages(ctx context.Context, peer chord.NodeInfo, recs []store.Record, paced bool) error {
	refused := 0
	for len(recs) > 0 {
		var page []wireRecord
		bytes := 0
		from := s.sendingPosition(chord.KeyPosition(recs[0].Key))
		for len(recs) > 0 && len(page) < maxPageRecords {
			r := recs[0]
			if len(page) > 0 && bytes+len(r.Value) > s.cfg.PageBytes {
				break
			}
			if len(s.ps()) > 1 && len(page) > 0 && s.sendingPosition(chord.KeyPosition(r.Key)) != from {
				break
			}
			bytes += len(r.Value)
			page = append(page, toWire(r))
			recs = recs[1:]
		}
		if paced {
			if err := s.pace(ctx, len(page)); err != nil {
				return err
			}
		}
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
		var reply storeReply
		err := s.transport(from).Call(cctx, peer, methodStore, storeArgs{Records: page, Skipped: s.suspects.current()}, &reply)
		cancel()
		if err != nil {
			return fmt.Errorf("store %d records at %v: %w", len(page), peer, err)
		}
		refused += len(reply.Refused)
	}
	if refused > 0 {
		// The rest went in; the peer's view of the ring disagrees with
		// this node's about these, and the next rounds decide again.
		return fmt.Errorf("store at %v: %d records: %w", peer, refused, errCopyRefused)
	}
	return nil
}

// fetch asks peer for the records under keys and stores the live ones.
func (s *Service) fetch(ctx context.Context, peer chord.NodeInfo, keys []chord.ID) (int, error) {
	got := 0
	for len(keys) > 0 {
		n := min(len(keys), maxFetchKeys)
		if err := s.pace(ctx, n); err != nil {
			return got, err
		}
		var reply fetchReply
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
		err := s.tr.Call(cctx, peer, methodFetch, fetchArgs{Keys: keys[:n]}, &reply)
		cancel()
		if err != nil {
			return got, fmt.Errorf("fetch %d records from %v: %w", n, peer, err)
		}
		recs := make([]store.Record, 0, len(reply.Records))
		now := s.now()
		for _, w := range reply.Records {
			rec, live, err := s.admit(w, s.owns(chord.KeyPosition([32]byte(w.Key))), now)
			if err != nil || !live {
				continue
			}
			recs = append(recs, rec)
		}
		stored, err := s.db.PutAll(ctx, recs)
		got += stored
		if err != nil {
			return got, err
		}
		if len(reply.Rest) >= n {
			return got, fmt.Errorf("fetch from %v: no progress", peer)
		}
		keys = append(reply.Rest, keys[n:]...)
	}
	return got, nil
}

// pace waits until n more records may move under the repair rate.
func (s *Service) pace(ctx context.Context, n int) error {
	s.paceMu.Lock()
	now := time.Now()
	if s.paceNext.Before(now) {
		s.paceNext = now
	}
	wait := s.paceNext.Sub(now)
	s.paceNext = s.paceNext.Add(time.Duration(float64(n) / float64(s.cfg.RepairRate) * float64(time.Second)))
	s.paceMu.Unlock()
	if wait <= 0 {
		return nil
	}
	return ctxutil.Sleep(ctx, wait)
}

// Maintain runs one maintenance round: promotion of replicas in this node's
// arc, placement of the records outside it, and anti-entropy with the
// replica holders. Run calls it periodically and on ring changes; tests call
// it directly.
func (s *Service) Maintain(ctx context.Context) error {
	s.maintainMu.Lock()
	defer s.maintainMu.Unlock()
	gen := s.fresh.gen.Load()
	// Each position's arc, while its predecessor is known; a position on
	// the ring alone with this node's others has every record.
	type arc struct {
		p    *position
		pred chord.ID
	}
	var arcs []arc
	alone := true
	for _, p := range s.ps() {
		pred, ok := p.node.Predecessor()
		if !ok {
			continue // the arc is not known yet
		}
		arcs = append(arcs, arc{p, pred.ID})
		alone = alone && samePhysical(pred, p.node.Self())
	}
	if len(arcs) == 0 {
		return nil
	}
	if alone && len(arcs) == len(s.ps()) {
		s.syncedBy(gen)
		return nil // alone on the ring: every record is ours and primary
	}
	var errs []error
	for _, a := range arcs {
		errs = append(errs, s.promote(ctx, a.pred, a.p.node.Self().ID))
	}
	for _, g := range s.gaps() {
		errs = append(errs, s.place(ctx, g))
	}
	for _, a := range arcs {
		errs = append(errs, s.antiEntropy(ctx, a.p, a.pred))
	}
	err := errors.Join(errs...)
	if err == nil && len(arcs) < len(s.ps()) {
		return nil // in sync only once every arc is
	}
	if err != nil {
		s.metrics.rounds.WithLabelValues("error").Inc()
		return err
	}
	s.metrics.rounds.WithLabelValues("ok").Inc()
	s.syncedBy(gen)
	return nil
}

// each runs fn on every key with at most flagWorkers at once, so that the
// store's group commit shares the fsyncs.
func (s *Service) each(ctx context.Context, keys [][32]byte, fn func(context.Context, [32]byte) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		sem   = make(chan struct{}, flagWorkers)
	)
	for _, k := range keys {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, k); err != nil {
				mu.Lock()
				first = cmpOr(first, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// promote flags as primary the replicas whose position is in (pred, self].
func (s *Service) promote(ctx context.Context, pred, self chord.ID) error {
	var keys [][32]byte
	err := s.scanAll(ctx, pred, self, func(r store.Record) error {
		if !r.Primary {
			keys = append(keys, r.Key)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("promote: %w", err)
	}
	err = s.each(ctx, keys, func(ctx context.Context, k [32]byte) error {
		return s.db.SetPrimary(ctx, k, true)
	})
	s.metrics.promoted.Add(float64(len(keys)))
	return err
}

// place walks the records of a gap between this node's arcs, owner by
// owner: each owner gets what it lacks, and this node keeps a record only
// while it is inside the record's replication window, as a replica.
func (s *Service) place(ctx context.Context, g gap) error {
	cursor, pred := g.from, g.to
	for range maxOwnerGroups {
		// The first record after the cursor in the foreign arc (cursor, pred].
		var first *store.Record
		if _, err := s.scan(cursor, pred, nil, 1, func(r store.Record) bool {
			first = &r
			return true
		}); err != nil {
			return fmt.Errorf("place: %w", err)
		}
		if first == nil {
			return nil
		}
		pos := chord.KeyPosition(first.Key)
		res, err := g.next.node.Lookup(ctx, pos)
		if err != nil {
			return fmt.Errorf("place: lookup %s: %w", pos.Short(), err)
		}
		// Every record in (cursor, owner] shares this owner.
		end := res.Owner.ID
		if !end.InHalfOpen(cursor, pred) {
			end = pred
		}
		if !samePhysical(res.Owner, g.next.node.Self()) {
			if err := s.placeGroup(ctx, g.next, res, pos, cursor, end); err != nil {
				return err
			}
		}
		if end == pred {
			return nil
		}
		cursor = end
	}
	return nil
}

func (s *Service) placeGroup(ctx context.Context, at *position, res chord.LookupResult, first, from, to chord.ID) error {
	self := at.node.Self().ID
	owner := res.Owner
	// The owner's own successor list decides the replication windows: it is
	// the list the owner replicates by, so keeping and pushing agree.
	succs, err := s.successorsOf(ctx, owner)
	if err != nil {
		return fmt.Errorf("place: %w", err)
	}
	// Compare digests first: on a settled ring the owner holds everything
	// and no version list needs to cross the network.
	mine, err := s.digest(from, to)
	if err != nil {
		return fmt.Errorf("place: %w", err)
	}
	var remote digestReply
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	err = s.tr.Call(cctx, owner, methodDigest, digestArgs{From: from, To: to, MinReplication: 1}, &remote)
	cancel()
	if err != nil {
		return fmt.Errorf("place: digest of %v: %w", owner, err)
	}
	diff := mismatched(mine.level(1), remote.Buckets)
	var theirs map[chord.ID]store.Version
	if len(diff) > 0 {
		va := versionsArgs{From: from, To: to, MinReplication: 1, Buckets: diff, Limit: maxPageRecords}
		if theirs, err = s.remoteVersions(ctx, owner, va); err != nil {
			return fmt.Errorf("place: %w", err)
		}
	}
	s.suspects.compared(owner.ID, from, to, diff, theirs, s.holdsAtLeast)
	// The owner's window skips the holders it suspects (but this node never
	// counts itself out on that word).
	succs = without(succs, remote.Skipped, self)
	var send []store.Record
	var keep, drop [][32]byte
	// The version of each record to let go that the owner is known to
	// hold: one that arrives here after it is not let go.
	held := make(map[[32]byte]store.Version)
	// This node, at whichever of its positions the window names it.
	me := func(n chord.NodeInfo) bool { return samePhysical(n, s.node.Self()) }
	err = s.scanAll(ctx, from, to, func(r store.Record) error {
		inWindow := slices.ContainsFunc(holders(owner, succs, int(r.Replication)), me)
		pos := chord.KeyPosition(r.Key)
		if slices.Contains(diff, int(pos[0])) {
			v, ok := theirs[chord.ID(r.Key)]
			if !ok || v.Compare(r.Version) < 0 {
				send = append(send, r)
			}
		}
		switch {
		case inWindow && r.Primary:
			keep = append(keep, r.Key)
			held[r.Key] = r.Version
		case !inWindow:
			drop = append(drop, r.Key)
			held[r.Key] = r.Version
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("place: %w", err)
	}
	if len(send) > 0 {
		if err := s.push(ctx, owner, send); err != nil {
			return fmt.Errorf("place: hand over to owner: %w", err)
		}
		s.suspects.acked(owner.ID, send)
		s.metrics.handoff.Add(float64(len(send)))
		s.log.Debug("handed records to their owner", "owner", owner.Addr, "records", len(send))
	}
	if s.suspects.is(owner.ID) {
		// An owner that loses what it takes: nothing is let go on its word,
		// and its successor stands in for it, keeping the group's records
		// on its own window.
		s.metrics.refused.WithLabelValues("suspect").Inc()
		if p, ok := at.node.Predecessor(); ok && p.ID == owner.ID {
			return s.standIn(ctx, at, from, to, mine)
		}
		return nil
	}
	// Nothing is let go on the word of a node that this node's own view
	// does not make the owner, nor on a successor list that leaves out
	// this node where it belongs, nor before the owner has confirmed that
	// it holds every record let go (at its version or newer).
	if why := s.implausibleOwner(at, owner, first, to, succs); why != "" {
		s.metrics.refused.WithLabelValues("placement").Inc()
		s.log.Debug("keeping copies: the owner's claim does not agree with this node's view", "owner", owner.Addr, "why", why)
		return nil
	}
	if len(send) > 0 && len(keep)+len(drop) > 0 {
		if err := s.confirmHeld(ctx, owner, first, from, to, append(slices.Clone(keep), drop...), held); err != nil {
			s.metrics.refused.WithLabelValues("unconfirmed").Inc()
			return fmt.Errorf("place: %w", err)
		}
	}
	// Only now that the owner holds every record is anything let go, and
	// only at the version the owner holds: a newer one that arrived since
	// stays until a later round compares it.
	if err := s.each(ctx, keep, func(ctx context.Context, k [32]byte) error {
		return s.raw.SetPrimaryUpTo(ctx, k, false, held[k])
	}); err != nil {
		return fmt.Errorf("place: demote: %w", err)
	}
	var mu sync.Mutex
	dropped := 0
	if err := s.each(ctx, drop, func(ctx context.Context, k [32]byte) error {
		ok, err := s.raw.DeleteUpTo(ctx, k, held[k])
		if ok {
			mu.Lock()
			dropped++
			mu.Unlock()
		}
		return err
	}); err != nil {
		return fmt.Errorf("place: drop: %w", err)
	}
	s.metrics.dropped.Add(float64(dropped))
	return nil
}

// standIn keeps the records of (from, to], which a suspect owner would
// hold, on this node's own window as if this node owned them (mine is this
// node's digest of them).
func (s *Service) standIn(ctx context.Context, at *position, from, to chord.ID, mine digestSet) error {
	var errs []error
	for i, h := range s.windowOf(at.node.Self(), at.node.Successors(), s.cfg.MaxReplication) {
		if err := s.syncHolder(ctx, from, to, h, i+2, mine, false); err != nil {
			errs = append(errs, fmt.Errorf("standing in for a suspect owner, with %v: %w", h, err))
		}
	}
	return errors.Join(errs...)
}

// implausibleOwner says why owner, as a lookup named it for the records from
// position first to to (the group's first record and the group's end), with
// the successor list succs it gave, cannot be the owner in this node's own
// view ("" when it can): a node this node knows of lies in [first, to]
// other than the owner (it would own some of them), the list is not in ring
// order after the owner, it leaves out this node although this node lies
// within it, or it names a node between this node's predecessor and itself.
func (s *Service) implausibleOwner(at *position, owner chord.NodeInfo, first, to chord.ID, succs []chord.NodeInfo) string {
	self := at.node.Self().ID
	known := append(at.node.Successors(), at.node.DistinctFingers()...)
	if p, ok := at.node.Predecessor(); ok {
		known = append(known, p)
	}
	for _, p := range s.ps() {
		known = append(known, p.node.Self())
	}
	for _, n := range known {
		if n.ID != owner.ID && (n.ID == first || (n.ID.InHalfOpen(first, to) && first != to)) {
			return fmt.Sprintf("%v lies among the records %s..%s that %v claims", n, first.Short(), to.Short(), owner)
		}
	}
	pred, hasPred := at.node.Predecessor()
	prev := owner.ID
	for _, n := range succs {
		if n.ID == owner.ID {
			break // the list wrapped around a small ring
		}
		if hasPred && n.ID.InOpen(pred.ID, self) {
			// It would be this node's predecessor, and this node has not
			// heard of it: a node that has just joined there tells this
			// node soon, and until then the copies stay.
			return fmt.Sprintf("its successor list names %v between this node's predecessor and itself", n)
		}
		if self.InHalfOpen(prev, n.ID) && self != n.ID {
			return fmt.Sprintf("its successor list skips this node between %s and %s", prev.Short(), n.ID.Short())
		}
		if n.ID == self {
			break
		}
		if !n.ID.InHalfOpen(prev, owner.ID) {
			return fmt.Sprintf("its successor list is out of ring order at %s", n.ID.Short())
		}
		prev = n.ID
	}
	return ""
}

// confirmHeld asks owner for its versions of the records of (from, to] and
// fails unless it holds every one of keys at this node's version or newer;
// held[k] becomes the version of k confirmed.
func (s *Service) confirmHeld(ctx context.Context, owner chord.NodeInfo, first, from, to chord.ID, keys [][32]byte, held map[[32]byte]store.Version) error {
	buckets := map[int]bool{}
	for _, k := range keys {
		buckets[int(chord.KeyPosition(k)[0])] = true
	}
	// Only the position that owns the records confirms them: a node at
	// several positions holds the replicas of some in the same store.
	va := versionsArgs{From: from, To: to, MinReplication: 1, Limit: maxPageRecords, Owner: &first}
	for b := range buckets {
		va.Buckets = append(va.Buckets, b)
	}
	slices.Sort(va.Buckets)
	theirs, err := s.remoteVersions(ctx, owner, va)
	if err != nil {
		return fmt.Errorf("confirm with %v: %w", owner, err)
	}
	for _, k := range keys {
		mine, err := s.raw.Get(k)
		if err != nil {
			continue // gone or expired here meanwhile
		}
		if v, ok := theirs[chord.ID(k)]; !ok || v.Compare(mine.Version) < 0 {
			return fmt.Errorf("%v does not confirm %s at %v; keeping this node's copies", owner, chord.ID(k).Short(), mine.Version)
		}
		held[k] = mine.Version
	}
	return nil
}

// neighbours is the reply of the ring's chord.neighbours call.
type neighbours struct {
	Predecessor *chord.NodeInfo  `json:"predecessor"`
	Successors  []chord.NodeInfo `json:"successors"`
}

// successorsOf asks a node for its successor list.
func (s *Service) successorsOf(ctx context.Context, n chord.NodeInfo) ([]chord.NodeInfo, error) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	var nb neighbours
	if err := s.tr.Call(cctx, n, "chord.neighbours", nil, &nb); err != nil {
		return nil, fmt.Errorf("successors of %v: %w", n, err)
	}
	return nb.Successors, nil
}

// antiEntropy compares this node's arc with each replica holder, bucket by
// bucket, and moves only the records that differ, in both directions. The
// holders are those of this node's window, which skips suspects (see
// suspect.go); a suspect that would be in it without that is still
// compared, and probed with a few copies, so that it is cleared once it
// holds what it takes.
func (s *Service) antiEntropy(ctx context.Context, p *position, pred chord.ID) error {
	self := p.node.Self()
	mine, err := s.digest(pred, self.ID)
	if err != nil {
		return fmt.Errorf("anti-entropy: %w", err)
	}
	succs := p.node.Successors()
	var errs []error
	for i, h := range s.windowOf(self, succs, s.cfg.MaxReplication) {
		if err := s.syncHolder(ctx, pred, self.ID, h, i+2, mine, false); err != nil {
			errs = append(errs, fmt.Errorf("anti-entropy with %v: %w", h, err))
		}
	}
	for i, h := range holders(self, succs, s.cfg.MaxReplication) {
		if s.suspects.is(h.ID) {
			if err := s.syncHolder(ctx, pred, self.ID, h, i+2, mine, true); err != nil {
				errs = append(errs, fmt.Errorf("anti-entropy with suspect %v: %w", h, err))
			}
		}
	}
	return errors.Join(errs...)
}

// maxProbe is the number of copies a round sends a suspect.
const maxProbe = 16

// syncHolder brings holder h up to date with the records of (from, to]
// whose replication is at least minRepl (mine is this node's digest of
// them), in both directions; a probe sends at most maxProbe copies.
func (s *Service) syncHolder(ctx context.Context, from, to chord.ID, h chord.NodeInfo, minRepl int, mine digestSet, probe bool) error {
	var theirs digestReply
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	err := s.tr.Call(cctx, h, methodDigest, digestArgs{From: from, To: to, MinReplication: uint8(minRepl)}, &theirs)
	cancel()
	if err != nil {
		return err
	}
	diff := mismatched(mine.level(minRepl), theirs.Buckets)
	if len(diff) == 0 {
		s.suspects.compared(h.ID, from, to, nil, nil, s.holdsAtLeast)
		return nil
	}
	va := versionsArgs{From: from, To: to, MinReplication: uint8(minRepl), Buckets: diff, Limit: maxPageRecords}
	remote, err := s.remoteVersions(ctx, h, va)
	if err != nil {
		return err
	}
	s.suspects.compared(h.ID, from, to, diff, remote, s.holdsAtLeast)
	var send []store.Record
	err = s.scanAll(ctx, from, to, func(r store.Record) error {
		pos := chord.KeyPosition(r.Key)
		if int(r.Replication) < minRepl || !slices.Contains(diff, int(pos[0])) {
			return nil
		}
		k := chord.ID(r.Key)
		v, ok := remote[k]
		if (!ok || v.Compare(r.Version) < 0) && (!probe || len(send) < maxProbe) {
			send = append(send, r)
		}
		if ok && v.Compare(r.Version) <= 0 {
			delete(remote, k) // settled: nothing to fetch
			if v == r.Version {
				s.pending.stored(r.Key, r.Version, h.ID)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// What remains in remote is newer there, or missing here.
	want := make([]chord.ID, 0, len(remote))
	for k := range remote {
		want = append(want, k)
	}
	if len(send) > 0 {
		if err := s.push(ctx, h, send); err != nil {
			return err
		}
		s.suspects.acked(h.ID, send)
		if !probe {
			for _, r := range send {
				s.pending.stored(r.Key, r.Version, h.ID) // may complete a write quorum
			}
		}
		s.metrics.repair.WithLabelValues("pushed").Add(float64(len(send)))
	}
	if len(want) > 0 {
		got, err := s.fetch(ctx, h, want)
		s.metrics.repair.WithLabelValues("fetched").Add(float64(got))
		if err != nil {
			return err
		}
	}
	s.log.Debug("anti-entropy", "peer", h.Addr, "level", minRepl, "buckets", len(diff), "pushed", len(send), "wanted", len(want), "probe", probe)
	return nil
}

// holdsAtLeast reports whether this node holds a live copy of key at
// version v or newer.
func (s *Service) holdsAtLeast(key [32]byte, v store.Version) bool {
	r, err := s.raw.Get(key)
	return err == nil && r.Version.Compare(v) >= 0
}

// HandOff gives the successor every record it lacks before this node
// leaves, so that a graceful leave loses nothing. The successor's own
// maintenance then promotes, places and replicates them.
// With several positions, each hands its arc and the gap before it to its
// own first successor on another node.
func (s *Service) HandOff(ctx context.Context) error {
	ps := slices.Clone(s.ps())
	slices.SortFunc(ps, func(a, b *position) int { return a.node.Self().ID.Cmp(b.node.Self().ID) })
	var errs []error
	for i, p := range ps {
		prev := ps[(i+len(ps)-1)%len(ps)].node.Self().ID
		errs = append(errs, s.handOff(ctx, p, prev))
	}
	return errors.Join(errs...)
}

// handOff gives position p's first successor on another node the records of
// (from, p] it lacks.
func (s *Service) handOff(ctx context.Context, p *position, from chord.ID) error {
	self := p.node.Self()
	var succ *chord.NodeInfo
	for _, n := range p.node.Successors() {
		if !samePhysical(n, self) {
			succ = &n
			break
		}
	}
	if succ == nil {
		return nil // alone: nobody to hand to
	}
	theirs, err := s.remoteVersions(ctx, *succ, versionsArgs{From: from, To: self.ID, MinReplication: 1, Limit: maxPageRecords})
	if err != nil {
		return fmt.Errorf("hand off: %w", err)
	}
	var send []store.Record
	err = s.scanAll(ctx, from, self.ID, func(r store.Record) error {
		if v, ok := theirs[chord.ID(r.Key)]; !ok || v.Compare(r.Version) < 0 {
			send = append(send, r)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("hand off: %w", err)
	}
	// A leave is not paced: it is bounded by ctx instead.
	if err := s.sendPages(ctx, *succ, send, false); err != nil {
		return fmt.Errorf("hand off: %w", err)
	}
	s.metrics.handoff.Add(float64(len(send)))
	return nil
}

// Sweep deletes expired records in bounded transactions.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	n, err := s.db.Sweep(ctx, s.now(), sweepBatch)
	s.metrics.swept.Add(float64(n))
	return n, err
}

// Run sweeps, maintains, repairs the holders that missed a put and sends
// recheck hints until ctx ends, then returns after its loops have stopped.
func (s *Service) Run(ctx context.Context) error {
	// A node that starts is out of sync until a round has compared its
	// arc with the holders: the first one runs at once.
	s.Kick()
	var wg sync.WaitGroup
	wg.Go(func() {
		loop(ctx, s.cfg.SweepInterval, nil, func(ctx context.Context) {
			if n, err := s.Sweep(ctx); err != nil {
				s.log.Warn("sweep failed", "error", err)
			} else if n > 0 {
				s.log.Debug("swept expired records", "records", n)
			}
		})
	})
	wg.Go(func() { s.sendRechecks(ctx) })
	wg.Go(func() { s.repairMissed(ctx) })
	wg.Go(func() { s.deliverHints(ctx) })
	wg.Go(func() { s.watch(ctx) })
	wg.Go(func() {
		loop(ctx, s.cfg.MaintainInterval, s.kick, func(ctx context.Context) {
			if err := s.Maintain(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("maintenance round incomplete", "error", err)
			}
		})
	})
	wg.Wait()
	return nil
}

// followUpDelay is how long after a round that a kick started another one
// runs: a ring change or a hint reaches a node before every view it depends
// on has settled (the owner's successor list, its own lookups), and a round
// that ran on the old view, or failed, would otherwise wait for the next
// periodic one.
const followUpDelay = 2 * time.Second

// loop runs round every interval (after a random stagger) and whenever kick
// fires, until ctx ends; a round started by a kick is followed by one more
// after followUpDelay. Each round runs under its own deadline of one
// interval plus a minute at most.
func loop(ctx context.Context, interval time.Duration, kick <-chan struct{}, round func(context.Context)) {
	stagger := time.Duration(rand.Int64N(int64(interval)))
	t := time.NewTimer(stagger)
	defer t.Stop()
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			t.Reset(interval)
		case <-kick:
			kicked = true
		}
		rctx, cancel := context.WithTimeout(ctx, interval+time.Minute)
		round(rctx)
		cancel()
		if kicked {
			t.Reset(min(interval, followUpDelay))
		}
	}
}
