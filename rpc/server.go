package rpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/internal/netutil"
)

// Server serves a chord.Handler to peers over mutual TLS. Its lifecycle
// follows net/http: Serve(l) until Shutdown or Close.
type Server struct {
	cfg     ServerConfig
	id      *crypto.Identity
	keys    *crypto.Keyring
	handler chord.Handler
	log     hclog.Logger
	m       *metrics
	// positions are this node's candidate positions, computed at the first
	// call that names one.
	positionsOnce sync.Once
	positions     []chord.ID
	sm            *serverMetrics
	tlsCfg        *tls.Config
	// limiter keeps MaxConns and MaxConnsPerAddress; records and calling
	// are the MaxRequestBytes budgets of the other calls and of the
	// CallingMethods.
	limiter                *netutil.Limiter
	records, callingBudget *netutil.Budget
	sem                    chan struct{} // one token per running handler of records calls
	ctrl                   chan struct{} // one token per running handler of ring calls (chord.*)
	calling                chan struct{} // one token per running handler of the CallingMethods
	// queued counts the requests waiting for a handler slot.
	queued atomic.Int64
	// stopping mirrors shuttingDown for the per-request check.
	stopping atomic.Bool
	bufs     bufPool // frame buffers

	// baseCtx is the parent of every connection's context; cancel ends them.
	baseCtx context.Context
	cancel  context.CancelFunc

	mu           sync.Mutex // guards the fields below and every serverConn's w
	listeners    map[net.Listener]struct{}
	conns        map[*serverConn]struct{}
	shuttingDown bool
	done         chan struct{} // closed when shuttingDown becomes true

	connWG    sync.WaitGroup // connection goroutines
	handlerWG sync.WaitGroup // calls being handled
	workerWG  sync.WaitGroup // handler goroutines, running a call or idle
	// jobs hands a call to an idle handler goroutine; idleWorkers counts
	// those waiting on it.
	jobs        chan func()
	idleWorkers atomic.Int32
	closeOnce   sync.Once
}

type serverConn struct {
	raw  net.Conn
	slot *netutil.Slot // busy from the first byte to the hello, and while a call is handled
	peer chord.ID
	w    *wire // nil until the hello is done (Server.mu)
}

// NewServer returns a server that answers calls with h. keys verifies and
// signs frames; replacing its keys (Keyring.Replace) takes effect for the
// next frame on every connection.
func NewServer(cfg ServerConfig, id *crypto.Identity, keys *crypto.Keyring, h chord.Handler) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if id == nil || keys == nil || h == nil {
		return nil, errors.New("rpc: NewServer needs an identity, a keyring and a handler")
	}
	cfg.CallingMethods = slices.Clone(cfg.CallingMethods) // the caller's copy stays theirs
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("rpc: register metrics: %w", err)
	}
	records, err := netutil.NewBudget(cfg.MaxRequestBytes)
	if err != nil {
		return nil, fmt.Errorf("rpc: %w", err)
	}
	calling, err := netutil.NewBudget(cfg.MaxRequestBytes)
	if err != nil {
		return nil, fmt.Errorf("rpc: %w", err)
	}
	sm, err := newServerMetrics(cfg.Metrics, records, calling)
	if err != nil {
		return nil, fmt.Errorf("rpc: register metrics: %w", err)
	}
	limiter, err := netutil.NewLimiter(netutil.LimiterConfig{
		MaxConns:           cfg.MaxConns,
		MaxConnsPerAddress: cfg.MaxConnsPerAddress,
		Logger:             log.Named("rpc"),
		Refused:            func(reason string) { sm.refused.WithLabelValues(reason).Inc() },
		Evicted:            func(reason string) { sm.evicted.WithLabelValues(reason).Inc() },
	})
	if err != nil {
		return nil, fmt.Errorf("rpc: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		cfg:           cfg,
		id:            id,
		keys:          keys,
		handler:       h,
		log:           log,
		m:             m,
		sm:            sm,
		limiter:       limiter,
		records:       records,
		callingBudget: calling,
		done:          make(chan struct{}),
		tlsCfg:        noDynamicRecords(id.ServerConfig()),
		sem:           make(chan struct{}, cfg.MaxHandlers),
		ctrl:          make(chan struct{}, ctrlHandlers),
		calling:       make(chan struct{}, cfg.MaxHandlers),
		jobs:          make(chan func()),
		baseCtx:       ctx,
		cancel:        cancel,
		listeners:     make(map[net.Listener]struct{}),
		conns:         make(map[*serverConn]struct{}),
	}, nil
}

// Serve accepts connections on l (a plain TCP listener: the server does TLS)
// until Shutdown or Close, then returns ErrServerClosed. Any other accept
// error is returned as is. Serve closes l before it returns.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.shuttingDown {
		s.mu.Unlock()
		_ = l.Close()
		return ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, l)
		s.mu.Unlock()
		_ = l.Close()
	}()
	s.log.Info("serving rpc", "address", l.Addr().String(), "id", s.id.ID.String())
	err := netutil.Serve(l, s.done, s.log, s.accept)
	if err == nil || s.closing() {
		return ErrServerClosed
	}
	return fmt.Errorf("rpc: accept: %w", err)
}

// accept starts serving raw, or closes it when the server is closing or the
// limiter refuses it.
func (s *Server) accept(raw net.Conn) {
	if s.closing() {
		_ = raw.Close()
		return
	}
	sc := &serverConn{raw: raw}
	// Not under s.mu: the limiter may evict another connection (s.evict).
	slot, ok := s.limiter.Admit(raw.RemoteAddr(), func() { s.evict(sc) })
	if !ok {
		_ = raw.Close() // refused (counted and logged by the limiter)
		return
	}
	sc.slot = slot
	// Added under s.mu, where Close sets shuttingDown before it waits.
	s.mu.Lock()
	if s.shuttingDown {
		s.mu.Unlock()
		slot.Release()
		_ = raw.Close()
		return
	}
	s.connWG.Go(func() {
		defer slot.Release()
		s.serveConn(sc)
	})
	s.mu.Unlock()
}

// evict closes an idle connection to make room for a new one.
func (s *Server) evict(sc *serverConn) {
	s.mu.Lock()
	w := sc.w
	s.mu.Unlock()
	if w != nil {
		w.close()
	}
	_ = sc.raw.Close()
}

// smallFrame is the largest request frame that takes nothing from the byte
// budgets: ring calls fit in it, so they are never held up behind records,
// and the bytes of such frames are bounded by the handler and queue counts.
const smallFrame = 4 << 10

// admitFrame takes a request frame of n bytes from the budget of its class
// before the frame's body is read, waiting while the budget is spent. The
// class is read from the start of the body (the method name comes first in
// our encoding; a peer that lies about it only picks which bounded budget it
// waits on).
func (s *Server) admitFrame(sc *serverConn, w *wire, n int) (*netutil.Budget, int64, error) {
	if n <= smallFrame {
		return nil, 0, nil
	}
	budget := s.records
	head, err := w.br.Peek(min(n, crypto.MACSize+methodPeek))
	if err != nil {
		return nil, 0, err
	}
	if method, ok := peekMethod(head[crypto.MACSize:]); ok && slices.Contains(s.cfg.CallingMethods, method) {
		budget = s.callingBudget
	}
	sc.slot.Add(1) // waiting for the budget: busy, a frame is half read
	defer sc.slot.Add(-1)
	held, err := budget.Acquire(w.ctx, n)
	if err != nil {
		return nil, 0, fmt.Errorf("%w while waiting for the request byte budget", errConnClosed)
	}
	return budget, held, nil
}

// methodPeek is how much of a body admitFrame looks at for the method.
const methodPeek = 96

// peekMethod returns the method of a request encoded as appendRequestHead
// encodes it, from the first bytes of its body.
func peekMethod(head []byte) (string, bool) {
	const key = `"method":"`
	i := strings.Index(string(head), key)
	if i < 0 {
		return "", false
	}
	rest := head[i+len(key):]
	j := strings.IndexByte(string(rest), '"')
	if j < 0 {
		return "", false
	}
	return string(rest[:j]), true
}

func (s *Server) closing() bool { return s.stopping.Load() }

// reject counts a refused peer or frame, and logs it at most once per
// interval per source address.
func (s *Server) reject(reason string, peer net.Addr, err error) {
	s.m.rejected.WithLabelValues(reason).Inc()
	if ok, events := s.limiter.Sample(peer); ok {
		s.log.Warn("peer refused", "reason", reason, "peer", peer.String(), "error", err, "events-since-last-line", events)
	}
}

// serveConn runs one connection: first byte, handshake, hello, then calls
// until it ends.
func (s *Server) serveConn(sc *serverConn) {
	raw := sc.raw
	peerAddr := raw.RemoteAddr()
	// Registered before the handshake so that Close interrupts it.
	if !s.track(sc) {
		_ = raw.Close()
		return
	}
	defer s.untrack(sc)

	first, err := netutil.FirstByte(raw, s.cfg.FirstByteTimeout)
	if err != nil {
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() && s.baseCtx.Err() == nil {
			s.sm.silent.Inc() // before the close, which the peer sees
		}
		_ = raw.Close()
		// A port probe, or a connection that said nothing in time.
		s.log.Debug("connection closed before its first byte", "peer", peerAddr.String(), "error", err)
		return
	}
	sc.slot.Add(1) // busy until the hello is done
	helloDone := false
	defer func() {
		if !helloDone {
			sc.slot.Add(-1)
		}
	}()
	tc := tls.Server(first, s.tlsCfg)
	ctx, cancel := context.WithTimeout(s.baseCtx, s.cfg.HandshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		switch {
		case s.baseCtx.Err() != nil:
		case errors.Is(err, io.EOF):
			// Closed before saying anything: a port probe, not a peer.
			s.log.Debug("connection closed before tls handshake", "peer", peerAddr.String())
		default:
			s.reject(ReasonTLS, peerAddr, err)
		}
		return
	}
	peer, err := crypto.PeerID(tc.ConnectionState())
	if err != nil {
		_ = raw.Close()
		s.reject(ReasonTLS, peerAddr, err)
		return
	}
	sc.peer = peer
	st := newWire(tc, s.keys, &s.bufs, s.cfg.MaxFrameSize, s.cfg.FrameTimeout, func(reason string, err error) {
		s.reject(reason, peerAddr, err)
	})
	if err := s.hello(ctx, st); err != nil {
		_ = tc.Close()
		return
	}
	helloDone = true
	sc.slot.Add(-1)
	st.idleTimeout = s.cfg.IdleTimeout
	st.admit = func(n int) (*netutil.Budget, int64, error) { return s.admitFrame(sc, st, n) }
	s.m.serverConns.Inc()
	defer s.m.serverConns.Dec()

	s.mu.Lock()
	sc.w = st
	_, open := s.conns[sc]
	s.mu.Unlock()
	if !open { // Close ran while we set up
		st.close()
	}
	var writer sync.WaitGroup
	writer.Go(st.writeLoop)
	s.log.Debug("peer connected", "peer", peerAddr.String(), "peer-id", peer.Short())
	h := &connHandler{s: s, peer: peer, cert: tc.ConnectionState().PeerCertificates[0], w: st, slot: sc.slot}
	err = h.readLoop()
	st.close()
	writer.Wait()
	s.log.Debug("peer disconnected", "peer", peerAddr.String(), "peer-id", peer.Short(), "error", err)
}

// hello reads the client's hello and answers it, within the handshake
// deadline.
func (s *Server) hello(ctx context.Context, st *wire) error {
	deadline, _ := ctx.Deadline()
	if err := st.conn.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = st.conn.SetDeadline(time.Now()) })
	defer stop()
	// readBody sets its own read deadline; keep the handshake's.
	st.idleTimeout = time.Until(deadline)
	st.frameTimeout = max(0, time.Until(deadline))
	h, err := st.readHello()
	st.frameTimeout = s.cfg.FrameTimeout
	if err != nil {
		return err // a refused frame is counted by the stream
	}
	reply := hello{Protocol: protocolName, Version: ProtocolVersion}
	verr := checkHello(h)
	if verr != nil {
		reply.Error = &helloError{Code: chord.CodeProtocol, Message: verr.Error()}
		s.reject(ReasonProtocol, st.conn.RemoteAddr(), verr)
	}
	if err := st.writeHello(reply); err != nil {
		return err
	}
	if verr != nil {
		return verr
	}
	return st.conn.SetDeadline(time.Time{})
}

func (s *Server) track(sc *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shuttingDown && s.baseCtx.Err() != nil {
		return false
	}
	s.conns[sc] = struct{}{}
	return true
}

func (s *Server) untrack(sc *serverConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

// Shutdown stops accepting, answers new requests on open connections with
// chord.ErrShuttingDown, waits for running handlers until ctx ends, then
// closes every connection (cancelling any handler still running) and waits
// for them. It returns ctx.Err() if ctx ended first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.beginShutdown()
	done := make(chan struct{})
	go func() {
		s.handlerWG.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
		s.finishAll(ctx)
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.closeAll()
	return err
}

// Close closes listeners and connections at once, cancels running handlers
// and waits for the server's goroutines (handlers included) to return. It is
// idempotent.
func (s *Server) Close() error {
	s.beginShutdown()
	s.closeAll()
	return nil
}

// beginShutdown stops accepting.
func (s *Server) beginShutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.shuttingDown {
		s.shuttingDown = true
		close(s.done)
	}
	s.stopping.Store(true)
	for l := range s.listeners {
		_ = l.Close()
	}
}

// finishAll delivers the answers already queued on every connection, then
// closes it, waiting until ctx ends at most.
func (s *Server) finishAll(ctx context.Context) {
	s.mu.Lock()
	var ws []*wire
	for sc := range s.conns {
		if sc.w != nil {
			ws = append(ws, sc.w)
		}
	}
	s.mu.Unlock()
	for _, w := range ws {
		w.finish()
	}
	for _, w := range ws {
		select {
		case <-w.wrote:
		case <-ctx.Done():
			return
		}
	}
}

func (s *Server) closeAll() {
	s.closeOnce.Do(func() {
		s.cancel()
		s.mu.Lock()
		for sc := range s.conns {
			if sc.w != nil {
				sc.w.close()
			}
			_ = sc.raw.Close()
			delete(s.conns, sc)
		}
		s.mu.Unlock()
		s.log.Info("rpc server closed")
	})
	s.connWG.Wait()
	s.handlerWG.Wait()
	s.workerWG.Wait()
}

// ctrlHandlers is the number of ring calls (chord.*) served at once; they
// only read or update the node's tables in memory.
const ctrlHandlers = 64

// queueFactor bounds the requests waiting for a handler slot: this many
// times the slots.
const queueFactor = 4

// connHandler dispatches one connection's requests to the chord.Handler.
type connHandler struct {
	s    *Server
	peer chord.ID
	// cert is the peer's certificate, which proves its other positions.
	cert *x509.Certificate
	w    *wire
	slot *netutil.Slot // busy while one of the connection's calls is handled
}

// readLoop reads requests until the connection ends and returns why.
func (h *connHandler) readLoop() error {
	methods := make(names)
	for {
		f, body, err := h.w.readBody()
		if err != nil {
			return err
		}
		m, err := parseMessage(body, methods)
		if err != nil {
			err = fmt.Errorf("%w: %v", ErrBadFrame, err)
			h.w.reject(ReasonFrame, err)
			h.s.bufs.put(f)
			return err
		}
		if !m.isRequest || m.req.id == nil {
			// A response (we send no requests) or a notification: ignored.
			h.s.bufs.put(f)
			continue
		}
		h.dispatch(f, m.req)
	}
}

// dispatch starts the handler of req, whose slices alias f, or answers it
// at once. It runs in the connection's read loop: it must not block. f goes
// back to the pool once req has been answered.
func (h *connHandler) dispatch(f *frameBuf, req request) {
	s := h.s
	if s.closing() {
		h.replyError(req.id, fmt.Errorf("%w", chord.ErrShuttingDown))
		s.bufs.put(f)
		return
	}
	timeout := s.cfg.HandlerTimeout
	if req.timeoutMS > 0 {
		timeout = min(timeout, time.Duration(req.timeoutMS)*time.Millisecond)
	}
	// Ring maintenance has slots of its own, so that a storm of records
	// calls cannot starve stabilisation into evicting live peers.
	sem := s.sem
	switch {
	case strings.HasPrefix(req.method, "chord."):
		sem = s.ctrl
	case slices.Contains(s.cfg.CallingMethods, req.method):
		sem = s.calling
	}
	acquired := false
	select {
	case sem <- struct{}{}:
		acquired = true
	default:
		// Every slot is busy: wait for one within the call's deadline,
		// behind a bounded queue.
		if s.queued.Load() >= int64(queueFactor*cap(sem)) {
			s.m.overloaded.Inc()
			h.replyError(req.id, fmt.Errorf("%w: %d handlers running, %d waiting", chord.ErrOverloaded, cap(sem), s.queued.Load()))
			s.bufs.put(f)
			return
		}
	}
	s.handlerWG.Add(1)
	h.slot.Add(1)
	s.run(func() {
		defer s.handlerWG.Done()
		defer h.slot.Add(-1)
		defer s.bufs.put(f)
		hctx, cancel := context.WithTimeout(s.baseCtx, timeout)
		defer cancel()
		if !acquired {
			s.queued.Add(1)
			select {
			case sem <- struct{}{}:
				s.queued.Add(-1)
			case <-hctx.Done():
				s.queued.Add(-1)
				s.m.overloaded.Inc()
				h.replyError(req.id, fmt.Errorf("%w: no handler free within the call's deadline", chord.ErrOverloaded))
				return
			}
		}
		start := time.Now()
		result, err := h.serve(hctx, req.to, req.as, req.method, req.args())
		// The slot is free once the handler returns, before the reply is
		// written: a caller that has its answer finds the slot free.
		<-sem
		method := req.method
		if err != nil && chord.ErrorCode(err) == chord.CodeUnknownMethod {
			method = "unknown"
		}
		s.m.handler(method).Observe(time.Since(start).Seconds())
		if err != nil {
			h.replyError(req.id, err)
			return
		}
		h.reply(req, result)
	})
}

// maxIdleWorkers bounds the handler goroutines kept waiting for the next
// call. A call runs on one of them rather than on a new goroutine, whose
// stack would grow again while it decodes and encodes.
const maxIdleWorkers = 64

// run runs job on an idle handler goroutine, or a new one.
func (s *Server) run(job func()) {
	select {
	case s.jobs <- job:
	default:
		s.workerWG.Go(func() { s.work(job) })
	}
}

// work runs job, then the jobs handed to it while it is idle, until there
// are maxIdleWorkers idle already or the server closes.
func (s *Server) work(job func()) {
	for {
		job()
		if s.idleWorkers.Add(1) > maxIdleWorkers {
			s.idleWorkers.Add(-1)
			return
		}
		select {
		case job = <-s.jobs:
			s.idleWorkers.Add(-1)
		case <-s.baseCtx.Done():
			s.idleWorkers.Add(-1)
			return
		}
	}
}

// reply answers req with result, encoded once into the frame.
func (h *connHandler) reply(req request, result any) {
	out := h.s.bufs.outgoing()
	err := out.appendResult(req.id, result)
	if err == nil {
		err = h.w.checkSize(out)
	}
	if err != nil {
		h.s.bufs.put(out)
		h.replyError(req.id, fmt.Errorf("%w: encode result of %s: %v", chord.ErrInternal, req.method, err))
		return
	}
	h.send(out)
}

// serve calls the handler, turning a panic into chord.ErrInternal (logged)
// so that one bad request cannot bring the node down.
// A call that names positions (meta.to, meta.as) goes to the handler's
// ServeRPCAt with the positions its certificates prove; a handler that
// serves one position answers calls for another with chord.ErrNoPosition.
func (h *connHandler) serve(ctx context.Context, to, as int, method string, params json.RawMessage) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			h.s.log.Error("handler panicked", "method", method, "peer-id", h.peer.Short(), "panic", p, "stack", string(debug.Stack()))
			result, err = nil, fmt.Errorf("%w: handler panicked", chord.ErrInternal)
		}
	}()
	from := h.peer
	if as > 0 {
		from = crypto.PositionID(h.cert, as)
	}
	if ph, ok := h.s.handler.(chord.PositionHandler); ok && to > 0 {
		return ph.ServeRPCAt(ctx, h.s.position(to), from, method, params)
	}
	if to > 0 {
		return nil, fmt.Errorf("%w: this node stands at its node ID only", chord.ErrNoPosition)
	}
	return h.s.handler.ServeRPC(ctx, from, method, params)
}

// position returns this node's position index i.
func (s *Server) position(i int) chord.ID {
	s.positionsOnce.Do(func() {
		s.positions = make([]chord.ID, crypto.PositionCandidates)
		for j := range s.positions {
			s.positions[j] = crypto.PositionID(s.id.Leaf, j)
		}
	})
	return s.positions[i]
}

func (h *connHandler) replyError(id []byte, err error) {
	out := h.s.bufs.outgoing()
	out.b = appendErrorResponse(out.b, id, int64(chord.ErrorCode(err)), err.Error())
	h.send(out)
}

// send queues a response; one for a connection that has ended is dropped.
func (h *connHandler) send(out *frameBuf) {
	if err := h.w.send(context.Background(), out); err != nil {
		h.s.log.Debug("reply dropped", "peer-id", h.peer.Short(), "error", err)
	}
}
