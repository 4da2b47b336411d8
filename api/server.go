package api

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/durachord/durachord/internal/netutil"
)

// Service is what the server serves: the node's storage and lookup.
type Service interface {
	// Put stores p. TTL and Replication are passed raw as received (0
	// included); the service applies its defaults and limits. p.Value is
	// owned by the callee. ctx ends after Config.RequestTimeout or when the
	// server is closed (not when the client disconnects: a PUT that was
	// received is carried out).
	Put(ctx context.Context, p Put) error
	// Get returns the live value of key, or an error satisfying
	// errors.Is(err, ErrNotFound) when none exists. ctx ends after
	// Config.RequestTimeout or when the connection closes.
	Get(ctx context.Context, key [KeySize]byte) ([]byte, error)
}

// Config configures a Server. Start from DefaultConfig.
type Config struct {
	// MaxConns is the number of client connections served at once. A new
	// connection beyond it takes the place of the connection that has been
	// idle (no request in progress, none being read) longest; when none is
	// idle it is accepted and closed at once. Default 1024.
	MaxConns int
	// MaxConnsPerAddress is the number of connections served at once from
	// one source address (an IPv4 address, an IPv6 /64), with the same rule:
	// a new one beyond it takes the place of that address's longest idle
	// connection, or is closed. Above MaxConns it is MaxConns. Default 256.
	MaxConnsPerAddress int
	// FirstByteTimeout is the time a new connection has to send the first
	// byte of its first message; one that sends nothing is closed. Default
	// 2s.
	FirstByteTimeout time.Duration
	// MaxRequestBytes bounds the bytes of the requests read and not yet
	// finished, over all connections: a PUT holds its message size until it
	// is carried out. A connection whose next message does not fit waits
	// (it is not read) until enough is released; nothing is dropped. At
	// least MaxMessageSize, so that any one message fits. Default 64 MiB.
	MaxRequestBytes int64
	// MaxRequestBytesPerAddress is the same bound over the connections of
	// one source address, so that one address cannot hold the whole of
	// MaxRequestBytes. At least MaxMessageSize. Default 16 MiB.
	MaxRequestBytesPerAddress int64
	// MaxInFlight is the number of requests (GETs and PUTs) in progress per
	// connection; a GET counts until its reply is written. At the limit the
	// server stops reading from the connection. Default 64.
	MaxInFlight int
	// ReadTimeout is the time a client has to complete a message once its
	// first byte arrived. Default 10s.
	ReadTimeout time.Duration
	// IdleTimeout closes a connection on which no request is in progress and
	// none arrived for this long. Default 5m.
	IdleTimeout time.Duration
	// RequestTimeout is the deadline for the Service to carry out one
	// request (the lookup deadline); a GET that runs out gets FAILURE.
	// Default 5s.
	RequestTimeout time.Duration
	// WriteTimeout is the time one write of replies may take before the
	// connection is closed as unresponsive. Default 10s.
	WriteTimeout time.Duration
	// Logger receives the server's logs; nil discards them.
	Logger hclog.Logger
	// Metrics registers the server's collectors; nil leaves them
	// unregistered.
	Metrics prometheus.Registerer
}

// DefaultConfig returns the default configuration.
func DefaultConfig() Config {
	return Config{
		MaxConns:           1024,
		MaxConnsPerAddress: 256,
		FirstByteTimeout:   2 * time.Second,
		MaxRequestBytes:    64 << 20,
		MaxInFlight:        64,
		// 16 MiB: a quarter of MaxRequestBytes.
		MaxRequestBytesPerAddress: 16 << 20,
		ReadTimeout:               10 * time.Second,
		IdleTimeout:               5 * time.Minute,
		RequestTimeout:            5 * time.Second,
		WriteTimeout:              10 * time.Second,
	}
}

// Validate reports the first invalid field of c.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"MaxConns", c.MaxConns > 0},
		{"MaxConnsPerAddress", c.MaxConnsPerAddress > 0},
		{"FirstByteTimeout", c.FirstByteTimeout > 0},
		{"MaxInFlight", c.MaxInFlight > 0},
		{"ReadTimeout", c.ReadTimeout > 0},
		{"IdleTimeout", c.IdleTimeout > 0},
		{"RequestTimeout", c.RequestTimeout > 0},
		{"WriteTimeout", c.WriteTimeout > 0},
	} {
		if !f.ok {
			return fmt.Errorf("api: config: %s must be positive", f.name)
		}
	}
	if c.MaxRequestBytes < MaxMessageSize {
		return fmt.Errorf("api: config: MaxRequestBytes %d: must be at least %d (one message)", c.MaxRequestBytes, MaxMessageSize)
	}
	if c.MaxRequestBytesPerAddress < MaxMessageSize {
		return fmt.Errorf("api: config: MaxRequestBytesPerAddress %d: must be at least %d (one message)", c.MaxRequestBytesPerAddress, MaxMessageSize)
	}
	return nil
}

// Server serves the client protocol. Create it with NewServer.
type Server struct {
	cfg Config
	// limits holds the connection limits and timeouts in force; SetLimits
	// replaces them while the server runs.
	limits atomic.Pointer[Config]
	svc    Service
	log    hclog.Logger
	// limiter keeps MaxConns and MaxConnsPerAddress; budget keeps
	// MaxRequestBytes, sources MaxRequestBytesPerAddress.
	limiter *netutil.Limiter
	budget  *netutil.Budget
	sources *netutil.SourceBudgets
	m       *metrics
	// answered counts the requests answered, whatever the outcome; rate
	// counts them by the second.
	answered atomic.Uint64
	rate     requestRate
	ctx      context.Context // ends at Close: Service calls end with it
	cancel   context.CancelFunc
	conns    sync.WaitGroup // one per connection goroutine

	mu        sync.Mutex // guards listeners, active, shutdown
	listeners map[net.Listener]struct{}
	active    map[*conn]struct{}
	shutdown  bool
	done      chan struct{} // closed when shutdown becomes true
}

// Requests returns the number of client requests (PUT and GET) the server
// has carried out since it was made, whatever their outcome: the sum of
// durachord_api_requests_total.
func (s *Server) Requests() uint64 { return s.answered.Load() }

// RequestRate returns the mean number of client requests carried out per
// second over the last 10 whole seconds.
func (s *Server) RequestRate() float64 { return s.rate.perSecond(time.Now()) }

// NewServer returns a server for svc.
func NewServer(cfg Config, svc Service) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if svc == nil {
		return nil, errors.New("api: nil Service")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	budget, err := netutil.NewBudget(cfg.MaxRequestBytes)
	if err != nil {
		return nil, err
	}
	sources, err := netutil.NewSourceBudgets(cfg.MaxRequestBytesPerAddress)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Metrics, budget, sources)
	if err != nil {
		return nil, err
	}
	limiter, err := netutil.NewLimiter(netutil.LimiterConfig{
		MaxConns:           cfg.MaxConns,
		MaxConnsPerAddress: cfg.MaxConnsPerAddress,
		Logger:             cfg.Logger.Named("api"),
		Refused:            func(reason string) { m.rejected.WithLabelValues(reason).Inc() },
		Evicted:            func(reason string) { m.evicted.WithLabelValues(reason).Inc() },
	})
	if err != nil {
		return nil, fmt.Errorf("api: config: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:       cfg,
		svc:       svc,
		log:       cfg.Logger,
		limiter:   limiter,
		budget:    budget,
		sources:   sources,
		m:         m,
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		active:    make(map[*conn]struct{}),
		done:      make(chan struct{}),
	}
	s.limits.Store(&cfg)
	return s, nil
}

// SetLimits replaces the limits and timeouts (MaxConns,
// MaxConnsPerAddress, FirstByteTimeout, MaxInFlight, ReadTimeout,
// IdleTimeout, RequestTimeout, WriteTimeout) while the server runs; the other
// fields of cfg (MaxRequestBytes among them) are ignored. Timeouts apply from
// the next message on, the connection limits to the next accepted connection
// (connections open beyond a lowered limit stay, but each new one takes the
// place of an idle one), MaxInFlight to connections accepted from now on.
func (s *Server) SetLimits(cfg Config) error {
	next := *s.limits.Load()
	next.MaxConns, next.MaxConnsPerAddress, next.MaxInFlight = cfg.MaxConns, cfg.MaxConnsPerAddress, cfg.MaxInFlight
	next.FirstByteTimeout, next.ReadTimeout, next.IdleTimeout = cfg.FirstByteTimeout, cfg.ReadTimeout, cfg.IdleTimeout
	next.RequestTimeout, next.WriteTimeout = cfg.RequestTimeout, cfg.WriteTimeout
	if err := next.Validate(); err != nil {
		return err
	}
	if err := s.limiter.SetLimits(next.MaxConns, next.MaxConnsPerAddress); err != nil {
		return fmt.Errorf("api: config: %w", err)
	}
	s.limits.Store(&next)
	return nil
}

// Limits returns the configuration in force: the limits and timeouts of the
// last SetLimits, or of NewServer before any; the other fields are NewServer's.
func (s *Server) Limits() Config { return *s.limits.Load() }

// Serve accepts connections on l and serves each in its own goroutine. It
// returns ErrServerClosed after Shutdown or Close, or the listener's error.
// It closes l when it returns.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		_ = l.Close() // the server is closed; the listener's error adds nothing
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		_ = l.Close() // already closed by Shutdown, or failed in Accept
	}()

	s.log.Info("serving client api", "address", l.Addr().String())
	err := netutil.Serve(l, s.done, s.log, s.accept)
	if err == nil || s.isShutdown() {
		return ErrServerClosed
	}
	return fmt.Errorf("api: accept: %w", err)
}

func (s *Server) accept(nc net.Conn) {
	c := s.newConn(nc)
	s.mu.Lock()
	if s.shutdown {
		s.mu.Unlock()
		c.cancel()
		_ = nc.Close() // the server is closing; nothing was exchanged
		return
	}
	// The limiter may close another connection (c.abort, outside its lock).
	slot, ok := s.limiter.Admit(nc.RemoteAddr(), c.abort)
	if !ok {
		s.mu.Unlock()
		c.cancel()
		_ = nc.Close() // refused (counted and logged by the limiter)
		return
	}
	c.slot = slot
	var closeBudget func()
	c.addrBudget, closeBudget = s.sources.Open(nc.RemoteAddr())
	s.active[c] = struct{}{}
	s.conns.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.conns.Done()
		c.serve() // returns once every request of c is finished
		closeBudget()
		slot.Release()
		s.mu.Lock()
		delete(s.active, c)
		s.mu.Unlock()
	}()
}

func (s *Server) isShutdown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.shutdown
}

// beginShutdown stops accepting and returns the listeners' close error.
func (s *Server) beginShutdown() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.shutdown {
		s.shutdown = true
		close(s.done)
	}
	var errs []error
	for l := range s.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
		delete(s.listeners, l)
	}
	return errors.Join(errs...)
}

// Shutdown stops accepting connections, stops reading new requests, lets the
// requests in progress finish and their replies be written, and closes every
// connection. If ctx ends first, it closes everything at once (as Close) and
// returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.beginShutdown()
	s.mu.Lock()
	for c := range s.active {
		c.stopReading()
	}
	s.mu.Unlock()
	idle := make(chan struct{})
	go func() {
		s.conns.Wait()
		close(idle)
	}()
	select {
	case <-idle:
		s.cancel()
		return err
	case <-ctx.Done():
		if cerr := s.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		return errors.Join(ctx.Err(), err)
	}
}

// Close closes the listeners and every connection at once, without waiting
// for requests in progress (their Service calls see their ctx end), and
// returns when every connection goroutine has returned. It is idempotent.
func (s *Server) Close() error {
	err := s.beginShutdown()
	s.mu.Lock()
	for c := range s.active {
		c.abort()
	}
	s.mu.Unlock()
	s.cancel() // after abort: no reply gets out once Close has begun
	s.conns.Wait()
	return err
}

// aLongTimeAgo is a deadline in the past: it makes blocked reads return.
var aLongTimeAgo = time.Unix(1, 0)

// errStopped ends a read loop on Shutdown; errIdle after IdleTimeout.
var (
	errStopped     = errors.New("api: connection stopped reading")
	errIdle        = errors.New("api: connection idle")
	errFirstByte   = errors.New("api: new connection sent nothing")
	errReadTimeout = errors.New("api: message not completed within the read timeout")
)

type pendingPut struct {
	done chan struct{} // closed when the PUT has been carried out
}

// conn is one client connection.
type conn struct {
	s    *Server
	nc   net.Conn
	slot *netutil.Slot // busy while a message is read or a request is in progress
	// addrBudget is the byte budget of the connection's source address.
	addrBudget *netutil.Budget
	remote     string
	ctx        context.Context // ends on abort: GETs in progress end with it
	cancel     context.CancelFunc

	sem     chan struct{} // one token per request in progress
	replies chan Message  // GET replies for the writer; cap MaxInFlight
	work    chan func()   // requests for idle workers; unbuffered, closed when reading ends
	idle    atomic.Int32  // workers waiting on work
	reqs    sync.WaitGroup
	aborted sync.Once

	mu       sync.Mutex // guards stopping, stopCh, the read deadline, puts
	stopping bool
	puts     map[[KeySize]byte]*pendingPut
}

func (s *Server) newConn(nc net.Conn) *conn {
	inFlight := s.limits.Load().MaxInFlight
	ctx, cancel := context.WithCancel(s.ctx)
	return &conn{
		s:       s,
		nc:      nc,
		remote:  nc.RemoteAddr().String(),
		ctx:     ctx,
		cancel:  cancel,
		sem:     make(chan struct{}, inFlight),
		replies: make(chan Message, inFlight),
		work:    make(chan func()),
		puts:    make(map[[KeySize]byte]*pendingPut),
	}
}

// stopReading makes the read loop end after the message it is reading, if
// any; requests in progress continue and their replies are written.
func (c *conn) stopReading() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stopping {
		c.stopping = true
		_ = c.nc.SetReadDeadline(aLongTimeAgo) // fails only if closed
	}
}

// abort closes the connection at once: no more reads or writes.
func (c *conn) abort() {
	c.aborted.Do(func() {
		// Close first: a GET that ends with ctx must not get its reply out.
		_ = c.nc.Close() // nothing more can be told to this peer
		c.cancel()
	})
}

func (c *conn) setReadDeadline(d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := time.Now().Add(d)
	if c.stopping {
		t = aLongTimeAgo
	}
	return c.nc.SetReadDeadline(t)
}

func (c *conn) serve() {
	s := c.s
	s.m.openConns.Inc()
	defer s.m.openConns.Dec()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()

	err := c.readLoop(bufio.NewReader(c.nc))
	close(c.work) // the read loop was its only sender
	switch reason := violationReason(err); {
	case reason != "":
		c.violation(reason, err)
	case errors.Is(err, errReadTimeout):
		c.violation(reasonReadTimeout, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		c.violation(reasonTruncated, err)
	case errors.Is(err, errIdle):
		s.m.idleClosed.Inc()
		s.log.Debug("closing idle connection", "remote", c.remote)
		c.abort()
	case errors.Is(err, errFirstByte):
		s.m.silentClosed.Inc()
		s.log.Debug("closing connection that sent nothing", "remote", c.remote)
		c.abort()
	case errors.Is(err, io.EOF), errors.Is(err, errStopped):
		// Finish the requests in progress and write their replies.
	default:
		if c.ctx.Err() == nil {
			s.log.Debug("connection read failed", "remote", c.remote, "error", err)
		}
		c.abort()
	}
	c.reqs.Wait()
	close(c.replies)
	<-writerDone
	c.abort()
}

func (c *conn) violation(reason string, err error) {
	c.s.m.violations.WithLabelValues(reason).Inc()
	c.s.log.Debug("protocol violation; closing connection", "remote", c.remote, "reason", reason, "error", err)
	c.abort()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func (c *conn) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

func (c *conn) readLoop(br *bufio.Reader) error {
	for first := true; ; first = false {
		lim := c.s.limits.Load()
		wait := lim.IdleTimeout
		if first {
			wait = min(lim.FirstByteTimeout, wait)
		}
		if err := c.setReadDeadline(wait); err != nil {
			return err
		}
		if _, err := br.Peek(1); err != nil {
			if !isTimeout(err) {
				return err
			}
			if c.isStopping() {
				return errStopped
			}
			if first {
				return errFirstByte
			}
			if len(c.sem) > 0 {
				continue // requests in progress: not idle
			}
			return errIdle
		}
		c.slot.Add(1) // reading a message: not idle
		err := c.readRequest(br, lim)
		c.slot.Add(-1)
		if err != nil {
			return err
		}
	}
}

// readRequest reads one message and starts its request. The message's size
// is taken from the server's byte budget before its body is read (waiting,
// without reading, while the budget is spent) and given back when the
// request is finished.
func (c *conn) readRequest(br *bufio.Reader, lim *Config) error {
	if err := c.setReadDeadline(lim.ReadTimeout); err != nil {
		return err
	}
	hdr, err := br.Peek(HeaderSize)
	if err != nil {
		return c.readError(err)
	}
	size, t := int(binary.BigEndian.Uint16(hdr)), Type(binary.BigEndian.Uint16(hdr[2:]))
	if err := CheckHeader(size, t); err != nil {
		return err
	}
	// Only a PUT holds its bytes: a GET's key is copied out as it is parsed.
	var held heldBytes
	if t == TypePut {
		if held, err = c.acquireBytes(size); err != nil {
			return errStopped // aborted while waiting
		}
		// The wait may have been long: the rest of the message has
		// ReadTimeout from now.
		if err := c.setReadDeadline(lim.ReadTimeout); err != nil {
			c.releaseBytes(held)
			return err
		}
	}
	m, err := ReadMessage(br)
	if err != nil {
		c.releaseBytes(held)
		return c.readError(err)
	}
	start := time.Now()
	switch m := m.(type) {
	case Put:
		if !c.acquire() {
			c.releaseBytes(held)
			return errStopped
		}
		c.startPut(m, start, held)
	case Get:
		if !c.acquire() {
			return errStopped
		}
		c.startGet(m, start)
	default:
		c.releaseBytes(held)
		return fmt.Errorf("%w: %v from a client", ErrUnexpectedType, m.Type())
	}
	return nil
}

// heldBytes is what one message took from the byte budgets.
type heldBytes struct{ addr, all int64 }

// acquireBytes takes n bytes from the address's budget, then from the
// server's (waiting on the server's while holding the address's share only
// delays that address).
func (c *conn) acquireBytes(n int) (heldBytes, error) {
	addr, err := c.addrBudget.Acquire(c.ctx, n)
	if err != nil {
		return heldBytes{}, err
	}
	all, err := c.s.budget.Acquire(c.ctx, n)
	if err != nil {
		c.addrBudget.Release(addr)
		return heldBytes{}, err
	}
	return heldBytes{addr: addr, all: all}, nil
}

func (c *conn) releaseBytes(h heldBytes) {
	c.s.budget.Release(h.all)
	c.addrBudget.Release(h.addr)
}

// readError classifies an error reading a started message.
func (c *conn) readError(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF // the message had begun
	}
	if isTimeout(err) {
		if c.isStopping() {
			return errStopped
		}
		return fmt.Errorf("%w: %w", errReadTimeout, err)
	}
	return err
}

// acquire takes a request slot, waiting (and not reading) while all are
// taken. It returns false if the connection is aborted first; on Shutdown it
// keeps waiting, so that a request already read is still served.
func (c *conn) acquire() bool {
	select {
	case c.sem <- struct{}{}:
		c.slot.Add(1)
		return true
	case <-c.ctx.Done():
		return false
	}
}

func (c *conn) release(n int) {
	for range n {
		<-c.sem
	}
	c.slot.Add(-n)
}

// startPut carries out p; held is what its message took from the byte
// budget, given back once the PUT is done.
func (c *conn) startPut(p Put, start time.Time, held heldBytes) {
	s := c.s
	e := &pendingPut{done: make(chan struct{})}
	c.mu.Lock()
	prev := c.puts[p.Key]
	c.puts[p.Key] = e
	c.mu.Unlock()
	c.run(func() {
		defer c.release(1)
		defer c.releaseBytes(held)
		if prev != nil {
			<-prev.done // bounded by RequestTimeout
		}
		// Not c.ctx: a PUT that was received is carried out even if the
		// client goes away.
		ctx, cancel := context.WithTimeout(s.ctx, s.limits.Load().RequestTimeout)
		err := s.svc.Put(ctx, p)
		timedOut := ctx.Err() != nil
		cancel()
		// Counted before a GET waiting on this PUT may answer: a client that
		// saw the GET's reply also sees the PUT in the metrics.
		outcome := outcomeSuccess
		if err != nil {
			outcome = s.outcome(timedOut, s.ctx, err)
			s.log.Warn("put failed", "remote", c.remote, "key", fmt.Sprintf("%x", p.Key), "error", err)
		}
		s.m.requests.WithLabelValues("put", outcome).Inc()
		s.answered.Add(1)
		s.rate.add(time.Now())
		s.m.latency.WithLabelValues("put").Observe(time.Since(start).Seconds())
		close(e.done)
		c.mu.Lock()
		if c.puts[p.Key] == e {
			delete(c.puts, p.Key)
		}
		c.mu.Unlock()
	})
}

// outcome classifies a Service error; timedOut tells whether the request's
// ctx had ended, parent is the context it was derived from.
func (s *Server) outcome(timedOut bool, parent context.Context, err error) string {
	switch {
	case errors.Is(err, ErrNotFound):
		return outcomeNotFound
	case parent.Err() != nil:
		return outcomeCanceled
	case errors.Is(err, context.DeadlineExceeded) || timedOut:
		return outcomeTimeout
	}
	return outcomeError
}

func (c *conn) startGet(g Get, start time.Time) {
	s := c.s
	c.mu.Lock()
	prev := c.puts[g.Key]
	c.mu.Unlock()
	c.run(func() {
		if prev != nil {
			select {
			case <-prev.done:
			case <-c.ctx.Done():
			}
		}
		ctx, cancel := context.WithTimeout(c.ctx, s.limits.Load().RequestTimeout)
		v, err := s.svc.Get(ctx, g.Key)
		timedOut := ctx.Err() != nil
		cancel()
		if err == nil && (len(v) == 0 || len(v) > MaxSuccessValueSize) {
			err = fmt.Errorf("service returned a value of %d bytes: %w", len(v), ErrValueSize)
		}
		var reply Message = Failure(g)
		outcome := outcomeSuccess
		if err == nil {
			reply = Success{Key: g.Key, Value: v}
		} else {
			outcome = s.outcome(timedOut, c.ctx, err)
			if outcome == outcomeError || outcome == outcomeTimeout {
				s.log.Warn("get failed; answering failure", "remote", c.remote, "key", fmt.Sprintf("%x", g.Key), "error", err)
			}
		}
		s.m.requests.WithLabelValues("get", outcome).Inc()
		s.answered.Add(1)
		s.rate.add(time.Now())
		s.m.latency.WithLabelValues("get").Observe(time.Since(start).Seconds())
		c.replies <- reply // never blocks: cap MaxInFlight, one slot per GET
	})
}

// maxIdleWorkers is how many workers of a connection wait for the next
// request; one more that finishes its request ends.
const maxIdleWorkers = 4

// run carries out a request on one of the connection's workers: an idle one,
// or a new one when none is idle (at most MaxInFlight run, as requests hold
// a slot of sem). Workers outlive their request because a new goroutine per
// request spent about a fifth of a node's CPU growing its stack, in the store
// and the lookup, on every GET.
func (c *conn) run(fn func()) {
	select {
	case c.work <- fn:
		return
	default:
	}
	c.reqs.Go(func() {
		for {
			fn()
			if c.idle.Add(1) > maxIdleWorkers {
				c.idle.Add(-1)
				return
			}
			next, ok := <-c.work
			c.idle.Add(-1)
			if !ok {
				return
			}
			fn = next
		}
	})
}

// maxWriteBatch bounds the bytes of replies gathered into one write.
const maxWriteBatch = 64 << 10

// writeLoop writes GET replies as they come, several whole replies per
// write when more are waiting, and releases their request slots once
// written. After a write error it closes the connection and discards the
// rest.
func (c *conn) writeLoop() {
	var buf []byte
	broken := false
	for m := range c.replies {
		buf = m.AppendTo(buf[:0])
		n, closed := 1, false
	gather:
		for len(buf) < maxWriteBatch {
			select {
			case m, ok := <-c.replies:
				if !ok {
					closed = true
					break gather
				}
				buf = m.AppendTo(buf)
				n++
			default:
				break gather
			}
		}
		if !broken {
			err := c.nc.SetWriteDeadline(time.Now().Add(c.s.limits.Load().WriteTimeout))
			if err == nil {
				_, err = c.nc.Write(buf)
			}
			if err != nil {
				broken = true
				if c.ctx.Err() == nil {
					c.s.m.writeErrors.Inc()
					c.s.log.Debug("reply write failed; closing connection", "remote", c.remote, "error", err)
				}
				c.abort()
			}
		}
		c.release(n)
		if closed {
			return
		}
	}
}
