package netutil

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Reasons a Limiter refuses a connection or closes an idle one; the values
// of the reason label of the servers' metrics.
const (
	// ReasonTotal: the server's connection limit was reached.
	ReasonTotal = "max_conns"
	// ReasonAddress: the limit of the connection's source address was
	// reached.
	ReasonAddress = "max_conns_per_address"
)

// DefaultLogInterval is how often a Limiter logs, at most, about one
// source address.
const DefaultLogInterval = time.Minute

// maxLogged bounds the source addresses whose last log line a Limiter
// remembers; beyond it, events of new addresses are counted, not logged.
const maxLogged = 4096

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// MaxConns is the most connections open at once. At least 1.
	MaxConns int
	// MaxConnsPerAddress is the most connections open at once from one
	// source address (an IPv4 address, an IPv6 /64). At least 1; above
	// MaxConns it is MaxConns.
	MaxConnsPerAddress int
	// LogInterval: what happens to the connections of one source address
	// (a refusal, an idle connection closed to make room) is logged at most
	// once per LogInterval, with the number of such events since the last
	// line. Default (0) DefaultLogInterval.
	LogInterval time.Duration
	// Logger receives those lines (Warn); nil discards them.
	Logger hclog.Logger
	// Refused, if not nil, is called once per refused connection with the
	// reason (ReasonTotal, ReasonAddress).
	Refused func(reason string)
	// Evicted, if not nil, is called once per idle connection closed to
	// make room for a new one, with the reason.
	Evicted func(reason string)
	// now returns the time (tests set it); nil is time.Now.
	now func() time.Time
}

// Validate reports a limit out of range.
func (c LimiterConfig) Validate() error {
	if c.MaxConns < 1 {
		return fmt.Errorf("netutil: MaxConns %d: must be at least 1", c.MaxConns)
	}
	if c.MaxConnsPerAddress < 1 {
		return fmt.Errorf("netutil: MaxConnsPerAddress %d: must be at least 1", c.MaxConnsPerAddress)
	}
	return nil
}

// Limiter keeps the connection limits of one server. Each accepted
// connection asks Admit for a Slot, marks itself busy (Slot.Add) while it
// reads a request or serves one, and releases the slot when it ends. A
// connection that is not busy is idle; when a limit is reached, the idle
// connection that has been idle longest among those counting against the
// limit is closed to make room for the new one. Safe for concurrent use.
type Limiter struct {
	log      hclog.Logger
	interval time.Duration
	refused  func(string)
	evicted  func(string)
	now      func() time.Time

	mu      sync.Mutex // guards the fields below and every Slot's fields
	max     int
	perAddr int
	total   int
	idle    idleList // longest idle first
	addrs   map[netip.Prefix]*addrConns
	logged  map[netip.Prefix]*logState
}

// addrConns are the connections of one source address.
type addrConns struct {
	n    int
	idle idleList // longest idle first
}

// logState is when an address was last logged about, and what happened to
// it since.
type logState struct {
	at     time.Time
	events int
}

// Slot is one admitted connection's place in the limits.
type Slot struct {
	l     *Limiter
	key   netip.Prefix
	close func()
	// busy is the work in progress. Add changes it without l.mu and takes
	// l.mu only when it moves between zero and more, to move the slot in or
	// out of the idle lists.
	busy atomic.Int64
	// Guarded by l.mu.
	gone bool // released or evicted
	idle bool // in the idle lists
	// links places the slot in the server's idle list (0) and its
	// address's (1).
	links [2]link
}

// NewLimiter returns a limiter with cfg's limits.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Limiter{
		log:      cfg.Logger,
		interval: cfg.LogInterval,
		refused:  cfg.Refused,
		evicted:  cfg.Evicted,
		now:      cfg.now,
		max:      cfg.MaxConns,
		perAddr:  cfg.MaxConnsPerAddress,
		idle:     idleList{which: 0},
		addrs:    make(map[netip.Prefix]*addrConns),
		logged:   make(map[netip.Prefix]*logState),
	}
	if l.log == nil {
		l.log = hclog.NewNullLogger()
	}
	if l.interval <= 0 {
		l.interval = DefaultLogInterval
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l, nil
}

// SetLimits replaces the limits. Lowered limits apply to new connections:
// the connections open beyond them are not closed, but each new one takes
// the place of an idle one.
func (l *Limiter) SetLimits(maxConns, perAddress int) error {
	if err := (LimiterConfig{MaxConns: maxConns, MaxConnsPerAddress: perAddress}).Validate(); err != nil {
		return err
	}
	l.mu.Lock()
	l.max, l.perAddr = maxConns, perAddress
	l.mu.Unlock()
	return nil
}

// Open returns the number of connections holding a slot.
func (l *Limiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

// Admit gives a new connection from remote a slot, idle, and reports
// whether it got one. closeConn closes the connection; Admit calls it
// (outside its lock) on an idle connection it evicts to make room. When every
// connection counting against the limit reached is busy, the new one is
// refused: the caller closes it.
func (l *Limiter) Admit(remote net.Addr, closeConn func()) (*Slot, bool) {
	key := sourceKey(remote)
	l.mu.Lock()
	a := l.addrs[key]
	if a == nil {
		a = &addrConns{idle: idleList{which: 1}}
		l.addrs[key] = a
	}
	var victim *Slot
	reason := ""
	switch {
	case l.perAddr < l.max && a.n >= l.perAddr:
		reason = ReasonAddress
		victim = firstIdle(&a.idle)
	case l.total >= l.max:
		reason = ReasonTotal
		victim = firstIdle(&l.idle)
	}
	if reason != "" && victim == nil {
		if a.n == 0 {
			delete(l.addrs, key)
		}
		logIt, events := l.noteLocked(key)
		l.mu.Unlock()
		if l.refused != nil {
			l.refused(reason)
		}
		if logIt {
			l.log.Warn("connection limit reached; refusing new connection", "source", sourceString(key),
				"reason", reason, "events-since-last-line", events)
		}
		return nil, false
	}
	var logIt bool
	var events int
	if victim != nil {
		l.releaseLocked(victim)
		l.addrs[key] = a // the victim may have been the address's last
		logIt, events = l.noteLocked(victim.key)
	}
	s := &Slot{l: l, key: key, close: closeConn}
	a.n++
	l.total++
	l.setIdleLocked(s)
	l.mu.Unlock()
	if victim != nil {
		victim.close()
		if l.evicted != nil {
			l.evicted(reason)
		}
		if logIt {
			l.log.Warn("connection limit reached; closed the longest idle connection", "source", sourceString(victim.key),
				"reason", reason, "events-since-last-line", events)
		}
	}
	return s, true
}

// noteLocked records an event for key and reports whether to log it, with
// the events since the last line (this one included).
func (l *Limiter) noteLocked(key netip.Prefix) (bool, int) {
	now := l.now()
	st := l.logged[key]
	if st != nil && now.Sub(st.at) < l.interval {
		st.events++
		return false, 0
	}
	if st == nil && len(l.logged) >= maxLogged {
		for k, v := range l.logged {
			if now.Sub(v.at) >= l.interval {
				delete(l.logged, k)
			}
		}
		if len(l.logged) >= maxLogged {
			return false, 0 // counted by the caller's metric only
		}
	}
	events := 1
	if st != nil {
		events += st.events
	}
	l.logged[key] = &logState{at: now}
	return true, events
}

// firstIdle returns the slot idle longest in idle, skipping slots that have
// just become busy and not yet left the list.
func firstIdle(idle *idleList) *Slot {
	for s := idle.front; s != nil; s = s.links[idle.which].next {
		if s.busy.Load() <= 0 {
			return s
		}
	}
	return nil
}

func (l *Limiter) setIdleLocked(s *Slot) {
	if s.idle {
		return
	}
	s.idle = true
	l.idle.pushBack(s)
	l.addrs[s.key].idle.pushBack(s)
}

func (l *Limiter) clearIdleLocked(s *Slot) {
	if s.idle {
		s.idle = false
		l.idle.remove(s)
		l.addrs[s.key].idle.remove(s)
	}
}

func (l *Limiter) releaseLocked(s *Slot) {
	if s.gone {
		return
	}
	l.clearIdleLocked(s)
	s.gone = true
	a := l.addrs[s.key]
	a.n--
	if a.n == 0 {
		delete(l.addrs, s.key)
	}
	l.total--
}

// Add changes the work in progress on the connection by delta (a request
// read or answered, a message being read): with some in progress it is
// busy, and is never closed to make room; with none it is idle, and joins
// the end of the idle lists.
func (s *Slot) Add(delta int) {
	n := s.busy.Add(int64(delta))
	if was := n - int64(delta); (was > 0) == (n > 0) {
		return // still busy, or still idle: the lists stay as they are
	}
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.gone {
		return
	}
	// Another Add may have moved busy since: set the lists from its value
	// now. The last Add of a change of state to take the lock sets them
	// right.
	if s.busy.Load() > 0 {
		l.clearIdleLocked(s)
	} else {
		l.setIdleLocked(s)
	}
}

// Release gives the slot back; the connection has ended. It is idempotent,
// and a no-op for a slot that was evicted.
func (s *Slot) Release() {
	s.l.mu.Lock()
	s.l.releaseLocked(s)
	s.l.mu.Unlock()
}

// sourceKey is the source address a connection counts against: its IPv4
// address, or the /64 of its IPv6 address (one host usually has a whole
// /64). An address that is not IP (a pipe in tests) counts against the
// invalid prefix, all together.
func sourceKey(a net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip = a.AddrPort().Addr()
	default:
		if a != nil {
			if ap, err := netip.ParseAddrPort(a.String()); err == nil {
				ip = ap.Addr()
			}
		}
	}
	ip = ip.Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

func sourceString(p netip.Prefix) string {
	if p.Addr().Is4() {
		return p.Addr().String()
	}
	return p.String()
}

// Sample records an event about a connection from remote (a refused
// handshake, say) and reports whether to log it: at most once per
// LogInterval per source address, with the number of events since the last
// line, this one included.
func (l *Limiter) Sample(remote net.Addr) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.noteLocked(sourceKey(remote))
}

// link is a slot's place in one idle list.
type link struct{ prev, next *Slot }

// idleList is a list of slots threaded through their links[which], so that
// a connection going idle and busy again allocates nothing.
type idleList struct {
	which       int
	front, back *Slot
}

func (q *idleList) pushBack(s *Slot) {
	k := &s.links[q.which]
	k.prev, k.next = q.back, nil
	if q.back != nil {
		q.back.links[q.which].next = s
	} else {
		q.front = s
	}
	q.back = s
}

func (q *idleList) remove(s *Slot) {
	k := &s.links[q.which]
	if k.prev != nil {
		k.prev.links[q.which].next = k.next
	} else {
		q.front = k.next
	}
	if k.next != nil {
		k.next.links[q.which].prev = k.prev
	} else {
		q.back = k.prev
	}
	*k = link{}
}

// Idle returns the number of idle connections.
func (l *Limiter) Idle() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for s := l.idle.front; s != nil; s = s.links[0].next {
		n++
	}
	return n
}
