package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// opKind says what a queued write does.
type opKind uint8

const (
	opPut opKind = iota
	opDelete
	opSetPrimary
	opProbe // writes the meta key "probe" (Probe)
)

// Queue states of an op: the caller and the commit loop race to move it out
// of opQueued, so exactly one of "cancelled while waiting" and "committed"
// happens.
const (
	opQueued int32 = iota
	opTaken
	opCancelled
)

// op is one write waiting for a group commit.
type op struct {
	kind    opKind
	pos     Position
	enc     []byte // opPut: the encoded record; opProbe: the value to write
	version Version
	primary bool // opSetPrimary
	// upTo, for opDelete and opSetPrimary, applies the write only to a
	// stored version at or below it: a newer one that arrived since the
	// caller read the record is left as it is. nil: any version.
	upTo  *Version
	state atomic.Int32
	done  chan opResult // buffered, receives exactly one result
}

type opResult struct {
	stored bool
	err    error
}

// Put stores r unless the store already holds a version of the same key
// that is at least as new (then it returns false, nil). It returns after the
// write is durable (fsynced). Puts from many goroutines share commits. A
// record that is already expired is dropped (false, nil). Cancelling ctx
// abandons a put still waiting in the queue, not one being committed.
func (s *Store) Put(ctx context.Context, r Record) (bool, error) {
	if err := r.validate(); err != nil {
		return false, err
	}
	if r.Expired(s.now()) {
		s.metrics.puts.WithLabelValues("expired").Inc()
		return false, nil
	}
	res, err := s.enqueue(ctx, &op{
		kind:    opPut,
		pos:     r.Position(),
		enc:     encodeRecord(s.key, r),
		version: r.Version,
	})
	if err != nil {
		return false, fmt.Errorf("put %x: %w", r.Key, err)
	}
	if res.stored {
		s.metrics.puts.WithLabelValues("stored").Inc()
	} else {
		s.metrics.puts.WithLabelValues("stale").Inc()
	}
	return res.stored, nil
}

// PutAll stores every record of recs as Put would, but queues them together
// so that they share as few commits (fsyncs) as the batch limit allows. It
// returns how many were stored (newer than what the store held) once all of
// them are durable. Expired records are dropped. On an error, records
// before the failing one may be stored; none after an invalid one are.
func (s *Store) PutAll(ctx context.Context, recs []Record) (int, error) {
	now := s.now()
	ops := make([]*op, 0, len(recs))
	for _, r := range recs {
		if err := r.validate(); err != nil {
			return 0, err
		}
		if r.Expired(now) {
			s.metrics.puts.WithLabelValues("expired").Inc()
			continue
		}
		ops = append(ops, &op{kind: opPut, pos: r.Position(), enc: encodeRecord(s.key, r), version: r.Version})
	}
	results, err := s.enqueueAll(ctx, ops)
	stored := 0
	for _, res := range results {
		switch {
		case res.err != nil:
		case res.stored:
			stored++
			s.metrics.puts.WithLabelValues("stored").Inc()
		default:
			s.metrics.puts.WithLabelValues("stale").Inc()
		}
	}
	if err != nil {
		return stored, fmt.Errorf("put %d records: %w", len(ops), err)
	}
	return stored, nil
}

// Delete durably removes the record of key, if any.
func (s *Store) Delete(ctx context.Context, key [32]byte) error {
	if _, err := s.enqueue(ctx, &op{kind: opDelete, pos: PositionOf(key)}); err != nil {
		return fmt.Errorf("delete %x: %w", key, err)
	}
	return nil
}

// DeleteUpTo durably removes the record of key if its version is v or
// older, and reports whether it did; a newer version stays.
func (s *Store) DeleteUpTo(ctx context.Context, key [32]byte, v Version) (bool, error) {
	res, err := s.enqueue(ctx, &op{kind: opDelete, pos: PositionOf(key), upTo: &v})
	if err != nil {
		return false, fmt.Errorf("delete %x: %w", key, err)
	}
	return res.stored, nil
}

// SetPrimaryUpTo is SetPrimary for a record of key at version v or older; a
// newer version stays as it is (no error).
func (s *Store) SetPrimaryUpTo(ctx context.Context, key [32]byte, primary bool, v Version) error {
	if _, err := s.enqueue(ctx, &op{kind: opSetPrimary, pos: PositionOf(key), primary: primary, upTo: &v}); err != nil {
		return fmt.Errorf("set primary of %x: %w", key, err)
	}
	return nil
}

// SetPrimary durably marks the record of key as the primary copy (true) or
// a replica (false), keeping its version. It fails with ErrNotFound when
// the record is absent or fails its HMAC.
func (s *Store) SetPrimary(ctx context.Context, key [32]byte, primary bool) error {
	if _, err := s.enqueue(ctx, &op{kind: opSetPrimary, pos: PositionOf(key), primary: primary}); err != nil {
		return fmt.Errorf("set primary of %x: %w", key, err)
	}
	return nil
}

// enqueue hands o to the commit loop and waits for its result.
func (s *Store) enqueue(ctx context.Context, o *op) (opResult, error) {
	if s.cfg.ReadOnly {
		return opResult{}, ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return opResult{}, err
	}
	o.done = make(chan opResult, 1)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return opResult{}, ErrClosed
	}
	select {
	case s.ops <- o:
		s.mu.RUnlock()
	case <-ctx.Done():
		s.mu.RUnlock()
		return opResult{}, ctx.Err()
	}
	select {
	case res := <-o.done:
		return res, res.err
	case <-ctx.Done():
		if o.state.CompareAndSwap(opQueued, opCancelled) {
			return opResult{}, ctx.Err()
		}
		res := <-o.done // being committed: wait for the outcome
		return res, res.err
	}
}

// enqueueAll hands every op to the commit loop before waiting for any, so
// that they are committed together, and returns their results. On a
// cancelled ctx, ops still queued are abandoned and ops being committed are
// waited for; the first error is returned.
func (s *Store) enqueueAll(ctx context.Context, ops []*op) ([]opResult, error) {
	if s.cfg.ReadOnly {
		return nil, ErrReadOnly
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sent := 0
	var first error
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, ErrClosed
	}
send:
	for _, o := range ops {
		o.done = make(chan opResult, 1)
		select {
		case s.ops <- o:
			sent++
		case <-ctx.Done():
			first = ctx.Err()
			break send
		}
	}
	s.mu.RUnlock()
	results := make([]opResult, sent)
	for i, o := range ops[:sent] {
		select {
		case results[i] = <-o.done:
		case <-ctx.Done():
			if o.state.CompareAndSwap(opQueued, opCancelled) {
				results[i] = opResult{err: ctx.Err()}
			} else {
				results[i] = <-o.done
			}
		}
		if first == nil && results[i].err != nil {
			first = results[i].err
		}
	}
	return results, first
}

// commitLoop commits queued writes: whenever one is waiting and no commit
// runs, it takes everything queued (up to MaxBatch) into one transaction.
// It returns once Close has closed the queue and every write is answered.
func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*op, 0, s.cfg.MaxBatch)
	for first := range s.ops {
		batch = append(batch[:0], first)
	fill:
		for len(batch) < s.cfg.MaxBatch {
			select {
			case o, ok := <-s.ops:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
		clear(batch)
	}
}

// commit applies batch in one transaction and answers each op. If the
// transaction fails, each op is retried alone so that one bad write does not
// fail the others.
func (s *Store) commit(batch []*op) {
	live := batch[:0:0]
	for _, o := range batch {
		if o.state.CompareAndSwap(opQueued, opTaken) {
			live = append(live, o)
		}
	}
	if len(live) == 0 {
		return
	}
	results := make([]opResult, len(live))
	began := time.Now()
	err := s.update(func(tx *bolt.Tx) error {
		var delta Stats
		for i, o := range live {
			var err error
			if results[i], err = s.apply(tx, o, &delta); err != nil {
				return err
			}
		}
		return addCounts(tx, delta)
	})
	s.metrics.commitTime.Observe(time.Since(began).Seconds())
	s.metrics.commits.Inc()
	if err == nil {
		s.metrics.committedOps.Add(float64(len(live)))
		for i, o := range live {
			o.done <- results[i]
		}
		return
	}
	s.metrics.commitErrors.Inc()
	s.log.Error("group commit failed", "writes", len(live), "error", err)
	if len(live) == 1 {
		live[0].done <- opResult{err: fmt.Errorf("commit: %w", err)}
		return
	}
	for _, o := range live {
		var res opResult
		err := s.update(func(tx *bolt.Tx) error {
			var delta Stats
			var err error
			if res, err = s.apply(tx, o, &delta); err != nil {
				return err
			}
			return addCounts(tx, delta)
		})
		if err != nil {
			res = opResult{err: fmt.Errorf("commit: %w", err)}
		}
		o.done <- res
	}
}

// apply performs one write inside tx and adds its change of the record
// counts to delta. Outcomes of the write itself (not newer, not found) are
// results; an error is a storage failure that must roll the transaction
// back.
func (s *Store) apply(tx *bolt.Tx, o *op, delta *Stats) (opResult, error) {
	if o.kind == opProbe {
		return opResult{stored: true}, tx.Bucket(bucketMeta).Put(metaProbe, o.enc)
	}
	records, index := tx.Bucket(bucketRecords), tx.Bucket(bucketExpiry)
	old := records.Get(o.pos[:])
	var oldRec Record
	var oldOK bool
	if old != nil {
		var err error
		oldRec, err = openRecord(s.key, o.pos, old)
		if err != nil {
			s.countTampered(o.pos, err)
		} else {
			oldOK = true
		}
	}
	// removeOld deletes the old record's index entry (tampered or not).
	removeOld := func() error {
		if exp, ok := rawExpiry(old); ok {
			return index.Delete(indexKey(exp, o.pos))
		}
		return nil
	}
	if o.upTo != nil && oldOK && oldRec.Version.Compare(*o.upTo) > 0 {
		return opResult{}, nil // newer than what the caller decided on
	}
	switch o.kind {
	case opPut:
		if oldOK && o.version.Compare(oldRec.Version) <= 0 {
			return opResult{}, nil
		}
		if err := removeOld(); err != nil {
			return opResult{}, err
		}
		exp, _ := rawExpiry(o.enc)
		delta.count(old, -1)
		delta.count(o.enc, 1)
		if err := records.Put(o.pos[:], o.enc); err != nil {
			return opResult{}, err
		}
		return opResult{stored: true}, index.Put(indexKey(exp, o.pos), []byte{})
	case opDelete:
		if old == nil {
			return opResult{}, nil
		}
		if err := removeOld(); err != nil {
			return opResult{}, err
		}
		delta.count(old, -1)
		return opResult{stored: true}, records.Delete(o.pos[:])
	case opSetPrimary:
		if !oldOK {
			return opResult{err: ErrNotFound}, nil
		}
		if oldRec.Primary == o.primary {
			return opResult{}, nil
		}
		oldRec.Primary = o.primary
		enc := encodeRecord(s.key, oldRec)
		delta.count(old, -1)
		delta.count(enc, 1)
		// Same expiry: the index entry stays.
		return opResult{stored: true}, records.Put(o.pos[:], enc)
	}
	return opResult{err: fmt.Errorf("%w: unknown write kind %d", ErrInvalidArgument, o.kind)}, nil
}
