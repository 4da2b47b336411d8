package rpc

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/chord/transporttest"
	"github.com/durachord/durachord/crypto"
	"github.com/durachord/durachord/crypto/cryptotest"
)

// testNode is a server and a client with one identity.
type testNode struct {
	info   chord.NodeInfo
	id     *crypto.Identity
	server *Server
	client *Client
	reg    *prometheus.Registry
}

// startNode starts a node with its own registry on 127.0.0.1:0.
func startNode(t *testing.T, id *crypto.Identity, keys *crypto.Keyring, h chord.Handler, scfg ServerConfig) *testNode {
	t.Helper()
	reg := prometheus.NewRegistry()
	scfg.Metrics = reg
	srv, err := NewServer(scfg, id, keys, h)
	if err != nil {
		t.Fatalf("NewServer = %v", err)
	}
	ccfg := DefaultClientConfig()
	ccfg.Metrics = reg
	cli, err := NewClient(ccfg, id, keys)
	if err != nil {
		t.Fatalf("NewClient = %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() {
		if err := cli.Close(); err != nil {
			t.Errorf("Client.Close = %v", err)
		}
		if err := srv.Close(); err != nil {
			t.Errorf("Server.Close = %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve = %v; want %v", err, ErrServerClosed)
		}
	})
	return &testNode{
		info:   chord.NodeInfo{ID: id.ID, Addr: l.Addr().String()},
		id:     id,
		server: srv,
		client: cli,
		reg:    reg,
	}
}

type harness struct {
	ca    *crypto.CA
	keys  *crypto.Keyring
	mu    sync.Mutex
	nodes map[chord.ID]*testNode
}

func newHarness(t *testing.T) transporttest.Harness {
	return &harness{ca: cryptotest.NewCA(t), keys: cryptotest.NewKeyring(t), nodes: map[chord.ID]*testNode{}}
}

func (h *harness) NewNode(t *testing.T, hd chord.Handler) (chord.NodeInfo, chord.Transport) {
	n := startNode(t, cryptotest.NewIdentity(t, h.ca, "127.0.0.1:0"), h.keys, hd, DefaultServerConfig())
	h.mu.Lock()
	h.nodes[n.info.ID] = n
	h.mu.Unlock()
	return n.info, n.client
}

func (h *harness) Stop(t *testing.T, n chord.NodeInfo) {
	h.mu.Lock()
	node := h.nodes[n.ID]
	h.mu.Unlock()
	if err := node.server.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
}

func TestConformance(t *testing.T) {
	transporttest.Run(t, newHarness)
}

// echo answers "echo" with its params and "who" with the caller's ID.
var echo = chord.HandlerFunc(func(ctx context.Context, from chord.ID, method string, params json.RawMessage) (any, error) {
	switch method {
	case "echo":
		return params, nil
	case "who":
		return from, nil
	}
	return nil, chord.ErrUnknownMethod
})

func rejected(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "durachord_rpc_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "reason" && lp.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestForeignCA(t *testing.T) {
	ca, other := cryptotest.NewCA(t), cryptotest.NewCA(t)
	keys := cryptotest.NewKeyring(t)
	member := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	stranger := startNode(t, cryptotest.NewIdentity(t, other, "127.0.0.1:0"), keys, echo, DefaultServerConfig())

	t.Run("stranger-calls-member", func(t *testing.T) {
		err := stranger.client.Call(ctxT(t), member.info, "echo", 1, nil)
		if err == nil {
			t.Fatal("a node of another CA called a member")
		}
		// The member counts the refused handshake.
		waitFor(t, "member to count a tls rejection", func() bool { return rejected(t, member.reg, ReasonTLS) >= 1 })
	})
	t.Run("member-calls-stranger", func(t *testing.T) {
		before := rejected(t, member.reg, ReasonTLS)
		for _, to := range []chord.NodeInfo{stranger.info, {Addr: stranger.info.Addr}} {
			err := member.client.Call(ctxT(t), to, "echo", 1, nil)
			if !errors.Is(err, chord.ErrIdentityMismatch) {
				t.Errorf("Call(%v) to a node of another CA = %v; want %v", to, err, chord.ErrIdentityMismatch)
			}
		}
		if got := rejected(t, member.reg, ReasonTLS); got < before+2 {
			t.Errorf("rejected{tls} = %v; want at least %v", got, before+2)
		}
	})
	t.Run("member-still-works", func(t *testing.T) {
		other := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
		var who chord.ID
		if err := other.client.Call(ctxT(t), member.info, "who", nil, &who); err != nil || who != other.info.ID {
			t.Fatalf("Call(who) = %v, %v; want %v", who, err, other.info.ID)
		}
	})
}

func TestWrongHMACKey(t *testing.T) {
	ca := cryptotest.NewCA(t)
	server := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), cryptotest.NewKeyring(t), echo, DefaultServerConfig())
	client := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), cryptotest.NewKeyring(t), echo, DefaultServerConfig())
	err := client.client.Call(ctxT(t), server.info, "echo", 1, nil)
	if !errors.Is(err, chord.ErrUnreachable) {
		t.Fatalf("Call with a foreign HMAC key = %v; want %v", err, chord.ErrUnreachable)
	}
	waitFor(t, "server to count an hmac rejection", func() bool { return rejected(t, server.reg, ReasonHMAC) == 1 })
}

func randomKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func keyring(t *testing.T, keys ...[]byte) *crypto.Keyring {
	t.Helper()
	kr, err := crypto.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestKeyRotation(t *testing.T) {
	ca := cryptotest.NewCA(t)
	k1, k2 := randomKey(t), randomKey(t)
	sk, ck := keyring(t, k1), keyring(t, k1)
	server := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), sk, echo, DefaultServerConfig())
	client := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), ck, echo, DefaultServerConfig())
	call := func() error { return client.client.Call(ctxT(t), server.info, "echo", "x", nil) }
	if err := call(); err != nil {
		t.Fatalf("Call with shared key = %v", err)
	}
	// Step 1: the server learns k2 as a second key; then the client signs with k2.
	sk.Replace(keyring(t, k1, k2))
	ck.Replace(keyring(t, k2, k1))
	if err := call(); err != nil {
		t.Fatalf("Call during rotation (open connection) = %v; want nil", err)
	}
	// Step 2: the server signs with k2 and drops k1.
	sk.Replace(keyring(t, k2))
	if err := call(); err != nil {
		t.Fatalf("Call after rotation = %v; want nil", err)
	}
	if got := rejected(t, server.reg, ReasonHMAC); got != 0 {
		t.Errorf("rejected{hmac} = %v during a rotation; want 0", got)
	}
	// A key nobody knows any more is refused on the open connection.
	ck.Replace(keyring(t, k1))
	if err := call(); !errors.Is(err, chord.ErrUnreachable) {
		t.Fatalf("Call signed with a retired key = %v; want %v", err, chord.ErrUnreachable)
	}
	waitFor(t, "server to count an hmac rejection", func() bool { return rejected(t, server.reg, ReasonHMAC) == 1 })
}

// metricValue returns the counter value, or the histogram's sample count, of
// the series name{labelName=labelValue}.
func metricValue(t *testing.T, reg *prometheus.Registry, name, labelName, labelValue string) float64 {
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
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labelName && lp.GetValue() == labelValue {
					if h := m.GetHistogram(); h != nil {
						return float64(h.GetSampleCount())
					}
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestMetrics(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	cli := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	for range 3 {
		if err := cli.client.Call(ctxT(t), srv.info, "echo", 1, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := cli.client.Call(ctxT(t), srv.info, "no-such-method", nil, nil); !errors.Is(err, chord.ErrUnknownMethod) {
		t.Fatalf("Call(no-such-method) = %v; want %v", err, chord.ErrUnknownMethod)
	}
	for _, tc := range []struct {
		reg         *prometheus.Registry
		name, label string
		value       string
		want        float64
	}{
		{cli.reg, "durachord_rpc_calls_total", "method", "echo", 3},
		{cli.reg, "durachord_rpc_call_errors_total", "method", "echo", 0},
		{cli.reg, "durachord_rpc_calls_total", "method", "no-such-method", 1},
		{cli.reg, "durachord_rpc_call_errors_total", "method", "no-such-method", 1},
		{cli.reg, "durachord_rpc_call_duration_seconds", "method", "echo", 3},
		{srv.reg, "durachord_rpc_handler_duration_seconds", "method", "echo", 3},
		{srv.reg, "durachord_rpc_handler_duration_seconds", "method", "unknown", 1},
		{srv.reg, "durachord_rpc_handler_duration_seconds", "method", "no-such-method", 0},
	} {
		if got := metricValue(t, tc.reg, tc.name, tc.label, tc.value); got != tc.want {
			t.Errorf("%s{%s=%q} = %v; want %v", tc.name, tc.label, tc.value, got, tc.want)
		}
	}
}

// TestArgsReachHandler: the handler gets the JSON encoding of the caller's
// args whatever their kind, although the wire carries only structured
// params.
func TestArgsReachHandler(t *testing.T) {
	ca, keys := cryptotest.NewCA(t), cryptotest.NewKeyring(t)
	got := make(chan json.RawMessage, 1)
	h := chord.HandlerFunc(func(_ context.Context, _ chord.ID, _ string, params json.RawMessage) (any, error) {
		got <- append(json.RawMessage(nil), params...)
		return nil, nil
	})
	srv := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, h, DefaultServerConfig())
	cli := startNode(t, cryptotest.NewIdentity(t, ca, "127.0.0.1:0"), keys, echo, DefaultServerConfig())
	var nilPtr *struct{ A int }
	for _, tc := range []struct {
		name string
		args any
		want string
	}{
		{"struct", struct{ A int }{7}, `{"A":7}`},
		{"array", []string{"a"}, `["a"]`},
		{"number", 42, `42`},
		{"string", "x", `"x"`},
		{"nil-pointer", nilPtr, `null`},
		{"none", nil, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := cli.client.Call(ctxT(t), srv.info, "m", tc.args, nil); err != nil {
				t.Fatalf("Call(%v) = %v", tc.args, err)
			}
			if p := <-got; string(p) != tc.want {
				t.Errorf("handler got params %q; want %q", p, tc.want)
			}
		})
	}
}
