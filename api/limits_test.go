package api_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/api/apitest"
)

// dialFrom opens a TCP connection to addr from the local IP from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

func TestIdleFloodFromOneAddressLeavesRoomForOthers(t *testing.T) {
	cfg, reg := testConfig(t)
	cfg.MaxConns = 64
	cfg.MaxConnsPerAddress = 8
	_, addr := apitest.Serve(t, cfg, apitest.NewMemService())
	const flood = 100
	for range flood {
		dialFrom(t, "127.0.0.66", addr)
	}
	// Every flood connection beyond 8 took the place of an older one.
	waitFor(t, "flood admitted", func() bool {
		return metric(t, reg, "durachord_api_connections_evicted_total", "reason", "max_conns_per_address") == flood-8
	})
	c := dialRaw(t, addr) // from 127.0.0.1
	c.send(api.Get{Key: key("k")})
	if m := c.read(); m.Type() != api.TypeFailure {
		t.Fatalf("GET from another address during the flood = %v; want FAILURE (not found)", m)
	}
	// The connections closed to make room end their goroutines shortly.
	waitFor(t, "9 connections open (8 of the flood, 1 client)", func() bool {
		return metric(t, reg, "durachord_api_open_connections") == 9
	})
	if got := metric(t, reg, "durachord_api_connections_rejected_total"); got != 0 {
		t.Errorf("connections_rejected_total = %v; want 0 (idle connections make room)", got)
	}
}

func TestFirstByteTimeout(t *testing.T) {
	cfg, reg := testConfig(t)
	cfg.FirstByteTimeout = 50 * time.Millisecond
	_, addr := apitest.Serve(t, cfg, apitest.NewMemService())
	silent := dialRaw(t, addr)
	silent.expectClosed()
	if got := metric(t, reg, "durachord_api_first_byte_timeouts_total"); got != 1 {
		t.Errorf("first_byte_timeouts_total = %v; want 1", got)
	}
	// A connection that spoke stays open past FirstByteTimeout: between
	// messages IdleTimeout applies.
	c := dialRaw(t, addr)
	c.send(api.Get{Key: key("k")})
	c.read()
	time.Sleep(3 * cfg.FirstByteTimeout) // the span the connection must survive
	c.send(api.Get{Key: key("k")})
	c.read()
}

// budgetService records the bytes of values inside Put at once.
type budgetService struct {
	*apitest.MemService
	mu         sync.Mutex // guards inside, peak
	inside     int
	peak       int
	insideWork time.Duration
}

func (s *budgetService) Put(ctx context.Context, p api.Put) error {
	s.mu.Lock()
	s.inside += len(p.Value)
	s.peak = max(s.peak, s.inside)
	s.mu.Unlock()
	time.Sleep(s.insideWork) // the time a store takes: lets PUTs pile up
	s.mu.Lock()
	s.inside -= len(p.Value)
	s.mu.Unlock()
	return s.MemService.Put(ctx, p)
}

func TestByteBudgetBackPressureWithoutLoss(t *testing.T) {
	cfg, reg := testConfig(t)
	cfg.MaxRequestBytes = 3 * api.MaxMessageSize
	cfg.MaxInFlight = 16
	svc := &budgetService{MemService: apitest.NewMemService(), insideWork: 2 * time.Millisecond}
	_, addr := apitest.Serve(t, cfg, svc)
	const conns, perConn = 8, 12
	value := func(c, i int) []byte {
		v := make([]byte, api.MaxValueSize)
		copy(v, fmt.Sprintf("value %d/%d", c, i))
		return v
	}
	var wg sync.WaitGroup
	for c := range conns {
		rc := dialRaw(t, addr)
		var b []byte
		for i := range perConn {
			b = api.Put{Key: key(fmt.Sprint(c, "/", i)), Value: value(c, i)}.AppendTo(b)
		}
		wg.Go(func() {
			// All at once: the server reads them as the budget allows.
			if _, err := rc.nc.Write(b); err != nil {
				t.Errorf("write PUTs of connection %d: %v", c, err)
			}
		})
	}
	wg.Wait()
	c := dialRaw(t, addr)
	for cn := range conns {
		for i := range perConn {
			k := key(fmt.Sprint(cn, "/", i))
			var m api.Message
			// PUTs of another connection may still be in progress: poll.
			waitFor(t, fmt.Sprintf("PUT %d/%d readable", cn, i), func() bool {
				c.send(api.Get{Key: k})
				m = c.read()
				return m.Type() == api.TypeSuccess
			})
			if want := (api.Success{Key: k, Value: value(cn, i)}); !equalMsg(m, want) {
				t.Fatalf("GET %d/%d = %d bytes; want the value PUT", cn, i, len(m.(api.Success).Value))
			}
		}
	}
	svc.mu.Lock()
	peak := svc.peak
	svc.mu.Unlock()
	if peak > int(cfg.MaxRequestBytes) {
		t.Errorf("service held %d bytes of values at once; want at most the budget %d", peak, cfg.MaxRequestBytes)
	}
	if got := metric(t, reg, "durachord_api_request_bytes_waits_total"); got == 0 {
		t.Errorf("request_bytes_waits_total = 0; want reading to have waited for the budget")
	}
	if got := metric(t, reg, "durachord_api_requests_total", "type", "put", "outcome", "success"); got != conns*perConn {
		t.Errorf("requests_total{put,success} = %v; want %d", got, conns*perConn)
	}
}

// hogService holds the PUTs of keys that start with "hog" until release is
// closed, and counts how many it holds at once.
type hogService struct {
	*apitest.MemService
	release chan struct{}
	mu      sync.Mutex // guards inside, peak
	inside  int
	peak    int
}

func (s *hogService) Put(ctx context.Context, p api.Put) error {
	if string(p.Key[:3]) == "hog" {
		s.mu.Lock()
		s.inside++
		s.peak = max(s.peak, s.inside)
		s.mu.Unlock()
		select {
		case <-s.release:
		case <-ctx.Done():
		}
		s.mu.Lock()
		s.inside--
		s.mu.Unlock()
	}
	return s.MemService.Put(ctx, p)
}

func (s *hogService) held() (inside, peak int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inside, s.peak
}

func TestByteBudgetPerAddress(t *testing.T) {
	cfg, reg := testConfig(t)
	cfg.MaxRequestBytesPerAddress = 2 * api.MaxMessageSize
	cfg.RequestTimeout = time.Minute // the hog's PUTs wait for the test, not the clock
	svc := &hogService{MemService: apitest.NewMemService(), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(svc.release) }) }
	_, addr := apitest.Serve(t, cfg, svc)
	t.Cleanup(release) // registered after Serve's: runs before the server closes
	const hogConns, perConn = 5, 2
	value := make([]byte, api.MaxValueSize)
	for c := range hogConns {
		nc := dialFrom(t, "127.0.0.66", addr)
		var b []byte
		for i := range perConn {
			b = api.Put{Key: key(fmt.Sprint("hog", c, "/", i)), Value: value}.AppendTo(b)
		}
		if _, err := nc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "two of the hog's PUTs in the service and the rest waiting", func() bool {
		inside, _ := svc.held()
		return inside == 2 && metric(t, reg, "durachord_api_request_bytes_waits_total") > 0
	})
	// Another address is not held up by the hog's spent budget.
	c := dialRaw(t, addr)
	c.send(api.Put{Key: key("mine"), Value: []byte("v")}, api.Get{Key: key("mine")})
	if m, want := c.read(), (api.Success{Key: key("mine"), Value: []byte("v")}); !equalMsg(m, want) {
		t.Fatalf("GET from 127.0.0.1 while 127.0.0.66 holds its budget = %v; want %v", m, want)
	}
	if _, peak := svc.held(); peak > 2 {
		t.Errorf("the service held %d of one address's PUTs at once; want at most 2 (its budget)", peak)
	}
	release()
	for cn := range hogConns {
		for i := range perConn {
			k := key(fmt.Sprint("hog", cn, "/", i))
			waitFor(t, fmt.Sprintf("hog PUT %d/%d readable", cn, i), func() bool {
				c.send(api.Get{Key: k})
				return c.read().Type() == api.TypeSuccess
			})
		}
	}
}
