package rpc

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"

	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/internal/netutil"
)

// frameHead is the room left in front of an outgoing body for the length
// prefix and the MAC, filled in when the frame is sealed.
const frameHead = headerSize + crypto.MACSize

// maxPooledBuf is the largest buffer kept for reuse; larger ones (pages of
// records) go to the garbage collector rather than pin memory.
const maxPooledBuf = readChunk

// writeBufSize is the size of a connection's write buffer: the frames
// queued on a connection are written in batches of up to this many bytes,
// each batch one TLS record and one write.
const writeBufSize = 16 << 10

// maxBatch bounds the frames written under one write deadline.
const maxBatch = 256

// sendQueue is the number of frames that may wait for a connection's writer.
const sendQueue = 256

// frameBuf is a reusable buffer for one frame, outgoing (body from
// offset frameHead) or incoming (MAC and body).
type frameBuf struct {
	b   []byte
	enc *json.Encoder // encodes into b; made on first use
	// budget, if not nil, is where an incoming frame's bytes were taken
	// from (held of them); put gives them back.
	budget *netutil.Budget
	held   int64
}

// Write appends p: the buffer is its encoder's writer.
func (f *frameBuf) Write(p []byte) (int, error) {
	f.b = append(f.b, p...)
	return len(p), nil
}

// appendJSON appends the JSON encoding of v, encoded once, straight into
// the frame.
func (f *frameBuf) appendJSON(v any) error {
	if f.enc == nil {
		f.enc = json.NewEncoder(f)
		f.enc.SetEscapeHTML(false)
	}
	n := len(f.b)
	if err := f.enc.Encode(v); err != nil {
		f.b = f.b[:n]
		return err
	}
	f.b = f.b[:len(f.b)-1] // Encode's newline
	return nil
}

// appendRequest appends a request calling method with args (nil: no
// params), encoded once. JSON-RPC 2.0 params are structured: args that
// encode as neither an object nor an array travel as the only element of an
// array, marked in meta so that the handler gets the args themselves (null
// for a nil pointer).
func (f *frameBuf) appendRequest(id uint64, method string, args any, timeoutMS int64) error {
	return f.appendRequestMeta(id, method, args, reqMeta{timeoutMS: timeoutMS})
}

// appendRequestMeta is appendRequest with the meta member m (whose
// scalarParams it sets itself).
func (f *frameBuf) appendRequestMeta(id uint64, method string, args any, m reqMeta) error {
	f.b = appendRequestHead(f.b, id, method)
	scalar := false
	if args != nil {
		f.b = append(f.b, `,"params":`...)
		at := len(f.b)
		if err := f.appendJSON(args); err != nil {
			return err
		}
		if params := f.b[at:]; params[0] != '{' && params[0] != '[' {
			f.b = append(f.b, 0)
			copy(f.b[at+1:], f.b[at:len(f.b)-1])
			f.b[at] = '['
			f.b = append(f.b, ']')
			scalar = true
		}
	}
	m.scalarParams = scalar
	f.b = appendRequestTail(f.b, m)
	return nil
}

// appendResult appends a response to the request of raw id with result,
// encoded once.
func (f *frameBuf) appendResult(id []byte, result any) error {
	f.b = appendResponseHead(f.b, id, false)
	if err := f.appendJSON(result); err != nil {
		return err
	}
	f.b = append(f.b, '}')
	return nil
}

// bufPool holds frame buffers for reuse.
type bufPool struct{ p sync.Pool }

func (p *bufPool) get() *frameBuf {
	if f, ok := p.p.Get().(*frameBuf); ok {
		return f
	}
	return &frameBuf{b: make([]byte, 0, 1024)}
}

// put takes f back, and gives back the budget its frame held: a frame is
// put back once its request has been answered.
func (p *bufPool) put(f *frameBuf) {
	if f == nil {
		return
	}
	if f.budget != nil {
		f.budget.Release(f.held)
		f.budget, f.held = nil, 0
	}
	if cap(f.b) > maxPooledBuf {
		return
	}
	f.b = f.b[:0]
	p.p.Put(f)
}

// outgoing returns a buffer with room for the frame head.
func (p *bufPool) outgoing() *frameBuf {
	f := p.get()
	f.b = append(f.b[:0], make([]byte, frameHead)...)
	return f
}

// errConnClosed: the connection ended before the frame could be queued.
var errConnClosed = errors.New("connection closed")

// wire is one connection after its TLS handshake: frames read by one
// goroutine, frames written by a writer goroutine that drains the send queue
// into a buffered writer and flushes when the queue is empty, so that frames
// queued together leave together.
type wire struct {
	conn     net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	bufs     *bufPool
	maxFrame int
	// idleTimeout bounds the wait for the next frame (0: none); frameTimeout
	// bounds reading the rest of a started frame and writing a batch.
	idleTimeout, frameTimeout time.Duration
	// reject is called with the reason when a frame is refused.
	reject func(reason string, err error)
	// sign is used by the writer only (and by writeSync before it starts),
	// verify by the reader only.
	sign, verify *crypto.MAC
	// readDeadline reports whether a read deadline is set (reader only).
	readDeadline bool
	// admit, if not nil, is called by the reader with the length of a frame
	// whose header has been read, before its body is read; it may wait
	// (reading stops) and returns the budget the frame holds until the
	// frame buffer is put back. An error ends reading.
	admit func(n int) (*netutil.Budget, int64, error)
	// ctx ends when the connection is closed: a wait in admit ends with it.
	ctx    context.Context
	cancel context.CancelFunc

	out        chan *frameBuf
	closed     chan struct{} // closed by close
	closeOnce  sync.Once
	finishing  chan struct{} // closed by finish
	finishOnce sync.Once
	wrote      chan struct{} // closed when the writer has returned
}

func newWire(conn net.Conn, keys *crypto.Keyring, bufs *bufPool, maxFrame int, frameTimeout time.Duration, reject func(string, error)) *wire {
	ctx, cancel := context.WithCancel(context.Background())
	return &wire{
		ctx:          ctx,
		cancel:       cancel,
		conn:         conn,
		br:           bufio.NewReader(conn),
		bufs:         bufs,
		maxFrame:     maxFrame,
		frameTimeout: frameTimeout,
		reject:       reject,
		sign:         keys.NewMAC(),
		verify:       keys.NewMAC(),
		out:          make(chan *frameBuf, sendQueue),
		closed:       make(chan struct{}),
		finishing:    make(chan struct{}),
		wrote:        make(chan struct{}),
	}
}

// close closes the connection (ending the reader and the writer); it is
// idempotent.
func (w *wire) close() {
	w.closeOnce.Do(func() {
		close(w.closed)
		w.cancel()
		_ = w.conn.Close()
	})
}

// finish makes the writer write the frames already queued, then close the
// connection (a graceful end: the answers given are delivered).
func (w *wire) finish() {
	w.finishOnce.Do(func() { close(w.finishing) })
}

// seal fills in the length and MAC of an outgoing frame whose body starts at
// frameHead.
func (w *wire) seal(f *frameBuf) {
	body := f.b[frameHead:]
	binary.BigEndian.PutUint32(f.b, uint32(crypto.MACSize+len(body)))
	w.sign.AppendSign(f.b[headerSize:headerSize], body)
}

// checkSize reports an outgoing body that the peer would refuse.
func (w *wire) checkSize(f *frameBuf) error {
	if n := len(f.b) - frameHead; crypto.MACSize+n > w.maxFrame {
		return fmt.Errorf("%w: outgoing body of %d bytes, maximum %d", ErrFrameTooLarge, n, w.maxFrame-crypto.MACSize)
	}
	return nil
}

// writeSync writes one frame at once, before the writer runs (the hello).
func (w *wire) writeSync(f *frameBuf) error {
	defer w.bufs.put(f)
	if err := w.checkSize(f); err != nil {
		return err
	}
	w.seal(f)
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.frameTimeout)); err != nil {
		return err
	}
	_, err := w.conn.Write(f.b)
	return err
}

// send queues f for the writer, which returns it to the pool. It fails with
// errConnClosed if the connection has ended, or ctx's error.
func (w *wire) send(ctx context.Context, f *frameBuf) error {
	select {
	case <-w.closed:
		w.bufs.put(f)
		return errConnClosed
	default:
	}
	select {
	case w.out <- f:
		return nil
	case <-w.closed:
		w.bufs.put(f)
		return errConnClosed
	case <-ctx.Done():
		w.bufs.put(f)
		return ctx.Err()
	}
}

// writeLoop writes queued frames until the connection closes. A failed
// write closes the connection: a partly written frame cannot be followed.
func (w *wire) writeLoop() {
	defer close(w.wrote)
	w.bw = bufio.NewWriterSize(w.conn, writeBufSize)
	for {
		var f *frameBuf
		select {
		case f = <-w.out:
		case <-w.closed:
			return
		case <-w.finishing:
			if w.writeBatch(nil, -1) == nil {
				_ = w.bw.Flush()
			}
			w.close()
			return
		}
		if err := w.writeBatch(f, maxBatch); err != nil {
			w.close()
			return
		}
	}
}

// writeBatch writes f and the frames queued behind it, up to limit of them
// (all for limit < 0), under one write deadline, and flushes them.
func (w *wire) writeBatch(f *frameBuf, limit int) error {
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.frameTimeout)); err != nil {
		return err
	}
	yielded := false
	for n := 0; ; n++ {
		if f != nil {
			w.seal(f)
			_, err := w.bw.Write(f.b)
			w.bufs.put(f)
			if err != nil {
				return err
			}
		}
		if limit >= 0 && n >= limit {
			break
		}
		select {
		case f = <-w.out:
			continue
		default:
		}
		if !yielded {
			// Let callers that are about to queue a frame do so, so that
			// it leaves with this batch rather than in a write of its own.
			yielded = true
			runtime.Gosched()
			select {
			case f = <-w.out:
				continue
			default:
			}
		}
		break
	}
	return w.bw.Flush()
}

// setReadDeadline sets the read deadline to d from now, or clears it for
// d == 0, skipping the call when there is none to clear.
func (w *wire) setReadDeadline(d time.Duration) error {
	if d <= 0 {
		if !w.readDeadline {
			return nil
		}
		w.readDeadline = false
		return w.conn.SetReadDeadline(time.Time{})
	}
	w.readDeadline = true
	return w.conn.SetReadDeadline(time.Now().Add(d))
}

// readBody reads the next frame into a pooled buffer and returns it with
// its verified body (a sub-slice of it). The caller puts the buffer back
// when it is done with the body. Deadlines are set only when a read will
// wait for the network: frames already buffered cost no system call.
func (w *wire) readBody() (*frameBuf, []byte, error) {
	if w.br.Buffered() < headerSize {
		if err := w.setReadDeadline(w.idleTimeout); err != nil {
			return nil, nil, err
		}
	}
	n, err := readBufferedHeader(w.br, w.maxFrame)
	if err != nil {
		if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, ErrBadFrame) {
			w.reject(ReasonFrame, err)
		}
		return nil, nil, err
	}
	if w.br.Buffered() < n {
		if err := w.setReadDeadline(w.frameTimeout); err != nil {
			return nil, nil, err
		}
	}
	var budget *netutil.Budget
	var held int64
	if w.admit != nil {
		if budget, held, err = w.admit(n); err != nil {
			return nil, nil, err
		}
		// The wait may have been long: the rest has frameTimeout from now.
		if held > 0 && w.br.Buffered() < n {
			if err := w.setReadDeadline(w.frameTimeout); err != nil {
				budget.Release(held)
				return nil, nil, err
			}
		}
	}
	f := w.bufs.get()
	f.budget, f.held = budget, held
	b, err := readFrameInto(w.br, n, f.b[:0], w.verify)
	f.b = b
	if err != nil {
		w.bufs.put(f)
		if errors.Is(err, ErrBadMAC) {
			w.reject(ReasonHMAC, err)
		}
		return nil, nil, err
	}
	return f, b[crypto.MACSize:], nil
}

// noDynamicRecords makes a TLS configuration send full-size records from
// the start, so that a batch of frames is one record rather than several
// small ones (dynamic record sizing helps browsers render early; peers
// gain nothing from it).
func noDynamicRecords(cfg *tls.Config) *tls.Config {
	cfg.DynamicRecordSizingDisabled = true
	if get := cfg.GetConfigForClient; get != nil {
		cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := get(hi)
			if err != nil || c == nil {
				return c, err
			}
			c = c.Clone()
			c.DynamicRecordSizingDisabled = true
			return c, nil
		}
	}
	return cfg
}
