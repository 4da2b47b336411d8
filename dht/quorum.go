package dht

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// The acknowledgement of a PUT and the immediate repair of the holders that
// missed one.
//
// The owner stores a record and pushes it to its replica holders at the same
// time. The PUT is acknowledged once need = min(WriteQuorum, replication,
// holders+1) nodes, the owner included, have it on disk; pushes still running
// then go on in the background. Until a version reaches its quorum the owner
// serves the version it had before (or nothing), so that no GET answered by
// the owner returns a value on fewer disks than the quorum. A holder whose
// push failed (or found no free push slot) is queued for an immediate repair
// of the records it missed, retried with backoff for RepairRetryWindow; after
// that it is left to the maintenance round.

// Bounds of the acknowledgement machinery.
const (
	// maxUnconfirmed bounds the records the owner has stored but not yet on
	// their quorum (each keeps the version served meanwhile, up to 64 KiB);
	// a PUT that finds the table full fails as overloaded.
	maxUnconfirmed = 4096
	// maxRepairKeys bounds the keys queued for immediate repair, over all
	// holders; beyond it a maintenance round is started instead.
	maxRepairKeys = 1 << 16
	// repairBatch caps the keys one immediate-repair attempt sends.
	repairBatch = 4 * maxPageRecords
	// Backoff of the immediate repair of one holder.
	repairBackoffMin = 50 * time.Millisecond
	repairBackoffMax = 2 * time.Second
	// maxRefused bounds how often the owner versions a PUT again because
	// its store held a newer version than the one it read.
	maxRefused = 3
)

// errRefused: the owner's store kept a version newer than the one the owner
// assigned (it arrived between the read and the write, or it has expired).
var errRefused = errors.New("dht: store holds a newer version")

// unconfirmed is a version the owner has stored, or is storing, that has not
// reached its quorum yet.
type unconfirmed struct {
	version store.Version
	// from is the oldest version of the key still short of its quorum
	// when this one was held (version itself, unless an earlier PUT of
	// the key failed short of its quorum): every stored version from it
	// on is hidden, so that the owner never serves one that it may stop
	// serving again.
	from    store.Version
	prev    store.Record // what the owner served before; valid when hasPrev
	hasPrev bool
	missing int        // nodes still to store it
	have    []chord.ID // nodes that stored it, each counted once
	owner   bool       // the owner's own write is done
}

// confirmations tracks the owner's unconfirmed versions.
type confirmations struct {
	self chord.ID
	mu   sync.Mutex // guards m
	m    map[[32]byte]*unconfirmed
	n    atomic.Int64 // len(m), read without the lock on every Get
}

func newConfirmations(self chord.ID) *confirmations {
	return &confirmations{self: self, m: make(map[[32]byte]*unconfirmed)}
}

// hold registers version of key as unconfirmed until need nodes have stored
// it; prev is what the owner serves meanwhile. It reports false when the
// table is full.
func (c *confirmations) hold(key [32]byte, version store.Version, prev store.Record, hasPrev bool, need int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, ok := c.m[key]
	if !ok && len(c.m) >= maxUnconfirmed {
		return false
	}
	u := &unconfirmed{version: version, from: version, prev: prev, hasPrev: hasPrev, missing: need}
	if ok && old.from.Compare(version) < 0 {
		// A newer PUT replaces an older unconfirmed one (its PUT failed
		// short of its quorum; the owner's PUTs of a key run one at a
		// time): neither is served until the newer one is on its
		// quorum, and prev stays what was served before both.
		u.from, u.prev, u.hasPrev = old.from, old.prev, old.hasPrev
	}
	c.m[key] = u
	c.n.Store(int64(len(c.m)))
	return true
}

// stored notes that node has version of key on disk; once the quorum is
// complete the version is served.
func (c *confirmations) stored(key [32]byte, version store.Version, node chord.ID) {
	if c.n.Load() == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.m[key]
	if u == nil || u.version != version || containsID(u.have, node) {
		return
	}
	u.have = append(u.have, node)
	u.owner = u.owner || node == c.self
	u.missing--
	if u.missing <= 0 && u.owner {
		delete(c.m, key)
		c.n.Store(int64(len(c.m)))
	}
}

// drop forgets version of key: the owner did not store it.
func (c *confirmations) drop(key [32]byte, version store.Version) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u := c.m[key]; u != nil && u.version == version {
		delete(c.m, key)
		c.n.Store(int64(len(c.m)))
	}
}

// visible returns what the owner serves for key when its store holds rec:
// rec, unless rec is an unconfirmed version or one between the oldest
// unconfirmed version and the newest.
func (c *confirmations) visible(key [32]byte, rec store.Record, now time.Time) (store.Record, error) {
	c.mu.Lock()
	u := c.m[key]
	hide := u != nil && rec.Version.Compare(u.from) >= 0 && rec.Version.Compare(u.version) <= 0
	prev, hasPrev := store.Record{}, false
	if hide {
		prev, hasPrev = u.prev, u.hasPrev
	}
	c.mu.Unlock()
	switch {
	case !hide:
		return rec, nil
	case !hasPrev || !prev.Expiry.After(now):
		return store.Record{}, fmt.Errorf("get %x: %w (not yet on its write quorum)", key[:4], store.ErrNotFound)
	}
	return prev, nil
}

// prune forgets the versions the owner wrote that its store no longer holds
// (overwritten by a newer one, expired or deleted): there is nothing left
// to hide.
func (c *confirmations) prune(current func(key [32]byte) (store.Version, bool)) {
	if c.n.Load() == 0 {
		return
	}
	c.mu.Lock()
	type cand struct {
		key     [32]byte
		version store.Version
	}
	var cands []cand
	for k, u := range c.m {
		if u.owner {
			cands = append(cands, cand{k, u.version})
		}
	}
	c.mu.Unlock()
	// The store is read without the lock; drop re-checks the version.
	for _, cd := range cands {
		if v, ok := current(cd.key); !ok || v != cd.version {
			c.drop(cd.key, cd.version)
		}
	}
}

func containsID(ids []chord.ID, id chord.ID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// visibleRecords is the store as the owner serves it: Get hides the
// unconfirmed versions.
type visibleRecords struct {
	Records
	pending *confirmations
	now     func() time.Time
}

func (v visibleRecords) Get(key [32]byte) (store.Record, error) {
	rec, err := v.Records.Get(key)
	if err != nil || v.pending.n.Load() == 0 {
		return rec, err
	}
	return v.pending.visible(key, rec, v.now())
}

// sendFunc makes the call of one batch of pushes to a holder: it returns
// the keys the holder refused (see storeReply) or the error of the call.
type sendFunc func(chord.NodeInfo, []store.Record) (refused []chord.ID, err error)

// errCopyRefused: a holder refused a copy (see handleStore).
var errCopyRefused = errors.New("dht: the holder refused the copy")

// pushesPerBatch caps the batches of replica pushes in flight to one holder.
const pushesPerBatch = 2

// pushQueues batches the replica pushes, per holder: the records queued for
// one holder leave together in one dht.store call (at most maxPageRecords
// records and Config.PageBytes value bytes), with up to pushesPerBatch calls
// in flight to that holder, so that a burst of PUTs costs the holder one
// call and one group commit per batch instead of one per record, and a slow
// holder delays only its own queue. A holder's queue holds at most max
// records, queued or in flight; a PUT whose push finds it full waits for
// room (back-pressure, within its deadline) instead of failing.
type pushQueues struct {
	max       int
	pageBytes int

	mu     sync.Mutex // guards queues and active
	queues map[chord.ID]*holderQueue
	active int        // pushes queued or in flight, over all holders
	idle   *sync.Cond // on mu: signalled when active drops to 0
}

// holderQueue is the pushes waiting for one holder.
type holderQueue struct {
	peer    chord.NodeInfo
	room    chan struct{} // a token per push queued or in flight; capacity max
	items   []pushItem
	sending int // batches in flight
}

// pushItem is one record to push and where its outcome goes.
type pushItem struct {
	rec  store.Record
	done func(error)
}

func newPushQueues(max, pageBytes int) *pushQueues {
	q := &pushQueues{max: max, pageBytes: pageBytes, queues: make(map[chord.ID]*holderQueue)}
	q.idle = sync.NewCond(&q.mu)
	return q
}

// wait returns once no push is queued or in flight.
func (q *pushQueues) wait() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.active > 0 {
		q.idle.Wait()
	}
}

// backlog returns the pushes queued or in flight, over all holders.
func (q *pushQueues) backlog() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active
}

// queue returns the holder's queue, made on first use.
func (q *pushQueues) queue(peer chord.NodeInfo) *holderQueue {
	q.mu.Lock()
	defer q.mu.Unlock()
	h := q.queues[peer.ID]
	if h == nil {
		h = &holderQueue{peer: peer, room: make(chan struct{}, q.max)}
		q.queues[peer.ID] = h
	}
	return h
}

// push queues rec for peer once the queue has room, or fails when ctx ends
// first; done is called with the push's outcome, exactly once, unless push
// returns an error. send makes the call of one batch.
func (q *pushQueues) push(ctx context.Context, peer chord.NodeInfo, rec store.Record, done func(error),
	send sendFunc) error {
	return q.enqueue(ctx, peer, rec, done, send, true)
}

// tryPush is push without the wait: it fails at once (errQueueFull) when
// the holder's queue is full.
func (q *pushQueues) tryPush(peer chord.NodeInfo, rec store.Record, done func(error),
	send sendFunc) error {
	return q.enqueue(context.Background(), peer, rec, done, send, false)
}

// errQueueFull: a holder's push queue has no room.
var errQueueFull = errors.New("dht: holder's push queue full")

func (q *pushQueues) enqueue(ctx context.Context, peer chord.NodeInfo, rec store.Record, done func(error),
	send sendFunc, wait bool) error {
	h := q.queue(peer)
	if wait {
		select {
		case h.room <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	} else {
		select {
		case h.room <- struct{}{}:
		default:
			return errQueueFull
		}
	}
	q.mu.Lock()
	q.active++
	h.items = append(h.items, pushItem{rec: rec, done: done})
	start := h.sending < pushesPerBatch
	if start {
		h.sending++
	}
	q.mu.Unlock()
	if start {
		go q.drain(h, send)
	}
	return nil
}

// drain sends the holder's queue in batches until it is empty.
func (q *pushQueues) drain(h *holderQueue, send sendFunc) {
	for {
		q.mu.Lock()
		n, bytes := 0, 0
		for n < len(h.items) && n < maxPageRecords {
			if n > 0 && bytes+len(h.items[n].rec.Value) > q.pageBytes {
				break
			}
			bytes += len(h.items[n].rec.Value)
			n++
		}
		if n == 0 {
			q.endDrain(h)
			q.mu.Unlock()
			return
		}
		batch := h.items[:n:n]
		h.items = h.items[n:]
		if len(h.items) == 0 {
			h.items = nil // let the backing array go
		}
		q.mu.Unlock()

		recs := make([]store.Record, len(batch))
		for i, it := range batch {
			recs[i] = it.rec
		}
		refused, err := send(h.peer, recs)
		for _, it := range batch {
			if err == nil && slices.Contains(refused, chord.ID(it.rec.Key)) {
				it.done(errCopyRefused)
			} else {
				it.done(err)
			}
			<-h.room
		}
		q.mu.Lock()
		last := len(h.items) == 0
		if last {
			q.endDrain(h)
		}
		if q.active -= n; q.active == 0 {
			q.idle.Broadcast()
		}
		q.mu.Unlock()
		if last {
			return
		}
	}
}

// endDrain ends one of h's drains; the last one forgets the queue once
// nothing is queued or in flight, so that nodes that left leave nothing
// behind. q.mu is held.
func (q *pushQueues) endDrain(h *holderQueue) {
	h.sending--
	if h.sending == 0 && len(h.room) == 0 && q.queues[h.peer.ID] == h {
		delete(q.queues, h.peer.ID)
	}
}

// pushes is one PUT's replica pushes as they complete.
type pushes struct {
	results chan error // one per holder
	n       int
}

// wait returns once want pushes have succeeded, or once so many have failed
// that want cannot be reached, or when ctx ends. It returns how many
// succeeded.
func (p *pushes) wait(ctx context.Context, want int) (int, error) {
	ok, failed := 0, 0
	for ok < want && p.n-failed >= want {
		select {
		case err := <-p.results:
			if err == nil {
				ok++
			} else {
				failed++
			}
		case <-ctx.Done():
			return ok, ctx.Err()
		}
	}
	return ok, nil
}

// replicate queues rec for the holders hs and returns once the pushes are
// queued (see pushQueues); the pushes go on under the call timeout, whether
// or not the PUT still waits for them. A holder whose queue is full is
// waited for (within ctx) only while fewer than want holders have taken the
// push, so that one slow holder's full queue does not hold up PUTs that the
// others can acknowledge; a holder that misses the record is queued for
// repair.
func (s *Service) replicate(ctx context.Context, rec store.Record, hs []chord.NodeInfo, want int) *pushes {
	p := &pushes{results: make(chan error, len(hs)), n: len(hs)}
	done := func(h chord.NodeInfo) func(error) {
		return func(err error) {
			s.metrics.replication.WithLabelValues(outcome(err)).Inc()
			if err != nil {
				s.log.Warn("replica push failed", "peer", h.Addr, "key", chord.ID(rec.Key).Short(), "error", err)
				s.missed(h, rec.Key)
			} else {
				s.pending.stored(rec.Key, rec.Version, h.ID)
			}
			p.results <- err
		}
	}
	miss := func(h chord.NodeInfo, err error) {
		s.metrics.replication.WithLabelValues("no_slot").Inc()
		s.missed(h, rec.Key)
		p.results <- fmt.Errorf("push to %v: %w (%w)", h, chord.ErrOverloaded, err)
	}
	queued := 0
	var full []chord.NodeInfo
	for _, h := range hs {
		if err := s.pushQueues.tryPush(h, rec, done(h), s.sendBatch); err != nil {
			full = append(full, h)
			continue
		}
		queued++
	}
	if need := want - queued; need > 0 && len(full) > 0 {
		// Wait for room at every full holder at once, and stop waiting as
		// soon as enough have taken the push: one stalled holder's queue
		// must not use up the time another's would free in a moment.
		wctx, cancel := context.WithCancel(ctx)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, h := range full {
			wg.Go(func() {
				if err := s.pushQueues.push(wctx, h, rec, done(h), s.sendBatch); err != nil {
					miss(h, err)
					return
				}
				mu.Lock()
				if need--; need == 0 {
					cancel()
				}
				mu.Unlock()
			})
		}
		wg.Wait()
		cancel()
	} else {
		for _, h := range full {
			miss(h, errQueueFull)
		}
	}
	return p
}

// sendBatch pushes one batch of records to a holder, within the call timeout.
// A batch of records owned at several of this node's positions goes in one
// call per position, each from its owner.
func (s *Service) sendBatch(h chord.NodeInfo, recs []store.Record) ([]chord.ID, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CallTimeout)
	defer cancel()
	var refused []chord.ID
	for len(recs) > 0 {
		from := s.sendingPosition(chord.KeyPosition(recs[0].Key))
		var page []wireRecord
		rest := recs[:0:0]
		for _, r := range recs {
			if len(s.ps()) == 1 || s.sendingPosition(chord.KeyPosition(r.Key)) == from {
				page = append(page, toWire(r))
			} else {
				rest = append(rest, r)
			}
		}
		recs = rest
		var reply storeReply
		if err := s.transport(from).Call(ctx, h, methodStore, storeArgs{Records: page, Skipped: s.suspects.current()}, &reply); err != nil {
			return nil, err
		}
		refused = append(refused, reply.Refused...)
	}
	return refused, nil
}

// Wait returns once every replica push that a PUT started has ended; each
// ends within the call timeout. A caller that closes the transport or the
// stores behind it calls Wait first.
func (s *Service) Wait() { s.pushQueues.wait() }

// missed queues key for an immediate repair of holder h.
func (s *Service) missed(h chord.NodeInfo, key [32]byte) {
	if s.repairs.add(h, key, time.Now()) {
		s.metrics.immediate.WithLabelValues("queued").Inc()
		return
	}
	// The queue is full: a maintenance round compares everything instead.
	s.metrics.immediate.WithLabelValues("overflow").Inc()
	s.Kick()
}

// repairQueue holds, per holder, the keys it missed.
type repairQueue struct {
	wake chan struct{} // capacity 1: work was added

	mu    sync.Mutex // guards debts, keys and seq
	debts map[chord.ID]*debt
	keys  int
	seq   uint64
}

// debt is what one holder missed.
type debt struct {
	peer    chord.NodeInfo
	keys    map[[32]byte]uint64 // key -> sequence of its latest miss
	since   time.Time           // the first miss not repaired since
	next    time.Time           // the next attempt
	backoff time.Duration
}

func newRepairQueue() *repairQueue {
	return &repairQueue{wake: make(chan struct{}, 1), debts: make(map[chord.ID]*debt)}
}

// backlog returns the keys queued for repair, over all holders.
func (q *repairQueue) backlog() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.keys
}

// add queues key for peer; false when the queue is full.
func (q *repairQueue) add(peer chord.NodeInfo, key [32]byte, now time.Time) bool {
	q.mu.Lock()
	d := q.debts[peer.ID]
	_, dup := d.lookup(key)
	if !dup && q.keys >= maxRepairKeys {
		q.mu.Unlock()
		return false
	}
	if d == nil {
		d = &debt{peer: peer, keys: make(map[[32]byte]uint64), since: now, next: now, backoff: repairBackoffMin}
		q.debts[peer.ID] = d
	}
	q.seq++
	d.keys[key] = q.seq
	if !dup {
		q.keys++
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return true
}

func (d *debt) lookup(key [32]byte) (uint64, bool) {
	if d == nil {
		return 0, false
	}
	s, ok := d.keys[key]
	return s, ok
}

// due returns the holders whose next attempt has come, with up to
// repairBatch of their keys each, and how long until the next one is due
// (0 when none is queued).
func (q *repairQueue) due(now time.Time) (work []debtBatch, wait time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, d := range q.debts {
		if d.next.After(now) {
			if w := d.next.Sub(now); wait == 0 || w < wait {
				wait = w
			}
			continue
		}
		b := debtBatch{peer: d.peer, keys: make(map[[32]byte]uint64, min(len(d.keys), repairBatch))}
		for k, s := range d.keys {
			if len(b.keys) >= repairBatch {
				break
			}
			b.keys[k] = s
		}
		work = append(work, b)
	}
	return work, wait
}

// debtBatch is a copy of part of a debt, taken for one attempt.
type debtBatch struct {
	peer chord.NodeInfo
	keys map[[32]byte]uint64
}

// settle removes the keys of b that were not missed again since b was taken,
// and resets the holder's backoff.
func (q *repairQueue) settle(b debtBatch, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := q.debts[b.peer.ID]
	if d == nil {
		return
	}
	for k, s := range b.keys {
		if d.keys[k] == s {
			delete(d.keys, k)
			q.keys--
		}
	}
	d.backoff, d.next, d.since = repairBackoffMin, now, now
	if len(d.keys) == 0 {
		delete(q.debts, b.peer.ID)
	}
}

// retry backs the holder off after a failed attempt. It reports the keys
// given up when the holder has been owed records for longer than window.
func (q *repairQueue) retry(peer chord.ID, now time.Time, window time.Duration) (givenUp int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := q.debts[peer]
	if d == nil {
		return 0
	}
	if now.Sub(d.since) >= window {
		q.keys -= len(d.keys)
		delete(q.debts, peer)
		return len(d.keys)
	}
	d.next = now.Add(d.backoff)
	d.backoff = min(2*d.backoff, repairBackoffMax)
	return 0
}

// forget drops what peer is owed (it left this node's replication window:
// the maintenance round that the ring change started places the records).
func (q *repairQueue) forget(peer chord.ID) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := q.debts[peer]
	if d == nil {
		return 0
	}
	q.keys -= len(d.keys)
	delete(q.debts, peer)
	return len(d.keys)
}

// repairMissed serves the repair queue until ctx ends: each holder that
// missed records gets them at once, then with backoff while it stays
// unreachable, for at most RepairRetryWindow.
func (s *Service) repairMissed(ctx context.Context) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	lastPrune := time.Now()
	for {
		work, wait := s.repairs.due(time.Now())
		for _, b := range work {
			if ctx.Err() != nil {
				return
			}
			s.repairHolder(ctx, b)
		}
		if time.Since(lastPrune) >= s.cfg.RepairRetryWindow {
			s.pending.prune(s.storedVersion)
			lastPrune = time.Now()
		}
		if len(work) > 0 {
			continue // the attempts took time: look again before sleeping
		}
		if wait <= 0 {
			wait = s.cfg.RepairRetryWindow
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.repairs.wake:
		case <-t.C:
		}
	}
}

// storedVersion returns the version of key that this node's store holds.
func (s *Service) storedVersion(key [32]byte) (store.Version, bool) {
	r, err := s.raw.Get(key)
	return r.Version, err == nil
}

// repairHolder sends one holder the current copies of the records it missed.
func (s *Service) repairHolder(ctx context.Context, b debtBatch) {
	inWindow := func(p *position, r int) bool {
		return containsNode(s.windowOf(p.node.Self(), p.node.Successors(), r), b.peer.ID)
	}
	if !slices.ContainsFunc(s.ps(), func(p *position) bool { return inWindow(p, s.cfg.MaxReplication) }) {
		n := s.repairs.forget(b.peer.ID)
		s.metrics.immediate.WithLabelValues("left_window").Add(float64(n))
		return
	}
	recs := make([]store.Record, 0, len(b.keys))
	for k := range b.keys {
		r, err := s.raw.Get(k)
		if err != nil {
			continue // gone or expired: nothing to repair
		}
		if p := s.ownerOf(chord.KeyPosition(k)); p == nil || !inWindow(p, int(r.Replication)) {
			continue // placement and anti-entropy decide about it now
		}
		recs = append(recs, r)
	}
	err := s.sendPages(ctx, b.peer, recs, false)
	now := time.Now()
	if err != nil {
		if n := s.repairs.retry(b.peer.ID, now, s.cfg.RepairRetryWindow); n > 0 {
			s.metrics.immediate.WithLabelValues("given_up").Add(float64(n))
			s.log.Warn("holder still unreachable; left to maintenance", "peer", b.peer.Addr, "records", n, "error", err)
			s.Kick()
		} else {
			s.log.Debug("immediate repair failed", "peer", b.peer.Addr, "records", len(recs), "error", err)
		}
		return
	}
	s.repairs.settle(b, now)
	for _, r := range recs {
		s.pending.stored(r.Key, r.Version, b.peer.ID)
	}
	s.metrics.immediate.WithLabelValues("repaired").Add(float64(len(recs)))
}
