package rpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto/cryptotest"
)

func TestIdleFloodFromOneAddressLeavesRoomForPeers(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	scfg := DefaultServerConfig()
	scfg.MaxConns = 64
	scfg.MaxConnsPerAddress = 8
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, scfg)
	cli := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	const flood = 100
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 66)}}
	for range flood {
		c, err := d.Dial("tcp", srv.info.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	waitFor(t, "the flood admitted", func() bool {
		return sample(t, srv.reg, "durachord_rpc_connections_evicted_total", "reason", "max_conns_per_address") == flood-8
	})
	var got string
	if err := cli.client.Call(ctxT(t), srv.info, "echo", "hi", &got); err != nil || got != "hi" {
		t.Fatalf("Call(echo) from another address during the flood = %q, %v; want \"hi\"", got, err)
	}
	if n := srv.server.limiter.Open(); n != 9 {
		t.Errorf("open connections %d; want 9 (8 of the flood, 1 peer)", n)
	}
}

func TestFirstByteTimeoutClosesSilentConnection(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	scfg := DefaultServerConfig()
	scfg.FirstByteTimeout = 50 * time.Millisecond
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, scfg)
	c, err := net.Dial("tcp", srv.info.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectClosed(t, c)
	if got := sample(t, srv.reg, "durachord_rpc_first_byte_timeouts_total"); got != 1 {
		t.Errorf("first_byte_timeouts_total = %v; want 1", got)
	}
	if got := rejected(t, srv.reg, ReasonTLS); got != 0 {
		t.Errorf("rejected{tls} = %v; want 0 (silence is not a refused handshake)", got)
	}
}

// holdingHandler records the bytes of params inside handlers at once.
type holdingHandler struct {
	mu     sync.Mutex // guards inside, peak
	inside int
	peak   int
}

func (h *holdingHandler) ServeRPC(_ context.Context, _ chord.ID, _ string, params json.RawMessage) (any, error) {
	h.mu.Lock()
	h.inside += len(params)
	h.peak = max(h.peak, h.inside)
	h.mu.Unlock()
	time.Sleep(2 * time.Millisecond) // the work of a handler: lets calls pile up
	h.mu.Lock()
	h.inside -= len(params)
	h.mu.Unlock()
	return len(params), nil
}

func TestRequestByteBudgetBackPressureWithoutLoss(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	scfg := DefaultServerConfig()
	scfg.MaxFrameSize = 128 << 10
	scfg.MaxRequestBytes = 256 << 10
	h := &holdingHandler{}
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, h, scfg)
	cli := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	const calls = 60
	arg := strings.Repeat("x", 100<<10)
	var wg sync.WaitGroup
	for i := range calls {
		wg.Go(func() {
			var n int
			if err := cli.client.Call(ctxT(t), srv.info, "store", arg, &n); err != nil || n != len(arg)+2 {
				t.Errorf("call %d = %d, %v; want %d, nil", i, n, err, len(arg)+2)
			}
		})
	}
	wg.Wait()
	h.mu.Lock()
	peak := h.peak
	h.mu.Unlock()
	if peak > int(scfg.MaxRequestBytes) {
		t.Errorf("handlers held %d bytes of params at once; want at most the budget %d", peak, scfg.MaxRequestBytes)
	}
	if got := sample(t, srv.reg, "durachord_rpc_request_bytes_waits_total", "class", "records"); got == 0 {
		t.Error("request_bytes_waits_total{records} = 0; want reading to have waited for the budget")
	}
	if got := sample(t, srv.reg, "durachord_rpc_overloaded_total"); got != 0 {
		t.Errorf("overloaded_total = %v; want 0 (back-pressure, not refusals)", got)
	}
}

// TestCallingMethodsCannotDeadlockTheBudget: on two nodes whose budgets
// hold one frame each, handlers of a calling method that hold their frame
// while they call the other node do not stop that node from reading the
// calls they wait for.
func TestCallingMethodsCannotDeadlockTheBudget(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	scfg := DefaultServerConfig()
	scfg.MaxFrameSize = 128 << 10
	scfg.MaxRequestBytes = 128 << 10
	scfg.CallingMethods = []string{"relay"}
	arg := strings.Repeat("y", 100<<10)
	var nodes [2]*testNode
	handler := func(self int) chord.Handler {
		return chord.HandlerFunc(func(ctx context.Context, _ chord.ID, method string, params json.RawMessage) (any, error) {
			switch method {
			case "relay":
				other := nodes[1-self]
				var n int
				if err := other.client.Call(ctx, other.info, "store", arg, &n); err != nil {
					return nil, err
				}
				return n, nil
			case "store":
				return len(params), nil
			}
			return nil, fmt.Errorf("%w: %s", chord.ErrUnknownMethod, method)
		})
	}
	for i := range nodes {
		nodes[i] = startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, handler(i), scfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 16 {
		from, to := nodes[i%2], nodes[1-i%2]
		wg.Go(func() {
			var n int
			err := from.client.Call(ctx, to.info, "relay", arg, &n)
			if err != nil || n != len(arg)+2 {
				t.Errorf("relay %d = %d, %v; want %d, nil", i, n, err, len(arg)+2)
			}
		})
	}
	wg.Wait()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Error("the relays ran out of time: the budgets deadlocked")
	}
}

func TestPeekMethod(t *testing.T) {
	for _, tc := range []struct {
		head string
		want string
		ok   bool
	}{
		{`{"jsonrpc":"2.0","id":7,"method":"dht.put","params":{}}`, "dht.put", true},
		{`{"jsonrpc":"2.0","id":7,"method":"dht.p`, "", false},
		{`{"jsonrpc":"2.0","id":7,"result":1}`, "", false},
		{``, "", false},
	} {
		got, ok := peekMethod([]byte(tc.head))
		if got != tc.want || ok != tc.ok {
			t.Errorf("peekMethod(%q) = %q, %v; want %q, %v", tc.head, got, ok, tc.want, tc.ok)
		}
	}
}

// sample returns the value of the counter or gauge name whose labels include
// the pairs given ("k", "v", ...); 0 if none.
func sample(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
				}
				if !found {
					continue next
				}
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
