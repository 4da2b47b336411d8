package chord

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fingerCount is the number of fingers: one per bit of the identifier.
const fingerCount = 8 * IDBytes

// metaPeersKey is the MetaStore key holding the last known peers (JSON
// savedPeers), read by Rejoin.
const metaPeersKey = "chord.peers"

type nodeState int

const (
	stateNew nodeState = iota
	stateJoined
	stateLeft
)

// Change describes the neighbourhood after a change of the predecessor or the
// successor list, as passed to OnChange callbacks. Both fields are copies.
type Change struct {
	Predecessor *NodeInfo  // nil if unknown
	Successors  []NodeInfo // never empty once joined; [self] when alone
}

// RecordCounts are the record counts a node reports in its status.
type RecordCounts struct {
	Primary int64 `json:"primary"`
	Replica int64 `json:"replica"`
}

// Report is what a node says of itself in its status beyond its place on
// the ring: its records, the client requests it has answered since it
// started and per second lately, and its admin HTTP address ("" if none).
type Report struct {
	Records     RecordCounts
	Requests    uint64
	RequestRate float64
	Admin       string
	// Positions are every ring position of the node's process, its node ID
	// first (virtual nodes); nil for a process at one position.
	Positions []ID
}

// remembered is a peer evicted from this node's tables, kept for probing.
type remembered struct {
	info NodeInfo
	at   time.Time
}

// Node is one member of a Chord ring. Create it with New, then Create or Join
// (or Rejoin), then Run until done. A Node is safe for concurrent use.
type Node struct {
	cfg  Config
	self NodeInfo
	tr   Transport
	meta MetaStore
	log  hclog.Logger
	m    *metrics

	mu sync.Mutex // guards every field below
	// state: new, joined or left.
	state nodeState
	// pred is the predecessor, valid if hasPred.
	pred    NodeInfo
	hasPred bool
	// succs is the successor list; replaced wholesale, never mutated in
	// place, so a copy handed out stays valid. [self] when alone.
	succs []NodeInfo
	// fingers[i] is the successor of self+2^i; Addr == "" means unknown.
	fingers [fingerCount]NodeInfo
	// nextFinger is the finger the next fix-fingers round refreshes.
	nextFinger int
	// failures counts consecutive failed calls per peer (suspects).
	failures map[ID]failure
	// cache holds nodes learned from lookup replies; owners the arcs
	// learned from them (which node owns which identifiers).
	cache  *nodeCache
	owners *ownerCache
	// evicted holds peers evicted from the tables, probed to heal partitions.
	evicted map[ID]remembered
	// lastSuccOK is when the successor last answered.
	lastSuccOK time.Time
	// handlers are the extra methods registered with Handle.
	handlers map[string]HandlerFunc
	// onChange are the OnChange callbacks; beforeLeave the BeforeLeave hooks.
	onChange    []func(Change)
	beforeLeave []func(context.Context) error
	// report fills the Status fields a node reports of itself.
	report func() Report
	// rng drives staggering and probe choices.
	rng *rand.Rand
	// refusals throttles the WARN lines of refused answers (own lock).
	refusals refusalLog
	// savedPeers is the last value written under metaPeersKey.
	savedPeers []byte
	// seedRule, if set, replaces lowestOfSaved in Start (SetSeedRule).
	seedRule func() (bool, error)
}

var _ Handler = (*Node)(nil)

// New returns a node with identity self that calls peers through tr and keeps
// its peers in meta (nil: nothing is persisted, Rejoin fails with ErrNoPeers).
// The node serves nothing until it is registered as the transport's handler.
func New(cfg Config, self NodeInfo, tr Transport, meta MetaStore) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if self.Addr == "" {
		return nil, fmt.Errorf("%w: node address is empty", ErrConfig)
	}
	if tr == nil {
		return nil, fmt.Errorf("%w: transport is nil", ErrConfig)
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	seed := binary.BigEndian.Uint64(self.ID[:8])
	n := &Node{
		cfg:      cfg,
		self:     self,
		tr:       tr,
		meta:     meta,
		log:      log.With("node", self.ID.Short()),
		m:        m,
		succs:    []NodeInfo{self},
		failures: make(map[ID]failure),
		cache:    newNodeCache(cfg.CacheSize),
		owners:   newOwnerCache(cfg.CacheSize),
		evicted:  make(map[ID]remembered),
		handlers: make(map[string]HandlerFunc),
		rng:      rand.New(rand.NewPCG(seed, uint64(time.Now().UnixNano()))),
	}
	return n, nil
}

// Self returns the node's identity.
func (n *Node) Self() NodeInfo { return n.self }

// Predecessor returns the predecessor and whether one is known.
func (n *Node) Predecessor() (NodeInfo, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.pred, n.hasPred
}

// Successors returns a copy of the successor list ([self] when alone).
func (n *Node) Successors() []NodeInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.succs)
}

// Fingers returns a copy of the finger table: entry i is the node believed to
// succeed self+2^i, or the zero NodeInfo if not known yet.
func (n *Node) Fingers() []NodeInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.fingers[:])
}

// hasNode reports whether l holds a node with id.
func hasNode(l []NodeInfo, id ID) bool {
	return slices.ContainsFunc(l, func(x NodeInfo) bool { return x.ID == id })
}

// DistinctFingers returns the known nodes of the finger table, each once, in
// finger order: a few entries where Fingers copies all of them.
func (n *Node) DistinctFingers() []NodeInfo {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.distinctFingersLocked()
}

// Ready reports whether the node has joined a ring and its successor answered
// within the last three stabilise intervals (or it is alone in its ring).
func (n *Node) Ready() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.readyLocked()
}

func (n *Node) readyLocked() bool {
	if n.state != stateJoined {
		return false
	}
	if n.succs[0].ID == n.self.ID {
		return true
	}
	return !n.lastSuccOK.IsZero() && time.Since(n.lastSuccOK) <= 3*n.cfg.StabilizeInterval
}

// Owns reports whether id lies in (predecessor, self], the arc this node is
// responsible for. A node that has not joined, or does not know its
// predecessor while having a successor, owns nothing.
func (n *Node) Owns(id ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != stateJoined {
		return false
	}
	if n.hasPred {
		return id.InHalfOpen(n.pred.ID, n.self.ID)
	}
	return n.succs[0].ID == n.self.ID
}

// Handle registers h for method, for calls that reach this node. Methods of
// the ring itself ("chord.*") cannot be replaced; registering one is ignored.
func (n *Node) Handle(method string, h HandlerFunc) {
	if isBuiltin(method) {
		n.log.Warn("ignoring handler for a built-in method", "method", method)
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.handlers[method] = h
}

// OnChange registers fn, called (never under the node's lock, from the
// goroutine that made the change) after the predecessor or the successor list
// changed.
func (n *Node) OnChange(fn func(Change)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.onChange = append(n.onChange, fn)
}

// BeforeLeave registers fn, called by Leave before the neighbours are told,
// so that records can be handed over. An error is logged and returned by
// Leave, which still leaves.
func (n *Node) BeforeLeave(fn func(ctx context.Context) error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.beforeLeave = append(n.beforeLeave, fn)
}

// SetReport sets the function that fills Status.Records, Requests,
// RequestRate and Admin.
func (n *Node) SetReport(fn func() Report) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.report = fn
}

// ForgetCache empties the caches of nodes and owners learned from lookups
// (for measurements of cold lookups).
func (n *Node) ForgetCache() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cache.reset()
	n.owners.reset()
}

// Create makes the node the first member of a new ring.
func (n *Node) Create() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.state != stateNew {
		return fmt.Errorf("create: node already joined or left: %w", ErrConfig)
	}
	n.state = stateJoined
	n.succs = []NodeInfo{n.self}
	n.hasPred = false
	n.log.Info("created ring")
	return nil
}

// Join joins the ring through the first of the bootstrap addresses that
// answers. The bootstrap IDs are not known, so they are dialled with the zero
// ID (any authenticated peer).
func (n *Node) Join(ctx context.Context, bootstrap []string) error {
	starts := make([]NodeInfo, 0, len(bootstrap))
	for _, addr := range bootstrap {
		if addr != "" && addr != n.self.Addr {
			starts = append(starts, NodeInfo{Addr: addr})
		}
	}
	if len(starts) == 0 {
		return fmt.Errorf("%w: no bootstrap address", ErrJoinFailed)
	}
	return n.joinVia(ctx, starts)
}

// JoinThrough joins the ring through the first of peers, known ring members
// (IDs and addresses), that answers: a further position of a node joins
// through one of its others, at its own address.
func (n *Node) JoinThrough(ctx context.Context, peers []NodeInfo) error {
	starts := make([]NodeInfo, 0, len(peers))
	for _, p := range peers {
		if p.ID != n.self.ID && p.Addr != "" {
			starts = append(starts, p)
		}
	}
	if len(starts) == 0 {
		return fmt.Errorf("%w: no peer to join through", ErrJoinFailed)
	}
	return n.joinVia(ctx, starts)
}

// Rejoin joins through the peers saved in the meta store by an earlier run.
// It fails with ErrNoPeers if none were saved and ErrJoinFailed if none
// answers. Peers at this node's own address are its other positions
// (virtual nodes), which restarted with it and join through it: they are
// not asked.
func (n *Node) Rejoin(ctx context.Context) error {
	peers, err := n.loadPeers()
	if err != nil {
		return err
	}
	peers = slices.DeleteFunc(peers, func(p NodeInfo) bool { return p.Addr == n.self.Addr })
	if len(peers) == 0 {
		return ErrNoPeers
	}
	return n.joinVia(ctx, peers)
}

func (n *Node) joinVia(ctx context.Context, starts []NodeInfo) error {
	n.mu.Lock()
	if n.state == stateLeft {
		n.mu.Unlock()
		return fmt.Errorf("join: %w", ErrClosed)
	}
	n.mu.Unlock()
	var errs []error
	// The successor of self+1 is the next node after self even if the ring
	// still lists this node (a restart with the same ID).
	target := n.self.ID.AddPow2(0)
	for _, s := range starts {
		lctx, cancel := context.WithTimeout(ctx, n.cfg.LookupTimeout)
		res, err := n.lookup(lctx, target, []NodeInfo{s}, false)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("via %s: %w", s.Addr, err))
			if ctx.Err() != nil {
				break
			}
			continue
		}
		succs := n.successorList(append([]NodeInfo{res.Owner}, res.Successors...))
		if len(succs) == 0 {
			errs = append(errs, fmt.Errorf("via %s: only this node is known", s.Addr))
			continue
		}
		n.mu.Lock()
		n.state = stateJoined
		n.mu.Unlock()
		n.setSuccessors(succs)
		n.log.Info("joined ring", "via", s.Addr, "successor", succs[0].String())
		// Tell the successor at once rather than at the next round.
		if err := n.Stabilize(ctx); err != nil {
			n.log.Debug("first stabilise after join failed", "error", err)
		}
		n.fillFingers(ctx)
		return nil
	}
	return fmt.Errorf("%w: %w", ErrJoinFailed, errors.Join(errs...))
}

// fillFingers runs fix-fingers rounds until one pass over the finger table is
// done, so that a node that just joined routes in O(log N) hops at once
// rather than after many rounds. Failed rounds are left to the loop.
func (n *Node) fillFingers(ctx context.Context) {
	for range fingerCount {
		if ctx.Err() != nil {
			return
		}
		n.mu.Lock()
		before := n.nextFinger
		n.mu.Unlock()
		if err := n.FixFingers(ctx); err != nil {
			n.log.Debug("fix fingers after join failed", "error", err)
		}
		n.mu.Lock()
		wrapped := n.nextFinger <= before
		n.mu.Unlock()
		if wrapped {
			return
		}
	}
}

// successorList returns nodes as a successor list: each entry strictly
// after the one before it in ring order and before self (so without self,
// duplicates or entries that wrap around), without zero entries, cut to the
// successor list length. An entry out of order is dropped.
func (n *Node) successorList(nodes []NodeInfo) []NodeInfo {
	out, _ := n.ringOrder(nodes)
	return out
}

// ringOrder is successorList that also returns the number of entries it
// dropped for being out of ring order (self and repeats not counted).
func (n *Node) ringOrder(nodes []NodeInfo) ([]NodeInfo, int) {
	out := make([]NodeInfo, 0, min(len(nodes), n.cfg.SuccessorListLen))
	prev, dropped := n.self.ID, 0
	for _, x := range nodes {
		if len(out) == n.cfg.SuccessorListLen {
			break
		}
		if x.Addr == "" || x.ID.IsZero() || x.ID == n.self.ID || hasNode(out, x.ID) {
			continue
		}
		if !x.ID.InOpen(prev, n.self.ID) {
			dropped++
			continue
		}
		out = append(out, x)
		prev = x.ID
	}
	return out, dropped
}

// answers reports whether x answers a ping within the call timeout; a node
// that does not is counted as refused (no_answer). No lock may be held.
func (n *Node) answers(ctx context.Context, x NodeInfo, role string) bool {
	err := n.call(ctx, x, methodPing, nil, nil)
	if err == nil {
		return true
	}
	n.m.refused.WithLabelValues(refusedNoAnswer).Inc()
	if errors.Is(err, ErrNoPosition) {
		// The node at that address answered: the position moved away (a
		// virtual node's repair), which its neighbours learn in a few
		// rounds. Nothing for an operator to look at.
		n.log.Debug("named position is no longer at its node", "peer", x.String(), "as", role)
		return false
	}
	n.refusals.warn(n.log, refusedNoAnswer, x.ID, "named node did not answer", "peer", x.String(), "as", role, "error", err)
	return false
}

// Leave leaves the ring gracefully: the BeforeLeave hooks run first, then the
// successor learns the node's predecessor and the predecessor learns its
// successor list. Afterwards the node refuses calls with ErrShuttingDown and
// its rounds do nothing.
func (n *Node) Leave(ctx context.Context) error {
	n.mu.Lock()
	if n.state != stateJoined {
		n.mu.Unlock()
		return nil
	}
	hooks := slices.Clone(n.beforeLeave)
	n.mu.Unlock()
	var errs []error
	for _, fn := range hooks {
		if err := fn(ctx); err != nil {
			n.log.Warn("before-leave hook failed", "error", err)
			errs = append(errs, err)
		}
	}
	n.mu.Lock()
	n.state = stateLeft
	args := leaveArgs{Node: n.self, Successors: slices.Clone(n.succs)}
	if n.hasPred {
		p := n.pred
		args.Predecessor = &p
	}
	n.mu.Unlock()
	tell := []NodeInfo{args.Successors[0]}
	if args.Predecessor != nil && args.Predecessor.ID != args.Successors[0].ID {
		tell = append(tell, *args.Predecessor)
	}
	for _, peer := range tell {
		if peer.ID == n.self.ID {
			continue
		}
		if err := n.call(ctx, peer, methodLeave, args, nil); err != nil {
			n.log.Warn("could not tell neighbour about leave", "peer", peer.String(), "error", err)
			errs = append(errs, err)
		}
	}
	n.log.Info("left ring")
	return errors.Join(errs...)
}

// call makes one call to a peer under the per-call timeout. It never calls
// self over the network.
func (n *Node) call(ctx context.Context, to NodeInfo, method string, args, reply any) error {
	if to.ID == n.self.ID && !to.ID.IsZero() {
		return fmt.Errorf("call %s to self: %w", method, ErrInternal)
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.CallTimeout)
	defer cancel()
	return n.tr.Call(ctx, to, method, args, reply)
}

// callConfirm calls a peer up to SuspectAfter times, ConfirmDelay apart,
// stopping at the first success: one failed call only makes the peer a
// suspect. It reports whether the peer is to be evicted.
func (n *Node) callConfirm(ctx context.Context, to NodeInfo, method string, args, reply any) (err error, evict bool) {
	for i := range n.cfg.SuspectAfter {
		if i > 0 && n.cfg.ConfirmDelay > 0 {
			t := time.NewTimer(n.cfg.ConfirmDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return err, false
			}
		}
		err = n.call(ctx, to, method, args, reply)
		if err == nil {
			n.noteSuccess(to)
			return nil, false
		}
		if ctx.Err() != nil || !isPeerFailure(err) {
			return err, false
		}
		if n.noteFailure(to) {
			return err, true
		}
	}
	return err, false
}

// isPeerFailure reports whether err says the peer is unreachable or dead
// (rather than refusing the call): a node shutting down, or a process that
// no longer stands at the position called (virtual nodes: it moved it).
func isPeerFailure(err error) bool {
	var re *RemoteError
	if errors.As(err, &re) {
		return errors.Is(err, ErrShuttingDown) || errors.Is(err, ErrNoPosition)
	}
	return true
}

// noteSuccess clears a peer's suspicion.
func (n *Node) noteSuccess(p NodeInfo) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.failures, p.ID)
}

// noteFailure records a failed call to p. After SuspectAfter consecutive
// failures p is dropped from the fingers and the cache and remembered for
// probing; noteFailure then reports true.
func (n *Node) noteFailure(p NodeInfo) bool {
	n.m.callFailures.Inc()
	n.mu.Lock()
	defer n.mu.Unlock()
	f := n.failures[p.ID]
	f.count++
	f.last = time.Now()
	n.failures[p.ID] = f
	n.cache.remove(p.ID)
	n.owners.remove(p.ID)
	if f.count < n.cfg.SuspectAfter {
		return false
	}
	for i := range n.fingers {
		if n.fingers[i].ID == p.ID {
			n.fingers[i] = NodeInfo{}
		}
	}
	n.rememberLocked(p)
	return true
}

// failure is the record of a suspect: consecutive failed calls and the time
// of the last one.
type failure struct {
	count int
	last  time.Time
}

// suspected reports whether a call to id failed within SuspectTimeout and
// none succeeded since.
func (n *Node) suspected(id ID) bool {
	f, ok := n.failures[id]
	return ok && time.Since(f.last) < n.cfg.SuspectTimeout
}

// rememberLocked keeps p for the probe round, bounded by RememberSize.
func (n *Node) rememberLocked(p NodeInfo) {
	if n.cfg.RememberSize == 0 || p.ID == n.self.ID || p.Addr == "" {
		return
	}
	n.evicted[p.ID] = remembered{info: p, at: time.Now()}
	for len(n.evicted) > n.cfg.RememberSize {
		var oldest ID
		var at time.Time
		first := true
		for id, r := range n.evicted {
			if first || r.at.Before(at) {
				oldest, at, first = id, r.at, false
			}
		}
		delete(n.evicted, oldest)
	}
}

// setSuccessors replaces the successor list (nodes must be filtered) and
// fires OnChange if it changed. An empty list means alone: [self].
func (n *Node) setSuccessors(nodes []NodeInfo) {
	if len(nodes) == 0 {
		nodes = []NodeInfo{n.self}
	}
	n.mu.Lock()
	if slices.Equal(n.succs, nodes) {
		n.mu.Unlock()
		return
	}
	if n.succs[0].ID != nodes[0].ID {
		n.m.successorChanges.Inc()
	}
	n.succs = nodes
	n.updateLowFingersLocked()
	ch, fns := n.changeLocked()
	n.mu.Unlock()
	n.fire(ch, fns)
}

// updateLowFingersLocked points the fingers whose start lies in (self,
// successor] at the successor.
func (n *Node) updateLowFingersLocked() {
	s := n.succs[0]
	if s.ID == n.self.ID {
		return
	}
	for i := range fingerCount {
		if !n.self.ID.AddPow2(i).InHalfOpen(n.self.ID, s.ID) {
			break
		}
		n.fingers[i] = s
	}
}

func (n *Node) changeLocked() (Change, []func(Change)) {
	ch := Change{Successors: slices.Clone(n.succs)}
	if n.hasPred {
		p := n.pred
		ch.Predecessor = &p
	}
	return ch, slices.Clone(n.onChange)
}

func (n *Node) fire(ch Change, fns []func(Change)) {
	for _, fn := range fns {
		fn(Change{Predecessor: ch.Predecessor, Successors: slices.Clone(ch.Successors)})
	}
}

// metaKey is the MetaStore key of the node's saved peers.
func (n *Node) metaKey() string {
	if n.cfg.MetaKey != "" {
		return n.cfg.MetaKey
	}
	return metaPeersKey
}

// savedPeers is the JSON value stored under metaPeersKey.
type savedPeers struct {
	Predecessor *NodeInfo  `json:"predecessor,omitempty"`
	Successors  []NodeInfo `json:"successors"`
	Fingers     []NodeInfo `json:"fingers"`
}

// savePeers writes the current peers to the meta store when they changed.
func (n *Node) savePeers() {
	if n.meta == nil {
		return
	}
	n.mu.Lock()
	sp := savedPeers{Successors: n.successorList(n.succs), Fingers: n.distinctFingersLocked()}
	if n.hasPred {
		p := n.pred
		sp.Predecessor = &p
	}
	last := n.savedPeers
	n.mu.Unlock()
	b, err := json.Marshal(sp)
	if err != nil || string(b) == string(last) {
		return
	}
	if err := n.meta.SetMeta(n.metaKey(), b); err != nil {
		n.log.Warn("could not save peers", "error", err)
		return
	}
	n.mu.Lock()
	n.savedPeers = b
	n.mu.Unlock()
}

func (n *Node) loadPeers() ([]NodeInfo, error) {
	if n.meta == nil {
		return nil, nil
	}
	b, err := n.meta.Meta(n.metaKey())
	if err != nil {
		return nil, fmt.Errorf("read saved peers: %w", err)
	}
	if b == nil {
		return nil, nil
	}
	var sp savedPeers
	if err := json.Unmarshal(b, &sp); err != nil {
		return nil, fmt.Errorf("decode saved peers: %w", err)
	}
	all := slices.Clone(sp.Successors)
	if sp.Predecessor != nil {
		all = append(all, *sp.Predecessor)
	}
	all = append(all, sp.Fingers...)
	var out []NodeInfo
	for _, p := range all {
		if p.Addr != "" && p.ID != n.self.ID && !slices.ContainsFunc(out, func(q NodeInfo) bool { return q.ID == p.ID }) {
			out = append(out, p)
		}
	}
	return out, nil
}

// distinctFingersLocked returns the known fingers without repeats, in
// finger order.
func (n *Node) distinctFingersLocked() []NodeInfo {
	var out []NodeInfo
	for _, f := range n.fingers {
		if f.Addr == "" || f.ID == n.self.ID {
			continue
		}
		if len(out) > 0 && out[len(out)-1].ID == f.ID {
			continue
		}
		if !hasNode(out, f.ID) {
			out = append(out, f)
		}
	}
	return out
}
