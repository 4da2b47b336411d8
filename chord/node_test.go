package chord_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/chord/chordtest"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*chord.Config)
		ok     bool
	}{
		{"default", func(*chord.Config) {}, true},
		{"zero successor list", func(c *chord.Config) { c.SuccessorListLen = 0 }, false},
		{"suspect after one failure", func(c *chord.Config) { c.SuspectAfter = 1 }, false},
		{"zero stabilize interval", func(c *chord.Config) { c.StabilizeInterval = 0 }, false},
		{"negative call timeout", func(c *chord.Config) { c.CallTimeout = -time.Second }, false},
		{"zero hops", func(c *chord.Config) { c.MaxHops = 0 }, false},
		{"negative cache", func(c *chord.Config) { c.CacheSize = -1 }, false},
		{"no cache", func(c *chord.Config) { c.CacheSize = 0 }, true},
		{"no confirm delay", func(c *chord.Config) { c.ConfirmDelay = 0 }, true},
		{"negative confirm delay", func(c *chord.Config) { c.ConfirmDelay = -time.Millisecond }, false},
		{"confirm delay of a whole round", func(c *chord.Config) { c.ConfirmDelay = c.RoundTimeout }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := chord.DefaultConfig()
			tc.change(&cfg)
			err := cfg.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v; want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, chord.ErrConfig) {
				t.Fatalf("Validate() = %v; want errors.Is %v", err, chord.ErrConfig)
			}
		})
	}
}

func newTestNode(t *testing.T, cfg chord.Config) (*chord.Node, *chordtest.Network) {
	t.Helper()
	net, err := chordtest.New(chordtest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	info := chord.NodeInfo{ID: testID(1), Addr: "a"}
	n, err := chord.New(cfg, info, net.Transport(info), nil)
	if err != nil {
		t.Fatal(err)
	}
	net.Listen(info, n)
	return n, net
}

func TestServeRPCValidates(t *testing.T) {
	n, net := newTestNode(t, chord.DefaultConfig())
	if err := n.Create(); err != nil {
		t.Fatal(err)
	}
	other := chord.NodeInfo{ID: testID(2), Addr: "b"}
	net.Listen(other, pinger{})
	notify := func(node chord.NodeInfo) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"node": node})
		return b
	}
	tests := []struct {
		name   string
		from   chord.ID
		method string
		params string
		want   error
	}{
		{"notify naming another node", testID(3), "chord.notify", string(notify(other)), chord.ErrBadRequest},
		{"notify without address", other.ID, "chord.notify", string(notify(chord.NodeInfo{ID: other.ID})), chord.ErrBadRequest},
		{"notify from self", n.Self().ID, "chord.notify", string(notify(n.Self())), chord.ErrBadRequest},
		{"find_successor without id", other.ID, "chord.find_successor", `{}`, chord.ErrBadRequest},
		{"find_successor bad id", other.ID, "chord.find_successor", `{"id":"zz"}`, chord.ErrBadRequest},
		{"find_successor unknown field", other.ID, "chord.find_successor", `{"id":"` + other.ID.String() + `","x":1}`, chord.ErrBadRequest},
		{"leave naming another node", testID(3), "chord.leave", `{"node":{"id":"` + other.ID.String() + `","address":"b"}}`, chord.ErrBadRequest},
		{"unknown method", other.ID, "chord.nope", `{}`, chord.ErrUnknownMethod},
		{"unknown extra method", other.ID, "dht.get", `{}`, chord.ErrUnknownMethod},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := n.ServeRPC(context.Background(), tc.from, tc.method, json.RawMessage(tc.params))
			if !errors.Is(err, tc.want) {
				t.Fatalf("ServeRPC(%s, %s) = %v; want %v", tc.method, tc.params, err, tc.want)
			}
		})
	}
	// A valid notify from the node it names is accepted.
	if _, err := n.ServeRPC(context.Background(), other.ID, "chord.notify", notify(other)); err != nil {
		t.Fatalf("ServeRPC(notify from %v) = %v; want nil", other, err)
	}
	if p, ok := n.Predecessor(); !ok || p != other {
		t.Fatalf("Predecessor() after notify = %v, %v; want %v", p, ok, other)
	}
	// Extra handlers; built-in names cannot be replaced.
	n.Handle("dht.get", func(context.Context, chord.ID, string, json.RawMessage) (any, error) { return "value", nil })
	n.Handle("chord.ping", func(context.Context, chord.ID, string, json.RawMessage) (any, error) { return nil, chord.ErrInternal })
	if res, err := n.ServeRPC(context.Background(), other.ID, "dht.get", nil); err != nil || res != "value" {
		t.Fatalf("ServeRPC(dht.get) = %v, %v; want value, nil", res, err)
	}
	if _, err := n.ServeRPC(context.Background(), other.ID, "chord.ping", nil); err != nil {
		t.Fatalf("ServeRPC(chord.ping) after Handle(chord.ping) = %v; want nil (built-in kept)", err)
	}
}

// A node's status in JSON carries the fields the SPEC names, and what its
// report says: records, requests answered and their rate, admin address.
func TestStatusJSON(t *testing.T) {
	n, _ := newTestNode(t, chord.DefaultConfig())
	if err := n.Create(); err != nil {
		t.Fatal(err)
	}
	n.SetReport(func() chord.Report {
		return chord.Report{Records: chord.RecordCounts{Primary: 1, Replica: 2}, Requests: 5, RequestRate: 0.5, Admin: "127.0.0.1:7410"}
	})
	b, err := json.Marshal(n.Status())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"id", "address", "predecessor", "successors", "records", "ready", "requests", "request_rate", "admin"} {
		if _, ok := got[key]; !ok {
			t.Errorf("Status JSON %s lacks %q", b, key)
		}
	}
	if got["predecessor"] != nil || got["id"] != n.Self().ID.String() || got["ready"] != true {
		t.Errorf("Status JSON = %s; want null predecessor, id %s, ready", b, n.Self().ID)
	}
	if rec, _ := got["records"].(map[string]any); rec["primary"] != 1.0 || rec["replica"] != 2.0 {
		t.Errorf("Status JSON records = %v; want primary 1, replica 2", got["records"])
	}
	if got["requests"] != 5.0 || got["request_rate"] != 0.5 || got["admin"] != "127.0.0.1:7410" {
		t.Errorf("Status JSON requests, request_rate, admin = %v, %v, %v; want 5, 0.5, 127.0.0.1:7410", got["requests"], got["request_rate"], got["admin"])
	}
}

func TestAloneAndNotJoined(t *testing.T) {
	n, _ := newTestNode(t, chord.DefaultConfig())
	if _, err := n.Lookup(context.Background(), testID(9)); !errors.Is(err, chord.ErrNotReady) {
		t.Fatalf("Lookup before joining = %v; want %v", err, chord.ErrNotReady)
	}
	if n.Ready() || n.Owns(testID(9)) {
		t.Fatal("a node that has not joined is ready or owns identifiers")
	}
	if err := n.Join(context.Background(), []string{"nowhere"}); !errors.Is(err, chord.ErrJoinFailed) {
		t.Fatalf("Join(nowhere) = %v; want %v", err, chord.ErrJoinFailed)
	}
	if err := n.Create(); err != nil {
		t.Fatal(err)
	}
	res, err := n.Lookup(context.Background(), testID(9))
	if err != nil || res.Owner != n.Self() || res.Hops != 0 {
		t.Fatalf("Lookup alone = %+v, %v; want self with 0 hops", res, err)
	}
	if !n.Owns(testID(9)) || !n.Ready() {
		t.Fatal("a node alone in its ring does not own everything or is not ready")
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := chord.DefaultConfig()
	cfg.Metrics = reg
	n, net := newTestNode(t, cfg)
	if err := n.Create(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := n.Lookup(context.Background(), testID(5)); err != nil {
			t.Fatal(err)
		}
	}
	if got := counterValue(t, reg, "durachord_chord_lookups_total", "result", "ok"); got != 3 {
		t.Fatalf("lookups_total{result=ok} = %v; want 3", got)
	}
	info := chord.NodeInfo{ID: testID(2), Addr: "b"}
	if _, err := chord.New(cfg, info, net.Transport(info), nil); !errors.Is(err, chord.ErrConfig) {
		t.Fatalf("New with an already used registry = %v; want %v", err, chord.ErrConfig)
	}
}

// counterValue reads the counter name{label="value"} from the registry.
func counterValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{%s=%q} not found", name, label, value)
	return 0
}

// countingTransport counts calls per address.
type countingTransport struct {
	chord.Transport
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingTransport) Call(ctx context.Context, to chord.NodeInfo, method string, args, reply any) error {
	if method == "chord.find_successor" {
		c.mu.Lock()
		c.calls[to.Addr]++
		c.mu.Unlock()
	}
	return c.Transport.Call(ctx, to, method, args, reply)
}

func (c *countingTransport) reset() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.calls
	c.calls = make(map[string]int)
	return old
}

func TestLookupSkipsDeadHops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(32)
		waitFor(t, 5*time.Minute, "correct ring of 32", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		ring := c.live()
		// A fresh node joined through the ring, with a counting transport
		// and no rounds running: its tables are not repaired during the test.
		info := chord.NodeInfo{ID: testID(5000), Addr: "observer"}
		ct := &countingTransport{Transport: c.net.Transport(info), calls: make(map[string]int)}
		obs, err := chord.New(cfg, info, ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.net.Listen(info, obs)
		if err := obs.Join(context.Background(), []string{ring[0].Self().Addr}); err != nil {
			t.Fatal(err)
		}
		for range 40 {
			if err := obs.FixFingers(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		dead := map[string]bool{}
		for i, n := range ring {
			if i%3 == 1 {
				dead[n.Self().Addr] = true
				c.kill(n.Self().ID)
			}
		}
		deadQueried := 0
		for i := range 100 {
			ct.reset()
			if _, err := obs.Lookup(context.Background(), testID(10000+i)); err != nil {
				t.Fatalf("Lookup %d with dead hops = %v; want an answer", i, err)
			}
			for addr, k := range ct.reset() {
				if dead[addr] {
					if k > 1 {
						t.Fatalf("lookup %d queried dead %s %d times; want at most once", i, addr, k)
					}
					deadQueried++
				}
			}
		}
		t.Logf("dead nodes queried %d times over 100 lookups (%d dead)", deadQueried, len(dead))
		if deadQueried > 2*cfg.SuspectAfter*len(dead) {
			t.Fatalf("lookups queried dead nodes %d times; want each suspected after a few failures", deadQueried)
		}
	})
}

func TestNotifyAsSuccessor(t *testing.T) {
	n, net := newTestNode(t, chord.DefaultConfig())
	if err := n.Create(); err != nil {
		t.Fatal(err)
	}
	self := n.Self().ID
	// Two nodes after self, b nearer than c.
	b := chord.NodeInfo{ID: self.AddPow2(10), Addr: "b"}
	c := chord.NodeInfo{ID: self.AddPow2(20), Addr: "c"}
	net.Listen(b, pinger{})
	net.Listen(c, pinger{})
	notify := func(x chord.NodeInfo) {
		t.Helper()
		p, _ := json.Marshal(map[string]any{"node": x, "role": "successor"})
		if _, err := n.ServeRPC(context.Background(), x.ID, "chord.notify", p); err != nil {
			t.Fatalf("ServeRPC(notify as successor from %v) = %v", x, err)
		}
	}
	notify(c)
	if got := n.Successors(); len(got) != 1 || got[0] != c {
		t.Fatalf("Successors() after c = %v; want [%v]", got, c)
	}
	notify(b)
	if got := n.Successors(); len(got) != 2 || got[0] != b || got[1] != c {
		t.Fatalf("Successors() after b = %v; want [%v %v]", got, b, c)
	}
	notify(c) // not between self and b: ignored
	if got := n.Successors(); len(got) != 2 || got[0] != b {
		t.Fatalf("Successors() after c again = %v; want b first", got)
	}
}

// TestLookupRoutesAroundRestartingNodes: nodes that answer "not ready" (they
// restarted and have not rejoined yet) are routed around like dead ones, and
// joins through the ring succeed while they are so.
func TestLookupRoutesAroundRestartingNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(32)
		waitFor(t, 5*time.Minute, "correct ring of 32", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		ring := c.live()
		restarting := chord.HandlerFunc(func(context.Context, chord.ID, string, json.RawMessage) (any, error) {
			return nil, chord.ErrNotReady
		})
		for i, n := range ring {
			if i%3 == 1 {
				info := n.Self()
				c.kill(info.ID)
				c.net.Up(info.Addr)
				c.net.Listen(info, restarting)
			}
		}
		for i := range 20 {
			info := chord.NodeInfo{ID: testID(7000 + i), Addr: fmt.Sprintf("joiner-%d", i)}
			j, err := chord.New(cfg, info, c.net.Transport(info), nil)
			if err != nil {
				t.Fatal(err)
			}
			c.net.Listen(info, j)
			if err := j.Join(context.Background(), []string{ring[0].Self().Addr}); err != nil {
				t.Fatalf("join %d while a third of the ring restarts = %v; want success", i, err)
			}
			for k := range 10 {
				if _, err := j.Lookup(context.Background(), testID(20000+10*i+k)); err != nil {
					t.Fatalf("lookup from joiner %d = %v; want an answer", i, err)
				}
			}
		}
	})
}

// A successor unreachable for less than ConfirmDelay is not evicted: the
// confirming call comes after the blip. With no delay the same blip evicts
// it (the reason for the delay).
func TestConfirmDelayRidesOutBlip(t *testing.T) {
	for _, tc := range []struct {
		name    string
		delay   time.Duration
		evicted bool
	}{
		{"delay 250ms", 250 * time.Millisecond, false},
		{"no delay", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				net, err := chordtest.New(chordtest.Config{})
				if err != nil {
					t.Fatal(err)
				}
				reg := prometheus.NewRegistry()
				mk := func(id int, addr string, reg prometheus.Registerer) *chord.Node {
					cfg := chord.DefaultConfig()
					cfg.ConfirmDelay = tc.delay
					cfg.Metrics = reg
					info := chord.NodeInfo{ID: testID(id), Addr: addr}
					n, err := chord.New(cfg, info, net.Transport(info), nil)
					if err != nil {
						t.Fatal(err)
					}
					net.Listen(info, n)
					return n
				}
				a, b := mk(1, "a", reg), mk(2, "b", nil)
				ctx := context.Background()
				if err := a.Create(); err != nil {
					t.Fatal(err)
				}
				if err := b.Join(ctx, []string{"a"}); err != nil {
					t.Fatal(err)
				}
				for range 3 {
					_ = b.Stabilize(ctx)
					_ = a.Stabilize(ctx)
				}
				if got := a.Successors()[0]; got != b.Self() {
					t.Fatalf("a's successor = %v before the blip; want b", got)
				}
				// b is unreachable for 100ms, starting now.
				net.Down("b")
				var wg sync.WaitGroup
				wg.Go(func() {
					time.Sleep(100 * time.Millisecond)
					net.Up("b")
				})
				_ = a.Stabilize(ctx)
				wg.Wait()
				if got := gaugeOrCounter(t, reg, "durachord_chord_evictions_total"); (got > 0) != tc.evicted {
					t.Errorf("ConfirmDelay %v, 100ms blip: %v evictions; want evicted = %v", tc.delay, got, tc.evicted)
				}
				if got := a.Successors()[0]; !tc.evicted && got != b.Self() {
					t.Errorf("a's successor = %v after the blip; want b", got)
				}
			})
		})
	}
}

// gaugeOrCounter reads an unlabelled counter or gauge from reg.
func gaugeOrCounter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// pinger is a member that answers chord.ping and nothing else.
type pinger struct{}

func (pinger) ServeRPC(_ context.Context, _ chord.ID, method string, _ json.RawMessage) (any, error) {
	if method == "chord.ping" {
		return struct{}{}, nil
	}
	return nil, chord.ErrUnknownMethod
}
