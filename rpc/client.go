package rpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto"
)

var _ chord.Transport = (*Client)(nil)

// Client makes calls to other nodes. It keeps one connection per peer
// address (every ring position of the process there shares it), shared by
// concurrent calls, dialled on first use,
// dropped when it breaks or stays idle, and redialled on the next call.
type Client struct {
	cfg  ClientConfig
	id   *crypto.Identity
	keys *crypto.Keyring
	log  hclog.Logger
	m    *metrics

	// ctx bounds dials and connections; cancel ends them (Close).
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // guards conns, closed and every peerConn's inflight, lastUsed, idle
	conns  map[poolKey]*peerConn
	closed bool

	bufs  bufPool   // frame buffers
	calls sync.Pool // *pendingCall

	wg sync.WaitGroup // dial goroutines and each connection's reader and writer
}

// poolKey names a pooled connection: one per peer address, which every
// position of the process there shares (virtual nodes). The dial verifies
// the position it was made for; the certificate must prove each other one
// called on the connection (clientConn.position).
type poolKey struct {
	addr string
}

// peerConn is a pooled connection, or the dial that will produce it.
type peerConn struct {
	key   poolKey
	ready chan struct{} // closed when the dial has finished
	err   error         // dial error; read after ready
	cc    *clientConn   // set before ready is closed, if the dial succeeded

	inflight int         // calls using the connection (Client.mu)
	lastUsed time.Time   // when inflight last dropped to 0 (Client.mu)
	idle     *time.Timer // closes the connection when idle (Client.mu)

	lastReply time.Time // when a reply or error last came back (Client.mu)
	silent    int       // calls in a row that timed out with no reply since they began (Client.mu)
}

// hungAfter is how many calls in a row may time out on a connection that
// answers nothing at all before it is dropped and redialled: a peer that only
// accepts connections would otherwise keep every timed-out call pending.
const hungAfter = 3

// NewClient returns a client that calls peers as the node id, signing frames
// with keys (replacing its keys takes effect for the next frame).
func NewClient(cfg ClientConfig, id *crypto.Identity, keys *crypto.Keyring) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if id == nil || keys == nil {
		return nil, errors.New("rpc: NewClient needs an identity and a keyring")
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("rpc: register metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{
		cfg:    cfg,
		id:     id,
		keys:   keys,
		log:    log,
		m:      m,
		ctx:    ctx,
		cancel: cancel,
		conns:  make(map[poolKey]*peerConn),
	}, nil
}

// Call invokes method on node to (see chord.Transport for the contract). A
// call without a deadline on ctx gets ClientConfig.CallTimeout. The call is
// made from this node's position 0 (its node ID); As makes calls from
// another.
func (c *Client) Call(ctx context.Context, to chord.NodeInfo, method string, args, reply any) error {
	return c.callAs(ctx, 0, to, method, args, reply)
}

// As returns a transport whose calls are made from this node's position
// index as (crypto.PositionID), over the same connections: the server
// hands its handler that position as the caller.
func (c *Client) As(as int) chord.Transport {
	if as < 0 || as >= crypto.PositionCandidates {
		panic(fmt.Sprintf("rpc: position %d outside [0, %d)", as, crypto.PositionCandidates))
	}
	return positionTransport{c: c, as: as}
}

type positionTransport struct {
	c  *Client
	as int
}

func (t positionTransport) Call(ctx context.Context, to chord.NodeInfo, method string, args, reply any) error {
	return t.c.callAs(ctx, t.as, to, method, args, reply)
}

func (c *Client) callAs(ctx context.Context, as int, to chord.NodeInfo, method string, args, reply any) error {
	series := c.m.call(method)
	series.calls.Inc()
	start := time.Now()
	err := c.call(ctx, as, to, method, args, reply)
	series.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		series.errors.Inc()
		return fmt.Errorf("rpc %s to %s: %w", method, to, err)
	}
	return nil
}

func (c *Client) call(ctx context.Context, as int, to chord.NodeInfo, method string, args, reply any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.CallTimeout)
		defer cancel()
	}
	for attempt := 0; ; attempt++ {
		pc, reused, err := c.get(ctx, to)
		if err != nil {
			return err
		}
		at, err := pc.cc.position(to.ID)
		if err != nil {
			c.release(pc)
			return c.handshakeError(pc.key, err)
		}
		began := time.Now()
		res, err := c.roundTrip(ctx, pc.cc, as, at, method, args)
		c.release(pc)
		if c.noteOutcome(pc, began, err, ctx.Err()) {
			c.log.Warn("peer answers nothing; dropping its connection", "peer", to.String(), "timed-out-calls", hungAfter)
			c.drop(pc)
		}
		if err == nil {
			err = c.decodeResult(ctx, res, reply)
			c.bufs.put(res.buf)
			return err
		}
		var werr *wireError
		switch {
		case errors.Is(err, errEncode):
			return err
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &werr):
			return &chord.RemoteError{Code: int(werr.Code), Message: werr.Message}
		case errors.Is(err, errNotSent) && reused && attempt == 0:
			// The pooled connection had died before the request left:
			// nothing was sent, so one retry on a fresh connection is safe.
			continue
		}
		c.drop(pc)
		return fmt.Errorf("%w: %v", chord.ErrUnreachable, err)
	}
}

// decodeResult decodes a call's result into reply (nil: discarded).
func (c *Client) decodeResult(ctx context.Context, res callResult, reply any) error {
	// A reply that raced the deadline (the handler's context ends with
	// ours) comes too late: the call has ended.
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	if reply == nil {
		return nil
	}
	if err := json.Unmarshal(res.result, reply); err != nil {
		return fmt.Errorf("decode reply: %w", err)
	}
	return nil
}

// noteOutcome records how a call on pc ended and reports whether pc now
// looks hung: hungAfter calls in a row timed out with nothing at all coming
// back on it since each began.
func (c *Client) noteOutcome(pc *peerConn, began time.Time, err, ctxErr error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil || isRemote(err):
		pc.lastReply, pc.silent = time.Now(), 0
	case errors.Is(ctxErr, context.DeadlineExceeded) && pc.lastReply.Before(began):
		pc.silent++
	}
	return pc.silent >= hungAfter
}

// isRemote reports whether err is an error response from the peer.
func isRemote(err error) bool {
	var werr *wireError
	return errors.As(err, &werr)
}

// errNotSent marks a call that failed before its request was written.
var errNotSent = errors.New("connection closed before the request was sent")

// errEncode marks a call whose request could not be encoded.
var errEncode = errors.New("encode args")

// roundTrip sends one request on cc and waits for its response. On success
// the caller puts res.buf back into c.bufs once it has decoded res.result.
func (c *Client) roundTrip(ctx context.Context, cc *clientConn, as, to int, method string, args any) (callResult, error) {
	var timeoutMS int64
	if dl, ok := ctx.Deadline(); ok {
		// Rounded up: the handler's context must not end before ours.
		timeoutMS = max(1, (time.Until(dl) + time.Millisecond - 1).Milliseconds())
	}
	id := cc.nextID.Add(1)
	f := c.bufs.outgoing()
	if err := f.appendRequestMeta(id, method, args, reqMeta{timeoutMS: timeoutMS, to: to, as: as}); err != nil {
		c.bufs.put(f)
		return callResult{}, fmt.Errorf("%w: %v", errEncode, err)
	}
	if err := cc.w.checkSize(f); err != nil {
		c.bufs.put(f)
		return callResult{}, fmt.Errorf("%w: %v", errEncode, err)
	}
	pending, _ := c.calls.Get().(*pendingCall)
	if pending == nil {
		pending = &pendingCall{done: make(chan callResult, 1)}
	}
	if !cc.register(id, pending) {
		c.bufs.put(f)
		c.calls.Put(pending)
		return callResult{}, errNotSent
	}
	if err := cc.w.send(ctx, f); err != nil {
		if cc.unregister(id) {
			c.calls.Put(pending)
		} else {
			c.bufs.put((<-pending.done).buf)
			c.calls.Put(pending)
		}
		if errors.Is(err, errConnClosed) {
			return callResult{}, errNotSent
		}
		return callResult{}, err
	}
	select {
	case res := <-pending.done:
		c.calls.Put(pending)
		return res, res.err
	case <-ctx.Done():
		if !cc.unregister(id) {
			// The reader has taken the call and hands its result over at
			// once: wait for it so that pending can be reused.
			res := <-pending.done
			c.bufs.put(res.buf)
		}
		c.calls.Put(pending)
		return callResult{}, ctx.Err()
	}
}

// get returns a ready connection to `to`, dialling if there is none. reused
// reports whether the connection existed before this call. The caller must
// release it.
func (c *Client) get(ctx context.Context, to chord.NodeInfo) (pc *peerConn, reused bool, err error) {
	key := poolKey{addr: to.Addr}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, false, chord.ErrClosed
	}
	pc = c.conns[key]
	if pc == nil {
		fresh := &peerConn{key: key, ready: make(chan struct{})}
		c.conns[key] = fresh
		c.wg.Go(func() { c.dial(fresh, to.ID) })
		pc = fresh
	} else {
		select {
		case <-pc.ready:
			reused = true
		default:
		}
	}
	pc.inflight++
	if pc.idle != nil {
		pc.idle.Stop()
	}
	c.mu.Unlock()
	select {
	case <-pc.ready:
	case <-ctx.Done():
		c.release(pc)
		return nil, false, ctx.Err()
	}
	if pc.err != nil {
		c.release(pc)
		return nil, false, pc.err
	}
	return pc, reused, nil
}

// release ends one call's use of pc and arms the idle timer.
func (c *Client) release(pc *peerConn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pc.inflight--
	if pc.inflight > 0 || pc.cc == nil || c.closed {
		return
	}
	pc.lastUsed = time.Now()
	if pc.idle == nil {
		pc.idle = time.AfterFunc(c.cfg.IdleTimeout, func() { c.closeIfIdle(pc) })
	} else {
		pc.idle.Reset(c.cfg.IdleTimeout)
	}
}

func (c *Client) closeIfIdle(pc *peerConn) {
	c.mu.Lock()
	idle := pc.inflight == 0 && time.Since(pc.lastUsed) >= c.cfg.IdleTimeout && c.conns[pc.key] == pc
	if idle {
		delete(c.conns, pc.key)
	}
	c.mu.Unlock()
	if idle {
		c.log.Debug("closing idle connection", "peer", pc.key.addr)
		pc.cc.w.close()
	}
}

// drop removes pc from the pool (if still there) and closes it.
func (c *Client) drop(pc *peerConn) {
	c.mu.Lock()
	if c.conns[pc.key] == pc {
		delete(c.conns, pc.key)
	}
	c.mu.Unlock()
	if pc.cc != nil {
		pc.cc.w.close()
	}
}

// dial connects pc and records the outcome; a failed dial leaves the pool.
func (c *Client) dial(pc *peerConn, id chord.ID) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	defer cancel()
	conn, err := c.connect(ctx, pc.key, id)
	c.mu.Lock()
	if err == nil && c.closed {
		err = chord.ErrClosed
		conn.w.close()
	}
	if err != nil {
		pc.err = err
		if c.conns[pc.key] == pc {
			delete(c.conns, pc.key)
		}
		c.mu.Unlock()
		close(pc.ready)
		return
	}
	pc.cc = conn
	c.mu.Unlock()
	close(pc.ready)
	c.m.clientConns.Inc()
	c.wg.Go(conn.w.writeLoop)
	c.wg.Go(func() {
		conn.readLoop(c.bufs.put)
		<-conn.w.wrote
		c.m.clientConns.Dec()
		c.mu.Lock()
		if c.conns[pc.key] == pc {
			delete(c.conns, pc.key)
		}
		if pc.idle != nil {
			pc.idle.Stop()
		}
		c.mu.Unlock()
		c.log.Debug("connection closed", "peer", pc.key.addr)
	})
}

// connect dials TCP, does the TLS handshake and the hello exchange.
func (c *Client) connect(ctx context.Context, key poolKey, id chord.ID) (*clientConn, error) {
	host, _, err := net.SplitHostPort(key.addr)
	if err != nil {
		return nil, fmt.Errorf("%w: address %q: %v", chord.ErrUnreachable, key.addr, err)
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", key.addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", chord.ErrUnreachable, err)
	}
	tc := tls.Client(raw, noDynamicRecords(c.id.ClientConfig(host, id)))
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, c.handshakeError(key, err)
	}
	peerAddr := raw.RemoteAddr()
	st := newWire(tc, c.keys, &c.bufs, c.cfg.MaxFrameSize, c.cfg.FrameTimeout, func(reason string, err error) {
		c.m.rejected.WithLabelValues(reason).Inc()
		c.log.Warn("peer refused", "reason", reason, "peer", peerAddr.String(), "error", err)
	})
	if err := c.hello(ctx, st); err != nil {
		_ = tc.Close()
		if errors.Is(err, chord.ErrProtocol) {
			return nil, err
		}
		return nil, c.handshakeError(key, err)
	}
	leaf := tc.ConnectionState().PeerCertificates[0]
	return &clientConn{w: st, pending: make(map[uint64]*pendingCall), log: c.log,
		leaf: leaf, positions: map[chord.ID]int{crypto.NodeID(leaf): 0}}, nil
}

// hello sends ours and checks the server's answer, within ctx.
func (c *Client) hello(ctx context.Context, st *wire) error {
	deadline, _ := ctx.Deadline()
	if err := st.conn.SetDeadline(deadline); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { _ = st.conn.SetDeadline(time.Now()) })
	defer stop()
	st.frameTimeout = max(1, time.Until(deadline))
	if err := st.writeHello(hello{Protocol: protocolName, Version: ProtocolVersion}); err != nil {
		return err
	}
	st.idleTimeout = max(1, time.Until(deadline))
	h, err := st.readHello()
	st.idleTimeout, st.frameTimeout = 0, c.cfg.FrameTimeout
	if err != nil {
		return err
	}
	if h.Error != nil {
		err := &chord.RemoteError{Code: h.Error.Code, Message: h.Error.Message}
		c.m.rejected.WithLabelValues(ReasonProtocol).Inc()
		c.log.Warn("peer refused our protocol", "peer", st.conn.RemoteAddr().String(), "error", err)
		return err
	}
	if err := checkHello(h); err != nil {
		c.m.rejected.WithLabelValues(ReasonProtocol).Inc()
		c.log.Warn("peer speaks another protocol", "peer", st.conn.RemoteAddr().String(), "error", err)
		return err
	}
	return st.conn.SetDeadline(time.Time{})
}

// handshakeError classifies a failed TLS handshake or hello, counts refusals
// and returns the error the caller sees.
func (c *Client) handshakeError(key poolKey, err error) error {
	var cve *tls.CertificateVerificationError
	var uae x509.UnknownAuthorityError
	var op *net.OpError
	switch {
	case errors.Is(err, chord.ErrIdentityMismatch):
		c.m.rejected.WithLabelValues(ReasonIdentity).Inc()
		c.log.Warn("peer identity mismatch", "peer", key.addr, "error", err)
		return err
	case errors.As(err, &cve) || errors.As(err, &uae):
		c.m.rejected.WithLabelValues(ReasonTLS).Inc()
		c.log.Warn("peer certificate refused", "peer", key.addr, "error", err)
		return fmt.Errorf("%w: %v", chord.ErrIdentityMismatch, err)
	case errors.As(err, &op) && op.Op == "remote error":
		// The peer sent a TLS alert: it refused our certificate.
		c.m.rejected.WithLabelValues(ReasonTLS).Inc()
		c.log.Warn("peer refused our certificate", "peer", key.addr, "error", err)
	}
	return fmt.Errorf("%w: %v", chord.ErrUnreachable, err)
}

// Close closes every connection and ends dials in progress; calls then fail
// with chord.ErrClosed. It waits for the client's goroutines and is
// idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.closed = true
	var open []*peerConn
	for _, pc := range c.conns {
		open = append(open, pc)
	}
	clear(c.conns)
	c.mu.Unlock()
	c.cancel()
	for _, pc := range open {
		<-pc.ready
		c.mu.Lock()
		if pc.idle != nil {
			pc.idle.Stop()
		}
		c.mu.Unlock()
		if pc.cc != nil {
			pc.cc.w.close()
		}
	}
	c.wg.Wait()
	return nil
}

// clientConn is one connection's calls: requests written by its wire's
// writer, responses matched to the waiting calls by id in readLoop.
type clientConn struct {
	w      *wire
	log    hclog.Logger
	nextID atomic.Uint64
	// leaf is the peer's certificate; positions caches the index of each
	// of its positions called so far (crypto.PositionIndex; 0 for its node
	// ID), sent with each call (on mu).
	leaf      *x509.Certificate
	positions map[chord.ID]int

	mu      sync.Mutex // guards pending and ended
	pending map[uint64]*pendingCall
	ended   bool // the read loop has ended: no new calls
}

// position returns the index of the peer's position id, which its
// certificate must prove (chord.ErrIdentityMismatch otherwise, as for a
// handshake with an impostor); 0 for the zero ID (any node).
func (cc *clientConn) position(id chord.ID) (int, error) {
	if id.IsZero() {
		return 0, nil
	}
	cc.mu.Lock()
	i, ok := cc.positions[id]
	cc.mu.Unlock()
	if ok {
		return i, nil
	}
	i, ok = crypto.PositionIndex(cc.leaf, id)
	if !ok {
		return 0, fmt.Errorf("%w: the certificate at this address does not prove position %s", chord.ErrIdentityMismatch, id.Short())
	}
	cc.mu.Lock()
	if len(cc.positions) < crypto.PositionCandidates {
		cc.positions[id] = i
	}
	cc.mu.Unlock()
	return i, nil
}

// pendingCall is a call waiting for its response; reused across calls.
type pendingCall struct {
	done chan callResult // capacity 1: the reader never waits
}

// callResult is a call's outcome: its result, a sub-slice of buf, or err (a
// *wireError from the peer, or why the connection ended).
type callResult struct {
	buf    *frameBuf
	result []byte
	err    error
}

// register adds a call about to be sent; false if the connection has ended.
func (cc *clientConn) register(id uint64, p *pendingCall) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.ended {
		return false
	}
	cc.pending[id] = p
	return true
}

// unregister removes a call; false if the reader took it first (its result
// is then on the way to the call's channel).
func (cc *clientConn) unregister(id uint64) bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if _, ok := cc.pending[id]; !ok {
		return false
	}
	delete(cc.pending, id)
	return true
}

// take removes and returns the call waiting for id, if any.
func (cc *clientConn) take(id uint64) *pendingCall {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	p := cc.pending[id]
	delete(cc.pending, id)
	return p
}

// readLoop reads responses until the connection ends, then fails the calls
// still waiting. Buffers not handed to a call go back through put.
func (cc *clientConn) readLoop(put func(*frameBuf)) {
	var err error
	for {
		var (
			f    *frameBuf
			body []byte
			m    message
		)
		f, body, err = cc.w.readBody()
		if err != nil {
			break
		}
		if m, err = parseMessage(body, nil); err != nil {
			err = fmt.Errorf("%w: %v", ErrBadFrame, err)
			cc.w.reject(ReasonFrame, err)
			put(f)
			break
		}
		if m.isRequest {
			// Calls go from client to server only.
			if m.req.id != nil {
				out := cc.w.bufs.outgoing()
				out.b = appendErrorResponse(out.b, m.req.id, chord.CodeUnknownMethod, "calls go from client to server only")
				_ = cc.w.send(context.Background(), out)
			}
			put(f)
			continue
		}
		var p *pendingCall
		if m.resp.hasID {
			p = cc.take(m.resp.id)
		}
		if p == nil {
			// An answer to a call that gave up, or an error about a
			// request the peer could not read.
			put(f)
			continue
		}
		res := callResult{buf: f, result: m.resp.result}
		if m.resp.err != nil {
			res = callResult{err: m.resp.err}
			put(f)
		}
		p.done <- res
	}
	cc.w.close()
	cc.mu.Lock()
	cc.ended = true
	pending := cc.pending
	cc.pending = nil
	cc.mu.Unlock()
	cc.log.Debug("connection ended", "peer", cc.w.conn.RemoteAddr().String(), "error", err)
	for _, p := range pending {
		p.done <- callResult{err: fmt.Errorf("connection ended: %w", err)}
	}
}
