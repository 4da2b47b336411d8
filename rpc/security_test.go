package rpc

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/crypto/cryptotest"
)

// dialRaw opens a TLS connection to addr as id, bypassing the Client.
func dialRaw(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctxT(t), "tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*tls.Conn)
}

func writeJSONFrame(t *testing.T, w io.Writer, keys *crypto.Keyring, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(appendFrame(nil, keys, b)); err != nil {
		t.Fatalf("write frame: %v", err)
	}
}

// expectClosed reads from c until the peer closes it.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read until close: %v", err)
	}
}

func TestIdentityMismatchCounted(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	a := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	b := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	impostor := chord.NodeInfo{ID: a.info.ID, Addr: b.info.Addr}
	if err := a.client.Call(ctxT(t), impostor, "echo", 1, nil); !errors.Is(err, chord.ErrIdentityMismatch) {
		t.Fatalf("Call(%v) = %v; want %v", impostor, err, chord.ErrIdentityMismatch)
	}
	if got := rejected(t, a.reg, ReasonIdentity); got != 1 {
		t.Errorf("rejected{identity} = %v; want 1", got)
	}
}

func TestProtocolMismatchServer(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	me := cryptotest.NewIdentity(t, ca, "127.0.0.1:0")
	c := dialRaw(t, srv.info.Addr, me.ClientConfig("127.0.0.1", srv.info.ID))
	writeJSONFrame(t, c, keys, hello{Protocol: protocolName, Version: ProtocolVersion + 1})
	body, err := readFrame(bufio.NewReader(c), DefaultMaxFrameSize, keys)
	if err != nil {
		t.Fatalf("read hello reply: %v", err)
	}
	var h hello
	if err := json.Unmarshal(body, &h); err != nil || h.Error == nil || h.Error.Code != chord.CodeProtocol {
		t.Fatalf("hello reply = %s (%v); want an error with code %d", body, err, chord.CodeProtocol)
	}
	expectClosed(t, c)
	if got := rejected(t, srv.reg, ReasonProtocol); got != 1 {
		t.Errorf("rejected{protocol} = %v; want 1", got)
	}
}

// fakeServer accepts one TLS connection on 127.0.0.1:0 and runs serve on it.
func fakeServer(t *testing.T, id *crypto.Identity, serve func(c *tls.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		raw, err := l.Accept()
		if err != nil {
			return
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
		c := tls.Server(raw, id.ServerConfig())
		if c.Handshake() != nil {
			return
		}
		serve(c)
	}()
	t.Cleanup(func() { _ = l.Close(); <-done })
	return l.Addr().String()
}

func TestProtocolMismatchClient(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	srvID := cryptotest.NewIdentity(t, ca, "127.0.0.1:0")
	addr := fakeServer(t, srvID, func(c *tls.Conn) {
		if _, err := readFrame(c, DefaultMaxFrameSize, keys); err != nil {
			return
		}
		writeJSONFrame(t, c, keys, hello{Protocol: protocolName, Version: ProtocolVersion + 1})
		_, _ = io.Copy(io.Discard, c)
	})
	cli := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	err := cli.client.Call(ctxT(t), chord.NodeInfo{ID: srvID.ID, Addr: addr}, "echo", 1, nil)
	if !errors.Is(err, chord.ErrProtocol) {
		t.Fatalf("Call to a server of another version = %v; want %v", err, chord.ErrProtocol)
	}
	if got := rejected(t, cli.reg, ReasonProtocol); got != 1 {
		t.Errorf("rejected{protocol} = %v; want 1", got)
	}
}

func TestNoClientCertificate(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	cfg := cryptotest.NewIdentity(t, ca, "127.0.0.1:0").ClientConfig("127.0.0.1", srv.info.ID)
	cfg.Certificates = nil
	c := dialRaw(t, srv.info.Addr, cfg)
	// TLS 1.3: the refusal arrives on the first read.
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("server talked to a client without certificate")
	}
	waitFor(t, "a tls rejection", func() bool { return rejected(t, srv.reg, ReasonTLS) == 1 })
}

func TestOversizedFrameClosesConnection(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	for _, tc := range []struct {
		name  string
		hello bool
	}{{"in-hello", false}, {"after-hello", true}} {
		t.Run(tc.name, func(t *testing.T) {
			before := rejected(t, srv.reg, ReasonFrame)
			me := cryptotest.NewIdentity(t, ca, "127.0.0.1:0")
			c := dialRaw(t, srv.info.Addr, me.ClientConfig("127.0.0.1", srv.info.ID))
			br := bufio.NewReader(c)
			if tc.hello {
				writeJSONFrame(t, c, keys, hello{Protocol: protocolName, Version: ProtocolVersion})
				if _, err := readFrame(br, DefaultMaxFrameSize, keys); err != nil {
					t.Fatalf("read hello: %v", err)
				}
			}
			// Announce 4 GiB - 1 and send nothing more.
			if _, err := c.Write([]byte{0xff, 0xff, 0xff, 0xff}); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
			if got := rejected(t, srv.reg, ReasonFrame); got != before+1 {
				t.Errorf("rejected{frame} = %v; want %v", got, before+1)
			}
		})
	}
}

// countingReader counts the bytes read from it and never ends.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	r.n += len(p)
	return len(p), nil
}

func TestReadFrameLimitBeforeAllocating(t *testing.T) {
	keys := cryptotest.NewKeyring(t)
	const maxFrame = 1 << 20
	for _, tc := range []struct {
		name   string
		length uint32
		want   error
	}{
		{"just-over", maxFrame + 1, ErrFrameTooLarge},
		{"huge", 1<<32 - 1, ErrFrameTooLarge},
		{"zero", 0, ErrBadFrame},
		{"mac-only", 32, ErrBadFrame},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], tc.length)
			rest := &countingReader{}
			r := io.MultiReader(strings.NewReader(string(hdr[:])), rest)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := readFrame(r, maxFrame, keys)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, tc.want) {
				t.Fatalf("readFrame(length %d) = %v; want %v", tc.length, err, tc.want)
			}
			if rest.n != 0 {
				t.Errorf("readFrame(length %d) read %d bytes past the header; want 0", tc.length, rest.n)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 64<<10 {
				t.Errorf("readFrame(length %d) allocated %d bytes; want under 64 KiB", tc.length, got)
			}
		})
	}
}

func TestOverloaded(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := chord.HandlerFunc(func(ctx context.Context, _ chord.ID, method string, _ json.RawMessage) (any, error) {
		if method == "block" {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return "ok", nil
	})
	cfg := DefaultServerConfig()
	cfg.MaxHandlers = 1
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, h, cfg)
	cli := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	blocked := make(chan error, 1)
	go func() { blocked <- cli.client.Call(ctxT(t), srv.info, "block", nil, nil) }()
	<-started

	// Ring calls have slots of their own: they pass while records calls
	// hold every slot.
	if err := cli.client.Call(ctxT(t), srv.info, "chord.ping", nil, nil); err != nil {
		t.Fatalf("ring call while the records slot is busy = %v; want nil", err)
	}
	// Records calls beyond the slot wait for it, up to queueFactor of them.
	queued := make(chan error, queueFactor)
	for range queueFactor {
		go func() { queued <- cli.client.Call(ctxT(t), srv.info, "other", nil, nil) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.server.queued.Load() < queueFactor {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls waiting; want %d", srv.server.queued.Load(), queueFactor)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
	// The queue is full: the next call is refused at once.
	if err := cli.client.Call(ctxT(t), srv.info, "other", nil, nil); !errors.Is(err, chord.ErrOverloaded) {
		t.Errorf("Call beyond the queue = %v; want %v", err, chord.ErrOverloaded)
	}
	close(release)
	if err := <-blocked; err != nil {
		t.Fatalf("blocked Call = %v; want nil", err)
	}
	for range queueFactor {
		if err := <-queued; err != nil {
			t.Errorf("queued Call = %v; want nil once the slot freed", err)
		}
	}
}

func TestOverloadedUntilDeadline(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	// "block" holds its slot past its own deadline, until the test ends.
	h := chord.HandlerFunc(func(_ context.Context, _ chord.ID, method string, _ json.RawMessage) (any, error) {
		if method == "block" {
			started <- struct{}{}
			<-release
		}
		return "ok", nil
	})
	cfg := DefaultServerConfig()
	cfg.MaxHandlers = 1
	cfg.HandlerTimeout = 300 * time.Millisecond // bounds the wait for a slot too
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, h, cfg)
	cli := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	t.Cleanup(func() { close(release) }) // runs before the nodes close
	go func() { _ = cli.client.Call(ctxT(t), srv.info, "block", nil, nil) }()
	<-started
	// A call that cannot get a slot within its handler deadline is told so.
	if err := cli.client.Call(ctxT(t), srv.info, "other", nil, nil); !errors.Is(err, chord.ErrOverloaded) {
		t.Errorf("Call waiting past its deadline = %v; want %v", err, chord.ErrOverloaded)
	}
}

func TestShutdownWaitsForHandlers(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	h := chord.HandlerFunc(func(ctx context.Context, _ chord.ID, method string, _ json.RawMessage) (any, error) {
		if method == "block" {
			started <- struct{}{}
			<-release
		}
		return "done", nil
	})
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, h, DefaultServerConfig())
	cli := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	var reply string
	blocked := make(chan error, 1)
	go func() { blocked <- cli.client.Call(ctxT(t), srv.info, "block", nil, &reply) }()
	<-started
	shut := make(chan error, 1)
	go func() { shut <- srv.server.Shutdown(ctxT(t)) }()
	waitFor(t, "shutdown to begin", srv.server.closing)
	if err := cli.client.Call(ctxT(t), srv.info, "other", nil, nil); !errors.Is(err, chord.ErrShuttingDown) {
		t.Errorf("Call during Shutdown = %v; want %v", err, chord.ErrShuttingDown)
	}
	close(release)
	if err := <-blocked; err != nil || reply != "done" {
		t.Errorf("in-flight Call = %q, %v; want \"done\", nil", reply, err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown = %v; want nil", err)
	}
	if err := cli.client.Call(ctxT(t), srv.info, "other", nil, nil); !errors.Is(err, chord.ErrUnreachable) {
		t.Errorf("Call after Shutdown = %v; want %v", err, chord.ErrUnreachable)
	}
}

func TestIdleConnectionClosedAndRedialled(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	cfg := DefaultClientConfig()
	cfg.IdleTimeout = 20 * time.Millisecond
	id := cryptotest.NewIdentity(t, ca, "127.0.0.1:0")
	cli, err := NewClient(cfg, id, keys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	pooled := func() int {
		cli.mu.Lock()
		defer cli.mu.Unlock()
		return len(cli.conns)
	}
	for i := range 2 {
		if err := cli.Call(ctxT(t), srv.info, "echo", i, nil); err != nil {
			t.Fatalf("Call %d = %v", i, err)
		}
		waitFor(t, "the idle connection to close", func() bool { return pooled() == 0 })
	}
}

func TestClosedClient(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	cli, err := NewClient(DefaultClientConfig(), cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Call(ctxT(t), srv.info, "echo", 1, nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := cli.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
	}
	if err := cli.Call(ctxT(t), srv.info, "echo", 1, nil); !errors.Is(err, chord.ErrClosed) {
		t.Errorf("Call after Close = %v; want %v", err, chord.ErrClosed)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultClientConfig().Validate(); err != nil {
		t.Errorf("DefaultClientConfig().Validate() = %v", err)
	}
	if err := DefaultServerConfig().Validate(); err != nil {
		t.Errorf("DefaultServerConfig().Validate() = %v", err)
	}
	bad := DefaultServerConfig()
	bad.MaxHandlers = 0
	bad.MaxFrameSize = 10
	err := bad.Validate()
	if err == nil || !strings.Contains(err.Error(), "MaxHandlers") || !strings.Contains(err.Error(), "MaxFrameSize") {
		t.Errorf("Validate(bad) = %v; want errors naming MaxHandlers and MaxFrameSize", err)
	}
	badc := DefaultClientConfig()
	badc.CallTimeout = 0
	if err := badc.Validate(); err == nil || !strings.Contains(err.Error(), "CallTimeout") {
		t.Errorf("Validate(CallTimeout 0) = %v; want an error naming CallTimeout", err)
	}
}

func TestHandlerPanic(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	h := chord.HandlerFunc(func(ctx context.Context, _ chord.ID, method string, _ json.RawMessage) (any, error) {
		if method == "panic" {
			panic("boom")
		}
		return "ok", nil
	})
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, h, DefaultServerConfig())
	cli := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	if err := cli.client.Call(ctxT(t), srv.info, "panic", nil, nil); !errors.Is(err, chord.ErrInternal) {
		t.Errorf("Call(panic) = %v; want %v", err, chord.ErrInternal)
	}
	if err := cli.client.Call(ctxT(t), srv.info, "fine", nil, nil); err != nil {
		t.Errorf("Call after a panic = %v; want nil", err)
	}
}

func TestPortProbeNotCounted(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	c, err := net.Dial("tcp", srv.info.Addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	waitFor(t, "the probe's connection to end", func() bool { return srv.server.limiter.Open() == 0 })
	// A real refusal after the probe is counted once: the probe was not.
	bad, err := net.Dial("tcp", srv.info.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the garbage handshake to be counted", func() bool { return rejected(t, srv.reg, ReasonTLS) >= 1 })
	if got := rejected(t, srv.reg, ReasonTLS); got != 1 {
		t.Errorf("rejected{tls} = %v; want 1 (the probe is not a refusal)", got)
	}
}

func TestHungPeerConnectionIsReplaced(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	release := make(chan struct{})
	h := chord.HandlerFunc(func(_ context.Context, _ chord.ID, method string, _ json.RawMessage) (any, error) {
		if method == "hang" {
			<-release // answers nothing, whatever the deadline
		}
		return "ok", nil
	})
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, h, DefaultServerConfig())
	cli := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	t.Cleanup(func() { close(release) }) // runs before the nodes close
	pooled := func() *peerConn {
		cli.client.mu.Lock()
		defer cli.client.mu.Unlock()
		return cli.client.conns[poolKey{addr: srv.info.Addr}]
	}
	short := func(method string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		return cli.client.Call(ctx, srv.info, method, nil, nil)
	}
	if err := short("echo"); err != nil {
		t.Fatalf("first call = %v", err)
	}
	first := pooled()
	// A slow call among answered ones is no sign of a hung peer.
	for range hungAfter + 1 {
		if err := short("hang"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("hanging call = %v; want %v", err, context.DeadlineExceeded)
		}
		if err := short("echo"); err != nil {
			t.Fatalf("answered call = %v", err)
		}
	}
	if pooled() != first {
		t.Fatal("connection replaced although the peer kept answering")
	}
	// Calls that all time out with nothing coming back: after hungAfter of
	// them the connection goes, and the next call dials a new one.
	for i := range hungAfter {
		if pooled() != first {
			t.Fatalf("connection dropped after %d silent timeouts; want %d", i, hungAfter)
		}
		if err := short("hang"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("hanging call = %v; want %v", err, context.DeadlineExceeded)
		}
	}
	if pooled() == first {
		t.Fatalf("connection still pooled after %d silent timeouts", hungAfter)
	}
	if err := short("echo"); err != nil {
		t.Fatalf("call on a new connection = %v", err)
	}
	if p := pooled(); p == nil || p == first {
		t.Fatal("no new connection after the hung one was dropped")
	}
}

// TestServerVerifiesClientCertificate: the server itself checks a client's
// certificate against the cluster CA. The client here plays an attacker who
// holds the cluster HMAC key and accepts any server certificate, so that
// nothing on its own side ends the connection: with a certificate from
// another CA, only the server's check stands between it and the node. The
// server must answer neither its hello nor its call, close the connection
// and count a tls refusal. The same client with a certificate of the
// cluster CA gets its call answered, so the refusal is the server's doing.
func TestServerVerifiesClientCertificate(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	for _, tc := range []struct {
		name    string
		ca      *crypto.CA
		refused bool
	}{
		{"cluster-ca", ca, false},
		{"other-ca", cryptotest.NewCA(t), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := rejected(t, srv.reg, ReasonTLS)
			me := cryptotest.NewIdentity(t, tc.ca, "127.0.0.1:0")
			replies, err := callTrustingAnyServer(t, srv.info.Addr, me, keys, "who")
			if !tc.refused {
				if len(replies) != 2 {
					t.Fatalf("call from the cluster CA: %d replies (%v); want the hello and the answer", len(replies), err)
				}
				var resp struct {
					Result chord.ID `json:"result"`
				}
				if err := json.Unmarshal(replies[1], &resp); err != nil || resp.Result != me.ID {
					t.Fatalf("who = %s (%v); want %v", replies[1], err, me.ID)
				}
				return
			}
			if len(replies) > 0 {
				t.Fatalf("the server answered a client whose certificate is from another CA: %q", replies)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the server left the connection of a client from another CA open, unanswered: %v", err)
			}
			t.Logf("refused: %v", err)
			waitFor(t, "the server to count a tls refusal", func() bool { return rejected(t, srv.reg, ReasonTLS) >= before+1 })
			if got := rejected(t, srv.reg, ReasonTLS); got != before+1 {
				t.Errorf("rejected{tls} = %v; want %v", got, before+1)
			}
		})
	}
}

// callTrustingAnyServer connects to addr as id, trusting whatever
// certificate the server presents, sends the hello and a call of method
// signed with keys, and returns the frames it got back (the hello reply,
// then the answer) and the error that ended the reading, if any. A refused
// handshake returns no frames and its error.
func callTrustingAnyServer(t *testing.T, addr string, id *crypto.Identity, keys *crypto.Keyring, method string) ([][]byte, error) {
	t.Helper()
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Certificate},
		// The attacker's side: any server will do.
		InsecureSkipVerify: true,
	}
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctxT(t), "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	// TLS 1.3: the handshake may look complete to the client before the
	// server has checked its certificate; a refusal then shows on the
	// writes or the reads. Write errors are left to the read to report.
	var out []byte
	for _, v := range []any{
		hello{Protocol: protocolName, Version: ProtocolVersion},
		map[string]any{"jsonrpc": "2.0", "id": 1, "method": method},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = appendFrame(out, keys, b)
	}
	_, _ = c.Write(out)
	br := bufio.NewReader(c)
	var replies [][]byte
	for range 2 {
		body, err := readFrame(br, DefaultMaxFrameSize, keys)
		if err != nil {
			return replies, err
		}
		replies = append(replies, body)
	}
	return replies, nil
}

// TestCallingMethodsHaveSlotsOfTheirOwn: a handler of a CallingMethod that
// waits for a records call to the same node (as an owner's dht.put waits for
// a dht.store on its holders, which are owners too) gets it answered while it
// holds its slot; with one shared slot it would wait for itself.
func TestCallingMethodsHaveSlotsOfTheirOwn(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	var cli *testNode
	var srvInfo chord.NodeInfo
	ready := make(chan struct{})
	h := chord.HandlerFunc(func(ctx context.Context, _ chord.ID, method string, _ json.RawMessage) (any, error) {
		if method == "dht.put" {
			<-ready
			// The inner call runs on the node's records slots.
			return "put", cli.client.Call(ctx, srvInfo, "dht.store", nil, nil)
		}
		return "ok", nil
	})
	cfg := DefaultServerConfig()
	cfg.MaxHandlers = 1
	cfg.HandlerTimeout = 2 * time.Second
	cfg.CallingMethods = []string{"dht.put"}
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, h, cfg)
	cli = startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	srvInfo = srv.info
	close(ready)
	if err := cli.client.Call(ctxT(t), srv.info, "dht.put", nil, nil); err != nil {
		t.Fatalf("Call(dht.put) waiting on a dht.store to the same node = %v; want nil", err)
	}
}

// TestPositionsVerified: a node may be called at any position its
// certificate produces; a position it does not produce (the next candidate
// past the bound, or another node's) is refused like an impostor, logged
// and counted.
func TestPositionsVerified(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	a := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	bID := cryptotest.NewIdentity(t, ca, "127.0.0.1:0")
	mux := chord.NewMux(bID.ID)
	for _, i := range []int{1, 3, crypto.PositionCandidates - 1} {
		mux.Add(crypto.PositionID(bID.Leaf, i), echo)
	}
	b := startNode(t, bID, keys, mux, DefaultServerConfig())
	for _, i := range []int{1, 3, crypto.PositionCandidates - 1} {
		at := chord.NodeInfo{ID: crypto.PositionID(bID.Leaf, i), Addr: b.info.Addr}
		if err := a.client.Call(ctxT(t), at, "echo", 1, nil); err != nil {
			t.Errorf("Call at position %d = %v", i, err)
		}
	}
	h := sha256.New()
	h.Write(bID.Leaf.RawSubjectPublicKeyInfo)
	h.Write(binary.BigEndian.AppendUint32(nil, crypto.PositionCandidates))
	beyond := chord.ID(h.Sum(nil))
	for _, id := range []chord.ID{beyond, crypto.PositionID(a.id.Leaf, 1)} {
		at := chord.NodeInfo{ID: id, Addr: b.info.Addr}
		if err := a.client.Call(ctxT(t), at, "echo", 1, nil); !errors.Is(err, chord.ErrIdentityMismatch) {
			t.Errorf("Call(%v) = %v; want %v", at, err, chord.ErrIdentityMismatch)
		}
	}
	if got := rejected(t, a.reg, ReasonIdentity); got != 2 {
		t.Errorf("rejected{identity} = %v; want 2", got)
	}
}

// TestCallsNamePositions: a call made As another position reaches the
// handler with that position as its caller, proved by the caller's
// certificate; a call to a position goes to the handler of that position
// (chord.Mux), and one to a position the node does not stand at fails
// with chord.ErrNoPosition, as does any position but 0 at a node that
// serves one.
func TestCallsNamePositions(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	bID := cryptotest.NewIdentity(t, ca, "127.0.0.1:0")
	mux := chord.NewMux(bID.ID)
	whoAmI := func(at int) chord.Handler {
		return chord.HandlerFunc(func(_ context.Context, from chord.ID, _ string, _ json.RawMessage) (any, error) {
			return map[string]any{"at": at, "from": from}, nil
		})
	}
	mux.Add(bID.ID, whoAmI(0))
	mux.Add(crypto.PositionID(bID.Leaf, 5), whoAmI(5))
	a := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	b := startNode(t, bID, keys, mux, DefaultServerConfig())
	type answer struct {
		At   int      `json:"at"`
		From chord.ID `json:"from"`
	}
	for _, c := range []struct{ as, at int }{{0, 0}, {3, 0}, {0, 5}, {255, 5}} {
		var got answer
		to := chord.NodeInfo{ID: crypto.PositionID(bID.Leaf, c.at), Addr: b.info.Addr}
		if err := a.client.As(c.as).Call(ctxT(t), to, "who", nil, &got); err != nil {
			t.Fatalf("As(%d) call at position %d = %v", c.as, c.at, err)
		}
		if want := (answer{At: c.at, From: crypto.PositionID(a.id.Leaf, c.as)}); got != want {
			t.Errorf("As(%d) call at position %d answered %+v; want %+v", c.as, c.at, got, want)
		}
	}
	to := chord.NodeInfo{ID: crypto.PositionID(bID.Leaf, 7), Addr: b.info.Addr}
	if err := a.client.Call(ctxT(t), to, "who", nil, nil); !errors.Is(err, chord.ErrNoPosition) {
		t.Errorf("call at a position not served = %v; want %v", err, chord.ErrNoPosition)
	}
	to = chord.NodeInfo{ID: crypto.PositionID(a.id.Leaf, 2), Addr: a.info.Addr}
	if err := b.client.Call(ctxT(t), to, "echo", 1, nil); !errors.Is(err, chord.ErrNoPosition) {
		t.Errorf("call at position 2 of a node with one handler = %v; want %v", err, chord.ErrNoPosition)
	}
}

// TestPositionsShareAConnection: calls to several positions of one process
// go over one connection, each naming its position, and a position the
// certificate does not prove is refused on it without a new dial.
func TestPositionsShareAConnection(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	bID := cryptotest.NewIdentity(t, ca, "127.0.0.1:0")
	mux := chord.NewMux(bID.ID)
	whoAmI := func(at int) chord.Handler {
		return chord.HandlerFunc(func(context.Context, chord.ID, string, json.RawMessage) (any, error) {
			return at, nil
		})
	}
	mux.Add(bID.ID, whoAmI(0))
	for _, i := range []int{2, 7} {
		mux.Add(crypto.PositionID(bID.Leaf, i), whoAmI(i))
	}
	a := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	b := startNode(t, bID, keys, mux, DefaultServerConfig())
	for range 2 {
		for _, i := range []int{0, 2, 7} {
			var got int
			at := chord.NodeInfo{ID: crypto.PositionID(bID.Leaf, i), Addr: b.info.Addr}
			if err := a.client.Call(ctxT(t), at, "who", nil, &got); err != nil || got != i {
				t.Fatalf("Call at position %d = %d, %v; want it answered by position %d", i, got, err, i)
			}
		}
	}
	a.client.mu.Lock()
	conns := len(a.client.conns)
	a.client.mu.Unlock()
	if conns != 1 {
		t.Errorf("connections after calls to three positions of one node = %d; want 1", conns)
	}
	other := chord.NodeInfo{ID: crypto.PositionID(a.id.Leaf, 2), Addr: b.info.Addr}
	if err := a.client.Call(ctxT(t), other, "who", nil, nil); !errors.Is(err, chord.ErrIdentityMismatch) {
		t.Errorf("Call(%v) on the shared connection = %v; want %v", other, err, chord.ErrIdentityMismatch)
	}
	if got := rejected(t, a.reg, ReasonIdentity); got != 1 {
		t.Errorf("rejected{identity} = %v; want 1", got)
	}
}
