package dht

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/internal/ctxutil"
	"github.com/durachord/durachord/store"
)

// Overlay is what the records layer needs from the ring (chord.Node).
type Overlay interface {
	Self() chord.NodeInfo
	Joined() bool
	Owns(id chord.ID) bool
	Predecessor() (chord.NodeInfo, bool)
	Successors() []chord.NodeInfo
	DistinctFingers() []chord.NodeInfo
	Lookup(ctx context.Context, id chord.ID) (chord.LookupResult, error)
	Route(ctx context.Context, id chord.ID, ask chord.Asker) (chord.RouteResult, error)
	Refer(id chord.ID) (chord.Referral, error)
	Neighbours() chord.Neighbours
	Handle(method string, h chord.HandlerFunc)
	OnChange(fn func(chord.Change))
}

// Records is what the records layer needs from storage (store.Store).
type Records interface {
	Put(ctx context.Context, r store.Record) (bool, error)
	PutAll(ctx context.Context, recs []store.Record) (int, error)
	Get(key [32]byte) (store.Record, error)
	Delete(ctx context.Context, key [32]byte) error
	Range(from, to store.Position, after *store.Position, limit int, fn func(store.Record) error) (*store.Position, error)
	SetPrimary(ctx context.Context, key [32]byte, primary bool) error
	// DeleteUpTo and SetPrimaryUpTo change a record only at the given
	// version or older.
	DeleteUpTo(ctx context.Context, key [32]byte, v store.Version) (bool, error)
	SetPrimaryUpTo(ctx context.Context, key [32]byte, primary bool, v store.Version) error
	Sweep(ctx context.Context, now time.Time, maxPerTx int) (int, error)
}

var (
	_ Overlay = (*chord.Node)(nil)
	_ Records = (*store.Store)(nil)
)

// Service stores and finds records on the ring. It implements the client
// API's service (through a small adapter in the daemon).
type Service struct {
	cfg     Config
	log     hclog.Logger
	node    Overlay
	tr      chord.Transport
	db      Records
	clock   *clock
	metrics *metrics
	now     func() time.Time

	// positions are the ring positions this node stands at (virtual
	// nodes; positions.go), in the order given: node and tr are the first's.
	// Replaced wholesale (AddPosition), never changed in place.
	positions atomic.Pointer[[]*position]
	addMu     sync.Mutex // serialises AddPosition

	// kick starts a maintenance round; capacity 1 so that ring changes
	// arriving during a round coalesce into one more round.
	kick chan struct{}
	// recheck queues the nodes that left a position's replication window
	// (sendRechecks tells them); windowMu guards each position's window
	// and predecessor as last seen.
	recheck  chan chord.NodeInfo
	windowMu sync.Mutex

	// maintainMu serialises maintenance rounds (Run's loop and tests).
	maintainMu sync.Mutex

	paceMu   sync.Mutex // guards paceNext
	paceNext time.Time  // when the next repaired record may move

	// raw is the store itself; db is the store as this node serves it,
	// without the versions still short of their write quorum (pending).
	raw     Records
	pending *confirmations
	// keys serialises the PUTs of one key at this node as their owner.
	keys *keyLocks
	// pushQueues batches the replica pushes per holder; repairs queues
	// the records that holders missed.
	pushQueues *pushQueues
	repairs    *repairQueue
	// hints keeps the PUTs no owner took in time (nil: no hinted
	// handoff); hintKick starts a delivery round.
	hints    Hints
	hintKick chan struct{}
	// fresh says whether this node's own records may be served alone.
	fresh *freshness
	// recent remembers the PUTs this node acknowledged a moment ago.
	recent *recentPuts
	// suspects are the holders found lacking copies they acknowledged.
	suspects *suspects
}

// New returns a Service over node, tr and db and registers its calls on node.
func New(cfg Config, node Overlay, tr chord.Transport, db Records) (*Service, error) {
	return NewPositions(cfg, []Position{{Node: node, Transport: tr}}, db)
}

// NewPositions returns a Service that stands at several positions of the
// ring (virtual nodes) over one store, and registers its calls on each
// position's ring. The first position's ring routes this node's requests.
func NewPositions(cfg Config, ps []Position, db Records) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(ps) == 0 || db == nil {
		return nil, errors.New("dht: a position and the records are required")
	}
	for _, p := range ps {
		if p.Node == nil || p.Transport == nil {
			return nil, errors.New("dht: every position needs its ring and transport")
		}
	}
	node, tr := ps[0].Node, ps[0].Transport
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	self := node.Self().ID
	pending := newConfirmations(self)
	s := &Service{
		cfg:        cfg,
		log:        cfg.Logger.Named("dht"),
		node:       node,
		tr:         tr,
		db:         visibleRecords{Records: db, pending: pending, now: cfg.Now},
		clock:      newClock(self, cfg.Now),
		metrics:    m,
		now:        cfg.Now,
		kick:       make(chan struct{}, 1),
		recheck:    make(chan chord.NodeInfo, recheckQueue),
		raw:        db,
		pending:    pending,
		keys:       newKeyLocks(),
		pushQueues: newPushQueues(cfg.MaxBackgroundPushes, cfg.PageBytes),
		repairs:    newRepairQueue(),
		hintKick:   make(chan struct{}, 1),
		fresh:      newFreshness(cfg.StartInSync),
		recent:     newRecentPuts(),
	}
	s.suspects = newSuspects(s.suspectChanged)
	if h, ok := db.(Hints); ok {
		s.hints = h
		if cfg.Metrics != nil {
			kept := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "durachord_dht_hints",
				Help: "PUTs kept as hints for owners out of reach, not yet delivered.",
			}, func() float64 { n, _ := h.HintCount(); return float64(n) })
			if err := cfg.Metrics.Register(kept); err != nil {
				return nil, err
			}
		}
	}
	if cfg.Metrics != nil {
		for _, c := range s.metrics.backlogs(s.pushQueues, s.repairs, s.suspects) {
			if err := cfg.Metrics.Register(c); err != nil {
				return nil, err
			}
		}
	}
	var list []*position
	for _, p := range ps {
		list = append(list, &position{node: p.Node, tr: p.Transport})
	}
	s.positions.Store(&list)
	for _, p := range list {
		s.attach(p)
	}
	return s, nil
}

// AddPosition makes the Service stand at one more position (a ring that
// has not joined yet): its calls are registered on p.Node, and maintenance
// counts its arc from the next round on.
func (s *Service) AddPosition(p Position) error {
	if p.Node == nil || p.Transport == nil {
		return errors.New("dht: a position needs its ring and transport")
	}
	s.addMu.Lock()
	defer s.addMu.Unlock()
	np := &position{node: p.Node, tr: p.Transport}
	list := append(slices.Clone(s.ps()), np)
	s.positions.Store(&list)
	s.attach(np)
	return nil
}

// RemovePosition stops standing at the position whose ring is node (one
// moving elsewhere, docs/vnodes.md): the records of its arc go to its
// successor when that is another node, and maintenance no longer counts it.
// The caller then has the ring leave. The first position cannot be removed.
func (s *Service) RemovePosition(ctx context.Context, node Overlay) error {
	s.addMu.Lock()
	defer s.addMu.Unlock()
	ps := s.ps()
	i := slices.IndexFunc(ps, func(p *position) bool { return p.node == node })
	switch {
	case i < 0:
		return errors.New("dht: not a position of this node")
	case i == 0:
		return errors.New("dht: the first position cannot be removed")
	}
	p := ps[i]
	if pred, ok := p.node.Predecessor(); ok {
		if succs := p.node.Successors(); len(succs) > 0 && !samePhysical(succs[0], p.node.Self()) {
			if err := s.handOff(ctx, p, pred.ID); err != nil {
				return err
			}
		}
	}
	list := slices.Delete(slices.Clone(ps), i, i+1)
	s.positions.Store(&list)
	s.Kick()
	return nil
}

// attach registers the Service's calls on position p and follows its
// ring changes.
func (s *Service) attach(p *position) {
	s.register(p)
	p.node.OnChange(func(ch chord.Change) { s.onRingChange(p, ch) })
}

// onRingChange starts a maintenance round, and queues a recheck hint for the
// nodes that have just left this node's replication window: a join between
// this node and them pushed them out, which they cannot see from their own
// neighbours, so without the hint they would keep their extra copies until
// their next periodic round.
func (s *Service) onRingChange(p *position, ch chord.Change) {
	s.Kick()
	self := p.node.Self().ID
	window := holders(p.node.Self(), ch.Successors, s.cfg.MaxReplication)
	s.windowMu.Lock()
	prev := p.window
	p.window = window
	// An arc that grew (the predecessor left or died, or is new) holds
	// positions whose newest copies may be on other holders only: until a
	// round has synced it, this node serves and versions them with its
	// successors' copies (see fresh.go).
	grew := false
	if ch.Predecessor != nil {
		np := ch.Predecessor.ID
		if p.hasPred {
			grew = np != p.pred && !np.InHalfOpen(p.pred, self)
		} else {
			// The first predecessor: the arc is new, unless the ring was
			// built from nothing at once (its records are current).
			grew = !s.cfg.StartInSync
		}
		p.pred, p.hasPred = ch.Predecessor.ID, true
	}
	s.windowMu.Unlock()
	if grew {
		s.fresh.gen.Add(1)
	}
	for _, p := range prev {
		if containsNode(window, p.ID) {
			continue
		}
		select {
		case s.recheck <- p:
		default: // a full queue: the periodic round cleans up instead
		}
	}
}

// sendRechecks delivers the queued recheck hints until ctx ends.
func (s *Service) sendRechecks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-s.recheck:
			cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
			err := s.tr.Call(cctx, p, methodRecheck, recheckArgs{}, nil)
			cancel()
			if err != nil && ctx.Err() == nil {
				s.log.Debug("recheck hint not delivered", "peer", p.Addr, "error", err)
			}
		}
	}
}

// Kick asks for a maintenance round soon (non-blocking).
func (s *Service) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// clampTTL applies the default and the maximum to a client's TTL.
func (s *Service) clampTTL(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		ttl = s.cfg.DefaultTTL
	}
	return min(ttl, s.cfg.MaxTTL)
}

// clampReplication applies the default and the maximum to a client's
// replication. The ring size is applied when the record is placed, so the
// record keeps the count the client asked for.
func (s *Service) clampReplication(r uint8) uint8 {
	n := int(r)
	if n == 0 {
		n = s.cfg.DefaultReplication
	}
	return uint8(max(1, min(n, s.cfg.MaxReplication)))
}

// Put stores value under key through the key's owner. ttl 0 and replication 0
// mean the configured defaults. It returns once the record is on the disks of
// its write quorum: the owner and WriteQuorum-1 replica holders (fewer when
// the replication or the ring is smaller).
func (s *Service) Put(ctx context.Context, key [32]byte, value []byte, ttl time.Duration, replication uint8) error {
	if len(value) < 1 || len(value) > MaxValueBytes {
		return fmt.Errorf("%w: value of %d bytes, want 1..%d", ErrInvalid, len(value), MaxValueBytes)
	}
	a := putArgs{
		Key:         chord.ID(key),
		Value:       value,
		Expiry:      s.now().Add(s.clampTTL(ttl)).UnixNano(),
		Replication: s.clampReplication(replication),
	}
	calls, err := s.putOrHint(ctx, a, s.now())
	s.metrics.ops.WithLabelValues("put", outcome(err)).Inc()
	s.metrics.calls.put.Observe(float64(calls))
	return err
}

// put sends a put to the key's owner, found by routing (chord.Node.Route): in
// a warm ring one call, none when this node owns the key. It returns the
// calls it made (the owner's replica pushes are not among them).
func (s *Service) put(ctx context.Context, a putArgs) (int, error) {
	calls, _, err := s.putVersion(ctx, a)
	return calls, err
}

// putVersion is put, which also returns the version the owner gave the
// record.
func (s *Service) putVersion(ctx context.Context, a putArgs) (int, store.Version, error) {
	var acked store.Version
	pos := chord.KeyPosition([32]byte(a.Key))
	a.Route = true
	calls := 0
	var lastErr error
	backoff := 20 * time.Millisecond
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// Transient trouble (a ring change, an owner at its limit):
			// try again until the request's own deadline.
			if err := ctxutil.Sleep(ctx, backoff); err != nil {
				return calls, acked, errors.Join(lastErr, err)
			}
			backoff = min(2*backoff, 500*time.Millisecond)
		}
		local := false
		res, err := s.routeFrom(pos).node.Route(ctx, pos, func(ctx context.Context, to chord.NodeInfo, learn bool) (chord.Reply, error) {
			if s.isLocal(to.ID) && s.owns(pos) {
				local = true
				v, err := s.ownerPut(ctx, a)
				acked = v
				return chord.Reply{}, err
			}
			// The client's request deadline bounds the call, not the
			// ring's call timeout: under load the owner queues the put,
			// and a put given up and sent again would only add to that
			// queue.
			a := a
			a.Neighbours = learn
			var rep putReply
			if err := s.tr.Call(ctx, to, methodPut, a, &rep); err != nil {
				return chord.Reply{}, err
			}
			if rep.Referral == nil {
				acked = rep.Version
			}
			return chord.Reply{Referral: rep.Referral, Neighbours: rep.Neighbours}, nil
		})
		calls += res.Calls
		if err == nil || (local && !retryable(err)) {
			return calls, acked, err
		}
		// This node as the owner, short of its write quorum or out of
		// time, is tried again like any other owner: a PUT that no owner
		// took in time is kept as a hint (putOrHint), wherever the owner is.
		lastErr = fmt.Errorf("%w: put %s at %v: %w", ErrNoOwner, pos.Short(), res.Owner, err)
		if !(retryable(err) || errors.Is(err, chord.ErrLookupFailed)) || ctx.Err() != nil {
			return calls, acked, lastErr
		}
	}
}

// retryable reports whether a call may succeed when tried again: the peer was
// busy, unreachable, leaving, no longer at the position called, or not the
// owner (yet), or the call timed out.
func retryable(err error) bool {
	for _, e := range []error{chord.ErrNotOwner, chord.ErrUnreachable, chord.ErrOverloaded,
		chord.ErrShuttingDown, chord.ErrNoPosition, chord.ErrNotReady, context.DeadlineExceeded} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ownerPut stores a record as its owner: it assigns the version, stores it
// durably and replicates it, and returns once the record is on its write
// quorum. Too few holders is retried with backoff for up to the call timeout
// (the ring may be replacing a dead holder), within ctx.
func (s *Service) ownerPut(ctx context.Context, a putArgs) (store.Version, error) {
	unlock, err := s.keys.lock(ctx, [32]byte(a.Key))
	if err != nil {
		return store.Version{}, fmt.Errorf("dht: put %x: waiting for the put before it: %w", a.Key[:4], err)
	}
	defer unlock()
	if v, ok := s.superseded(ctx, a); ok {
		// A delivered hint older than what the owner holds: nothing to
		// store (whether it came from another node or from this one).
		s.metrics.hints.WithLabelValues("superseded_at_owner").Inc()
		return v, nil
	}
	start := time.Now()
	backoff := 20 * time.Millisecond
	refused := 0
	for {
		v, err := s.ownerPutOnce(ctx, a)
		switch {
		case errors.Is(err, errRefused) && refused < maxRefused:
			refused++
			continue
		case errors.Is(err, ErrNoQuorum) && time.Since(start)+backoff < s.cfg.CallTimeout:
			if ctxutil.Sleep(ctx, backoff) != nil {
				break
			}
			backoff = min(2*backoff, 500*time.Millisecond)
			continue
		}
		if errors.Is(err, ErrNoQuorum) {
			s.metrics.quorum.WithLabelValues("short").Inc()
		} else if err == nil {
			s.metrics.quorum.WithLabelValues("met").Inc()
		}
		return v, err
	}
}

// ownerPutOnce is one attempt of ownerPut.
func (s *Service) ownerPutOnce(ctx context.Context, a putArgs) (store.Version, error) {
	key := [32]byte(a.Key)
	// The newest version stored here, served yet or not: the new one goes
	// above it.
	cur, err := s.raw.Get(key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Version{}, fmt.Errorf("dht: read previous version: %w", err)
	}
	self := s.node.Self().ID
	at := s.sendingPosition(chord.KeyPosition(key)) // the owner
	hs := s.windowOf(at.node.Self(), at.node.Successors(), int(a.Replication))
	need := min(s.cfg.WriteQuorum, int(a.Replication), len(hs)+1)
	above := s.newestVersion(ctx, key, cur.Version)
	if err := ctx.Err(); err != nil {
		// The caller has given up (or this node did not run for a while):
		// a version taken now could go above writes made since.
		return store.Version{}, fmt.Errorf("dht: put %x: %w", key[:4], err)
	}
	version, err := s.clock.next(above)
	if err != nil {
		return store.Version{}, fmt.Errorf("dht: put %x: %w", key[:4], err)
	}
	if at := s.hintedAt(a); at > above.Clock {
		// A delivered hint keeps the time it was taken, so that a later
		// hint of the key, delivered after it, still wins over it.
		version.Clock = at
	}
	rec := store.Record{
		Key:         key,
		Value:       a.Value,
		Expiry:      time.Unix(0, a.Expiry),
		Version:     version,
		Primary:     true,
		Replication: a.Replication,
	}
	if need > 1 {
		// Until the quorum has it, GETs answered here see what they saw.
		prev, perr := s.db.Get(key)
		if !s.pending.hold(key, rec.Version, prev, perr == nil, need) {
			return store.Version{}, fmt.Errorf("dht: %d puts short of their quorum: %w", maxUnconfirmed, chord.ErrOverloaded)
		}
	}
	// The owner's own write and the pushes to the replicas run together, so
	// that a put costs one fsync's latency, not two in a row. Should the
	// owner's write fail after a replica took the record, anti-entropy
	// fetches the newer copy back.
	p := s.replicate(ctx, rec, hs, need-1)
	stored, err := s.raw.Put(ctx, rec)
	if err != nil {
		s.pending.drop(key, rec.Version)
		return store.Version{}, fmt.Errorf("dht: store: %w", err)
	}
	if !stored {
		// A newer version is stored here: one that arrived since the read
		// (it is read again next time), or an expired one, which Get does
		// not return and which is deleted so that the next attempt stores.
		s.pending.drop(key, rec.Version)
		if _, gerr := s.raw.Get(key); errors.Is(gerr, store.ErrNotFound) {
			if derr := s.raw.Delete(ctx, key); derr != nil {
				return store.Version{}, fmt.Errorf("dht: delete expired record: %w", derr)
			}
		}
		return store.Version{}, fmt.Errorf("%w: version %v", errRefused, rec.Version)
	}
	s.pending.stored(key, rec.Version, self)
	got, err := p.wait(ctx, need-1)
	if got < need-1 {
		return rec.Version, fmt.Errorf("%w: %d of %d holders took %x version %v (%w)",
			ErrNoQuorum, got, need-1, key[:4], rec.Version, cmpOr(err, chord.ErrOverloaded))
	}
	return rec.Version, nil
}

// holders returns the replica holders for a record with replication r, as
// this node sees them: the first r-1 successors on distinct physical nodes
// other than this one, skipping further positions of a node already chosen
// (Dynamo's preference list). A physical node is an address: every position
// a process serves is at its one p2p address, and each is proved by the
// certificate presented there (crypto.PositionID).
func holders(self chord.NodeInfo, succs []chord.NodeInfo, r int) []chord.NodeInfo {
	out := make([]chord.NodeInfo, 0, max(r-1, 0))
	for _, n := range succs {
		if len(out) >= r-1 {
			break
		}
		if samePhysical(n, self) || slices.ContainsFunc(out, func(o chord.NodeInfo) bool { return samePhysical(o, n) }) {
			continue
		}
		out = append(out, n)
	}
	return out
}

// samePhysical reports whether a and b are positions of one physical node:
// the same address (the same ID where an address is not known).
func samePhysical(a, b chord.NodeInfo) bool {
	if a.Addr != "" && b.Addr != "" {
		return a.Addr == b.Addr
	}
	return a.ID == b.ID
}

func containsNode(ns []chord.NodeInfo, id chord.ID) bool {
	for _, n := range ns {
		if n.ID == id {
			return true
		}
	}
	return false
}

// Get returns the live value stored under key: from the owner, or from the
// replica holders when the owner is unreachable or does not have it (a node
// that has just joined may not yet hold its arc).
func (s *Service) Get(ctx context.Context, key [32]byte) ([]byte, error) {
	if h, ok := s.hinted(key); ok {
		// A PUT through this node that no owner has yet: the newest
		// write this node knows of.
		s.metrics.ops.WithLabelValues("get", "success").Inc()
		return h.Value, nil
	}
	rec, calls, err := s.get(ctx, key)
	if err == nil || errors.Is(err, ErrNotFound) {
		// A PUT this node acknowledged a moment ago is newer than what a
		// node that only believed it owned the key answered.
		if r, ok := s.recent.newer(key, rec.Version, err == nil, time.Now(), s.now()); ok {
			rec, err = r, nil
		}
	}
	s.metrics.ops.WithLabelValues("get", outcome(err)).Inc()
	s.metrics.calls.get.Observe(float64(calls))
	if err != nil {
		return nil, err
	}
	return rec.Value, nil
}

// get asks the key's owner, found by routing (chord.Node.Route): in a warm
// ring one call, none when this node owns the key. It returns the calls it
// made.
func (s *Service) get(ctx context.Context, key [32]byte) (store.Record, int, error) {
	pos := chord.KeyPosition(key)
	self := s.node.Self()
	var rec store.Record
	from := s.routeFrom(pos).node
	res, err := from.Route(ctx, pos, func(ctx context.Context, to chord.NodeInfo, learn bool) (chord.Reply, error) {
		r, rep, err := s.ask(ctx, to, getArgs{Key: chord.ID(key), Route: true, Neighbours: learn})
		rec = r
		return rep, err
	})
	if err == nil {
		return rec, res.Calls, nil
	}
	calls := res.Calls
	var cands []chord.NodeInfo
	want := s.cfg.MaxReplication
	if errors.Is(err, ErrNotFound) {
		// The owner does not have it: only its nearest successors can hold
		// a record it lacks (a handoff in progress). The owner named them;
		// nodes this node knows fill in for those that do not answer
		// (an owner that lies about its successors hides nothing).
		// Those are other physical nodes: a further position of the
		// owner's answers from the same store.
		want = min(s.cfg.MaxReplication-1, 2)
		cands = distinctAfter(res.Owner, want+s.cfg.MaxReplication, res.Successors, from.Successors(), from.DistinctFingers(), []chord.NodeInfo{self})
	} else {
		// No owner could be asked in time: ask the nodes known to follow
		// the position, where the owner and its replicas are.
		s.log.Debug("no owner answered; asking the known nodes after the key", "key", pos.Short(), "error", err)
		cands = distinctAfter(chord.NodeInfo{ID: pos}, 2*s.cfg.MaxReplication, res.Known, from.Successors(), from.DistinctFingers(), []chord.NodeInfo{self})
	}
	rec, asked, err := s.newest(ctx, key, cands, want)
	return rec, calls + asked, err
}

// newest asks the first want nodes in parallel, and the next ones in their
// place for those that do not answer (a node that says it lacks the record
// has answered), and returns the newest live record any of them holds and
// the calls it made.
func (s *Service) newest(ctx context.Context, key [32]byte, nodes []chord.NodeInfo, want int) (store.Record, int, error) {
	best, found := store.Record{}, false
	calls := 0
	for len(nodes) > 0 && want > 0 && ctx.Err() == nil {
		wave := nodes[:min(want, len(nodes))]
		nodes = nodes[len(wave):]
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, c := range wave {
			if !s.isLocal(c.ID) {
				calls++
			}
			wg.Go(func() {
				r, err := s.fetchOne(ctx, c, key)
				if err != nil && !errors.Is(err, ErrNotFound) {
					return // no answer: the next node is asked instead
				}
				mu.Lock()
				defer mu.Unlock()
				want--
				if err == nil && (!found || r.Version.Compare(best.Version) > 0) {
					best, found = r, true
				}
			})
		}
		wg.Wait()
	}
	if !found {
		return store.Record{}, calls, fmt.Errorf("%w: %x", ErrNotFound, key[:4])
	}
	return best, calls, nil
}

// after returns up to n distinct nodes from lists, other than the one at id,
// in clockwise order from id: the nodes that follow it on the ring as far as
// this node knows them. A lookup answered from a short list names few of the
// owner's successors; this node's own list fills the gap.
func after(id chord.ID, n int, lists ...[]chord.NodeInfo) []chord.NodeInfo {
	var all []chord.NodeInfo
	for _, l := range lists {
		for _, x := range l {
			if x.ID != id && !containsNode(all, x.ID) {
				all = append(all, x)
			}
		}
	}
	slices.SortFunc(all, func(a, b chord.NodeInfo) int {
		return id.Distance(a.ID).Cmp(id.Distance(b.ID))
	})
	return all[:min(n, len(all))]
}

// distinctAfter is after for physical nodes: up to n nodes from lists in
// clockwise order from x, each the first position met of a physical node
// other than x's (virtual nodes: one store answers for all of a node's
// positions).
func distinctAfter(x chord.NodeInfo, n int, lists ...[]chord.NodeInfo) []chord.NodeInfo {
	total := 0
	for _, l := range lists {
		total += len(l)
	}
	return holders(x, after(x.ID, total, lists...), n+1)
}

// fetchOne asks one node (possibly this one) for the live record under key.
func (s *Service) fetchOne(ctx context.Context, n chord.NodeInfo, key [32]byte) (store.Record, error) {
	rec, _, err := s.ask(ctx, n, getArgs{Key: chord.ID(key)})
	return rec, err
}

// ask sends a dht.get to one node (this one: its own store) for the live
// record under a.Key. A routed get (a.Route) that reached a node that does
// not own the key comes back with its referral instead.
func (s *Service) ask(ctx context.Context, n chord.NodeInfo, a getArgs) (store.Record, chord.Reply, error) {
	key := [32]byte(a.Key)
	if s.isLocal(n.ID) && (!a.Route || s.owns(chord.KeyPosition(key))) {
		get := s.db.Get
		if a.Route {
			get = func(key [32]byte) (store.Record, error) { return s.ownRecord(ctx, key) }
		}
		rec, err := get(key)
		if errors.Is(err, store.ErrNotFound) {
			return rec, chord.Reply{}, ErrNotFound
		}
		return rec, chord.Reply{}, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CallTimeout)
	defer cancel()
	var w getReply
	if err := s.tr.Call(cctx, n, methodGet, a, &w); err != nil {
		if errors.Is(err, chord.ErrNotFound) {
			return store.Record{}, chord.Reply{}, ErrNotFound
		}
		return store.Record{}, chord.Reply{}, err
	}
	if a.Route && w.Referral != nil {
		return store.Record{}, chord.Reply{Referral: w.Referral}, nil
	}
	rec, live, err := s.admit(w.wireRecord, false, s.now())
	if err != nil {
		return store.Record{}, chord.Reply{}, err
	}
	if rec.Key != key || !live {
		return store.Record{}, chord.Reply{}, ErrNotFound
	}
	return rec, chord.Reply{Neighbours: w.Neighbours}, nil
}

func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNotFound), errors.Is(err, chord.ErrNotFound):
		return "not_found"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "error"
	}
}

// handle registers a call whose parameters decode into A.
// It is served at position p; every position's calls reach the one store.
func handle[A any](s *Service, p *position, method string, fn func(ctx context.Context, from chord.ID, a A) (any, error)) {
	p.node.Handle(method, func(ctx context.Context, from chord.ID, _ string, params json.RawMessage) (any, error) {
		var a A
		if err := json.Unmarshal(params, &a); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", chord.ErrBadRequest, method, err)
		}
		return fn(context.WithValue(ctx, calledKey{}, p), from, a)
	})
}
