package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/api/apitest"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func key(s string) [api.KeySize]byte {
	var k [api.KeySize]byte
	copy(k[:], s)
	return k
}

// testConfig is DefaultConfig with a fresh registry.
func testConfig(t *testing.T) (api.Config, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := api.DefaultConfig()
	cfg.Metrics = reg
	return cfg, reg
}

// metric returns the value of the counter or gauge name with the labels
// (name=value pairs), 0 if absent.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				if !hasLabel(m, labels[i], labels[i+1]) {
					continue next
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling interval, not a wait for the condition
	}
}

// rawConn is a test client that speaks bytes.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	// A safety net so that a broken server fails the test instead of
	// hanging it.
	if err := nc.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(ms ...api.Message) {
	c.t.Helper()
	var b []byte
	for _, m := range ms {
		b = m.AppendTo(b)
	}
	c.write(b)
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *rawConn) read() api.Message {
	c.t.Helper()
	m, err := api.ReadMessage(c.br)
	if err != nil {
		c.t.Fatalf("ReadMessage: %v", err)
	}
	return m
}

// expectClosed checks that the server closes the connection without sending
// anything.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	b, err := io.ReadAll(c.br)
	if len(b) != 0 {
		c.t.Fatalf("read %x before close; want nothing", b)
	}
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf("read error %v; want end of stream", err)
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}

// A client speaking the course protocol gets its PUT, GETs and a FAILURE
// for an absent key on one connection, and each request is counted, by
// type and outcome and in Requests.
func TestCourseClient(t *testing.T) {
	cfg, reg := testConfig(t)
	srv, addr := apitest.Serve(t, cfg, apitest.NewMemService())
	c := dialRaw(t, addr)

	k := key("course")
	c.send(api.Put{TTL: 1, Replication: 1, Key: k, Value: []byte("hello")}, api.Get{Key: k})
	if m, want := c.read(), (api.Success{Key: k, Value: []byte("hello")}); !equalMsg(m, want) {
		t.Fatalf("GET after PUT = %v; want %v", m, want)
	}

	absent := key("absent")
	c.send(api.Get{Key: absent})
	hdr, err := c.br.Peek(4)
	if err != nil {
		t.Fatal(err)
	}
	if size := binary.BigEndian.Uint16(hdr); size != 36 {
		t.Fatalf("FAILURE size = %d; want 36", size)
	}
	if m, want := c.read(), (api.Failure{Key: absent}); !equalMsg(m, want) {
		t.Fatalf("GET of absent key = %v; want %v", m, want)
	}
	// The connection stays usable.
	c.send(api.Get{Key: k})
	if m, want := c.read(), (api.Success{Key: k, Value: []byte("hello")}); !equalMsg(m, want) {
		t.Fatalf("second GET = %v; want %v", m, want)
	}
	for _, tc := range []struct {
		typ, outcome string
		want         float64
	}{{"put", "success", 1}, {"get", "success", 2}, {"get", "not_found", 1}} {
		if got := metric(t, reg, "durachord_api_requests_total", "type", tc.typ, "outcome", tc.outcome); got != tc.want {
			t.Errorf("requests_total{%s,%s} = %v; want %v", tc.typ, tc.outcome, got, tc.want)
		}
	}
	if got := srv.Requests(); got != 4 {
		t.Errorf("Requests() = %d; want 4 (1 PUT, 3 GETs)", got)
	}
}

func equalMsg(a, b api.Message) bool {
	return bytes.Equal(a.AppendTo(nil), b.AppendTo(nil))
}

func TestPipelinedGets(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.MaxInFlight = 8 // fewer than the requests: back-pressure on the way
	svc := apitest.NewMemService()
	const n = 500
	for i := range n {
		if i%3 == 0 {
			continue // absent
		}
		if err := svc.Put(context.Background(), api.Put{Key: key(fmt.Sprint(i)), Value: []byte(fmt.Sprint("v", i))}); err != nil {
			t.Fatal(err)
		}
	}
	_, addr := apitest.Serve(t, cfg, svc)
	c := dialRaw(t, addr)
	var reqs []api.Message
	for i := range n {
		reqs = append(reqs, api.Get{Key: key(fmt.Sprint(i))})
	}
	go c.send(reqs...) // the server may stop reading until we read replies
	seen := make(map[[api.KeySize]byte]bool)
	for range n {
		m := c.read()
		k := m.MessageKey()
		if seen[k] {
			t.Fatalf("second reply for key %q", k)
		}
		seen[k] = true
		var i int
		fmt.Sscan(string(bytes.TrimRight(k[:], "\x00")), &i)
		var want api.Message = api.Success{Key: k, Value: []byte(fmt.Sprint("v", i))}
		if i%3 == 0 {
			want = api.Failure{Key: k}
		}
		if !equalMsg(m, want) {
			t.Fatalf("reply = %v; want %v", m, want)
		}
	}
}

func TestViolations(t *testing.T) {
	k := key("k")
	hdr := func(size int, typ api.Type) []byte {
		return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, uint16(size)), uint16(typ))
	}
	tests := []struct {
		name   string
		wire   []byte
		reason string
	}{
		{"size under 4", hdr(3, api.TypeGet), "short_size"},
		{"get not 36", append(hdr(37, api.TypeGet), make([]byte, 33)...), "size_mismatch"},
		{"put under 41", append(hdr(40, api.TypePut), make([]byte, 36)...), "size_mismatch"},
		{"unknown type", append(hdr(36, 700), make([]byte, 32)...), "unknown_type"},
		{"success from client", api.Success{Key: k, Value: []byte("v")}.AppendTo(nil), "unexpected_type"},
		{"failure from client", api.Failure{Key: k}.AppendTo(nil), "unexpected_type"},
		{"truncated", api.Get{Key: k}.AppendTo(nil)[:20], "truncated"},
	}
	reasons := []string{"short_size", "size_mismatch", "unknown_type", "unexpected_type", "read_timeout", "truncated"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, reg := testConfig(t)
			svc := newBlockingService()
			_, addr := apitest.Serve(t, cfg, svc)
			c := dialRaw(t, addr)
			// A PUT before the violation is not lost.
			pk := key("before")
			c.send(api.Put{Key: pk, Value: []byte("kept")})
			// A GET in progress when the violation arrives gets no reply.
			// The service holds it until the client has seen the close;
			// a connection left open would answer it FAILURE at the
			// request timeout.
			c.send(api.Get{Key: key("pending")})
			waitFor(t, "GET in the service", func() bool { e, _ := svc.counts(); return e == 1 })
			c.write(tt.wire)
			if tt.reason == "truncated" {
				if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			c.expectClosed()
			close(svc.release)
			waitFor(t, "violation counted", func() bool {
				return metric(t, reg, "durachord_api_violations_total", "reason", tt.reason) > 0
			})
			for _, r := range reasons {
				want := 0.0
				if r == tt.reason {
					want = 1
				}
				if got := metric(t, reg, "durachord_api_violations_total", "reason", r); got != want {
					t.Errorf("violations_total{reason=%s} = %v; want %v", r, got, want)
				}
			}
			waitFor(t, "PUT before the violation stored", func() bool { return svc.Puts() == 1 })
			// The server still serves others.
			c2 := dialRaw(t, addr)
			c2.send(api.Get{Key: pk})
			if m, want := c2.read(), (api.Success{Key: pk, Value: []byte("kept")}); !equalMsg(m, want) {
				t.Fatalf("GET on a new connection = %v; want %v", m, want)
			}
		})
	}
}

func TestSlowSender(t *testing.T) {
	cfg, reg := testConfig(t)
	cfg.ReadTimeout = 50 * time.Millisecond
	_, addr := apitest.Serve(t, cfg, apitest.NewMemService())
	c := dialRaw(t, addr)
	c.write(api.Get{Key: key("k")}.AppendTo(nil)[:10])
	c.expectClosed()
	waitFor(t, "read_timeout counted", func() bool {
		return metric(t, reg, "durachord_api_violations_total", "reason", "read_timeout") == 1
	})
}

func TestIdleTimeout(t *testing.T) {
	cfg, reg := testConfig(t)
	cfg.IdleTimeout = 50 * time.Millisecond
	_, addr := apitest.Serve(t, cfg, apitest.NewMemService())
	c := dialRaw(t, addr)
	c.send(api.Get{Key: key("k")})
	if m := c.read(); m.Type() != api.TypeFailure {
		t.Fatalf("GET = %v; want FAILURE", m)
	}
	c.expectClosed()
	waitFor(t, "idle close counted", func() bool { return metric(t, reg, "durachord_api_idle_closed_total") == 1 })
	if got := metric(t, reg, "durachord_api_violations_total", "reason", "read_timeout"); got != 0 {
		t.Errorf("read_timeout violations = %v; want 0 (idle is not a violation)", got)
	}
}

// blockingService blocks every Get until release is closed.
type blockingService struct {
	*apitest.MemService
	release chan struct{}

	mu      sync.Mutex // guards entered, running, peak
	entered int
	running int
	peak    int
}

func newBlockingService() *blockingService {
	return &blockingService{MemService: apitest.NewMemService(), release: make(chan struct{})}
}

func (s *blockingService) Get(ctx context.Context, k [api.KeySize]byte) ([]byte, error) {
	s.mu.Lock()
	s.entered++
	s.running++
	s.peak = max(s.peak, s.running)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running--
		s.mu.Unlock()
	}()
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.MemService.Get(ctx, k)
}

func (s *blockingService) counts() (entered, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.entered, s.peak
}

func TestBackPressure(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.MaxInFlight = 4
	svc := newBlockingService()
	_, addr := apitest.Serve(t, cfg, svc)
	c := dialRaw(t, addr)
	const n = 20
	var reqs []api.Message
	for i := range n {
		reqs = append(reqs, api.Get{Key: key(fmt.Sprint(i))})
	}
	c.send(reqs...)
	waitFor(t, "4 GETs in the service", func() bool { e, _ := svc.counts(); return e == 4 })
	close(svc.release)
	seen := make(map[[api.KeySize]byte]bool)
	for range n {
		m := c.read()
		if m.Type() != api.TypeFailure || seen[m.MessageKey()] {
			t.Fatalf("reply %v: want one FAILURE per key", m)
		}
		seen[m.MessageKey()] = true
	}
	if entered, peak := svc.counts(); entered != n || peak > 4 {
		t.Fatalf("service saw %d GETs, %d at once; want %d, at most 4", entered, peak, n)
	}
}

// gatedService blocks every Put until gate is closed.
type gatedService struct {
	*apitest.MemService
	gate chan struct{}
}

func (s *gatedService) Put(ctx context.Context, p api.Put) error {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return s.MemService.Put(ctx, p)
}

func TestReadYourWrites(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.MaxInFlight = 1000
	svc := &gatedService{MemService: apitest.NewMemService(), gate: make(chan struct{})}
	other := key("other")
	if err := svc.MemService.Put(context.Background(), api.Put{Key: other, Value: []byte("o")}); err != nil {
		t.Fatal(err)
	}
	_, addr := apitest.Serve(t, cfg, svc)
	c := dialRaw(t, addr)
	const n = 100
	var reqs []api.Message
	for i := range n {
		k := key(fmt.Sprint(i))
		reqs = append(reqs,
			api.Put{Key: k, Value: []byte("old")},
			api.Put{Key: k, Value: []byte(fmt.Sprint("new", i))},
			api.Get{Key: k})
	}
	c.send(reqs...)
	// PUTs are stalled; a GET of another key is not.
	c.send(api.Get{Key: other})
	if m, want := c.read(), (api.Success{Key: other, Value: []byte("o")}); !equalMsg(m, want) {
		t.Fatalf("GET of another key during stalled PUTs = %v; want %v", m, want)
	}
	close(svc.gate)
	for range n {
		m := c.read()
		k := m.MessageKey()
		var i int
		fmt.Sscan(string(bytes.TrimRight(k[:], "\x00")), &i)
		if want := (api.Success{Key: k, Value: []byte(fmt.Sprint("new", i))}); !equalMsg(m, want) {
			t.Fatalf("GET after two PUTs = %v; want %v", m, want)
		}
	}
}

func TestServiceError(t *testing.T) {
	cfg, reg := testConfig(t)
	_, addr := apitest.Serve(t, cfg, errService{})
	c := dialRaw(t, addr)
	k := key("k")
	c.send(api.Get{Key: k})
	if m, want := c.read(), (api.Failure{Key: k}); !equalMsg(m, want) {
		t.Fatalf("GET with failing service = %v; want %v", m, want)
	}
	if got := metric(t, reg, "durachord_api_requests_total", "type", "get", "outcome", "error"); got != 1 {
		t.Fatalf("requests_total{get,error} = %v; want 1", got)
	}
}

type errService struct{}

func (errService) Put(context.Context, api.Put) error { return errors.New("disk on fire") }
func (errService) Get(context.Context, [api.KeySize]byte) ([]byte, error) {
	return nil, errors.New("disk on fire")
}

func TestConnectionLimit(t *testing.T) {
	cfg, reg := testConfig(t)
	cfg.MaxConns = 1
	svc := &gatedService{MemService: apitest.NewMemService(), gate: make(chan struct{})}
	_, addr := apitest.Serve(t, cfg, svc)
	c1 := dialRaw(t, addr)
	c1.send(api.Put{Key: key("a"), Value: []byte("v")}) // busy until the gate opens
	waitFor(t, "c1's PUT in progress", func() bool { return metric(t, reg, "durachord_api_request_bytes") > 0 })
	c2 := dialRaw(t, addr)
	c2.expectClosed()
	if got := metric(t, reg, "durachord_api_connections_rejected_total", "reason", "max_conns"); got != 1 {
		t.Fatalf("connections_rejected_total{max_conns} = %v; want 1 (c1 is busy: nothing to make room with)", got)
	}
	if got := metric(t, reg, "durachord_api_open_connections"); got != 1 {
		t.Fatalf("open_connections = %v; want 1", got)
	}
	close(svc.gate)
	c1.send(api.Get{Key: key("a")})
	if m, want := c1.read(), (api.Success{Key: key("a"), Value: []byte("v")}); !equalMsg(m, want) {
		t.Fatalf("GET = %v; want %v", m, want)
	}
}

func TestSetLimits(t *testing.T) {
	cfg, reg := testConfig(t)
	cfg.MaxConns = 1
	srv, addr := apitest.Serve(t, cfg, apitest.NewMemService())
	c1 := dialRaw(t, addr)
	c1.send(api.Get{Key: key("a")})
	c1.read()
	// Raise the limit while the server runs: a second connection is served
	// and the first stays.
	next := cfg
	next.MaxConns = 2
	if err := srv.SetLimits(next); err != nil {
		t.Fatalf("SetLimits(MaxConns 2) = %v", err)
	}
	c2 := dialRaw(t, addr)
	c2.send(api.Get{Key: key("b")})
	c2.read()
	// A connection is idle once its reply is written, which may be after
	// the client has read it.
	bothIdle := func() bool { return srv.IdleConns() == 2 }
	waitFor(t, "c1 and c2 idle", bothIdle)
	c1.send(api.Get{Key: key("a")})
	c1.read()
	waitFor(t, "c1 idle again, after c2", bothIdle)
	// Lower it again: a third takes the place of the longest idle (c2), the
	// other stays.
	next.MaxConns = 1
	if err := srv.SetLimits(next); err != nil {
		t.Fatalf("SetLimits(MaxConns 1) = %v", err)
	}
	c3 := dialRaw(t, addr)
	c3.send(api.Get{Key: key("c")})
	c3.read()
	c2.expectClosed()
	if got := metric(t, reg, "durachord_api_connections_evicted_total", "reason", "max_conns"); got != 1 {
		t.Fatalf("connections_evicted_total{max_conns} = %v; want 1", got)
	}
	c1.send(api.Get{Key: key("c")})
	c1.read()
	// Invalid limits are refused and change nothing.
	bad := cfg
	bad.MaxInFlight = 0
	if err := srv.SetLimits(bad); err == nil {
		t.Fatal("SetLimits(MaxInFlight 0) = nil; want an error")
	}
	if got := srv.Limits(); got.MaxConns != 1 || got.MaxInFlight != cfg.MaxInFlight {
		t.Errorf("Limits() = MaxConns %d, MaxInFlight %d; want the last accepted 1, %d", got.MaxConns, got.MaxInFlight, cfg.MaxInFlight)
	}
	c3.send(api.Get{Key: key("d")})
	c3.read()
}

func TestShutdown(t *testing.T) {
	cfg, _ := testConfig(t)
	svc := newBlockingService()
	srv, addr := apitest.Serve(t, cfg, svc)
	c := dialRaw(t, addr)
	k := key("k")
	c.send(api.Get{Key: k})
	waitFor(t, "GET in the service", func() bool { e, _ := svc.counts(); return e == 1 })

	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	waitFor(t, "listener closed", func() bool {
		nc, err := net.Dial("tcp", addr)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned %v with a GET in progress", err)
	default:
	}
	close(svc.release)
	if m, want := c.read(), (api.Failure{Key: k}); !equalMsg(m, want) {
		t.Fatalf("reply of the in-flight GET = %v; want %v", m, want)
	}
	c.expectClosed()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v; want nil", err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	cfg, _ := testConfig(t)
	svc := newBlockingService()
	srv, addr := apitest.Serve(t, cfg, svc)
	c := dialRaw(t, addr)
	c.send(api.Get{Key: key("k")})
	waitFor(t, "GET in the service", func() bool { e, _ := svc.counts(); return e == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown(cancelled ctx) = %v; want %v", err, context.Canceled)
	}
	c.expectClosed()
}

func TestConfigValidate(t *testing.T) {
	if err := api.DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig().Validate() = %v; want nil", err)
	}
	for _, mut := range []func(*api.Config){
		func(c *api.Config) { c.MaxConns = 0 },
		func(c *api.Config) { c.MaxInFlight = -1 },
		func(c *api.Config) { c.ReadTimeout = 0 },
		func(c *api.Config) { c.IdleTimeout = 0 },
		func(c *api.Config) { c.RequestTimeout = 0 },
		func(c *api.Config) { c.WriteTimeout = 0 },
	} {
		cfg := api.DefaultConfig()
		mut(&cfg)
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil; want an error", cfg)
		}
		if _, err := api.NewServer(cfg, apitest.NewMemService()); err == nil {
			t.Errorf("NewServer(%+v) = nil error; want one", cfg)
		}
	}
}

func TestShutdownServesRequestsAlreadyRead(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.MaxInFlight = 1
	svc := newBlockingService()
	srv, addr := apitest.Serve(t, cfg, svc)
	c := dialRaw(t, addr)
	// The second GET waits for a slot (back-pressure) when Shutdown begins.
	c.send(api.Get{Key: key("a")}, api.Get{Key: key("b")})
	waitFor(t, "first GET in the service", func() bool { e, _ := svc.counts(); return e == 1 })
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	close(svc.release)
	got := map[api.Type]int{}
	for range 2 {
		got[c.read().Type()]++
	}
	if got[api.TypeFailure] != 2 {
		t.Fatalf("replies %v; want 2 FAILUREs", got)
	}
	c.expectClosed()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown = %v; want nil", err)
	}
}
