package chordtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/internal/ctxutil"
)

// Config tunes a Network. The zero value is an instant, lossless network.
type Config struct {
	// Latency is the one-way delay before a call reaches its handler.
	// Default 0.
	Latency time.Duration
	// Jitter adds a uniformly random delay in [0, Jitter) to Latency.
	// Default 0.
	Jitter time.Duration
	// Loss is the probability in [0, 1] that a call is lost (it fails with
	// chord.ErrUnreachable). Default 0.
	Loss float64
	// UnreachableDelay is how long a call to an unreachable peer takes to
	// fail (a simulated connect timeout). Default 0: it fails at once.
	UnreachableDelay time.Duration
	// Seed seeds the network's random source (jitter and loss). Default 0.
	Seed uint64
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Latency < 0 || c.Jitter < 0 || c.UnreachableDelay < 0 {
		return fmt.Errorf("%w: negative duration", ErrConfig)
	}
	if c.Loss < 0 || c.Loss > 1 {
		return fmt.Errorf("%w: loss %v not in [0, 1]", ErrConfig, c.Loss)
	}
	return nil
}

// ErrConfig reports an unusable Config.
var ErrConfig = errors.New("chordtest: invalid config")

// Network is an in-memory network. It is safe for concurrent use.
type Network struct {
	cfg Config

	mu sync.Mutex // guards the fields below
	// endpoints by address.
	endpoints map[string]*endpoint
	// group maps an address to its partition group; addresses in different
	// groups cannot reach each other. nil means no partition.
	group map[string]int
	rng   *rand.Rand
	calls uint64
	// byMethod counts the calls per method.
	byMethod map[string]uint64
}

type endpoint struct {
	info chord.NodeInfo
	h    chord.Handler
	up   bool
	// more are the further positions served at the address (ListenAt).
	more map[chord.ID]chord.Handler
}

// New returns a network configured by cfg.
func New(cfg Config) (*Network, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Network{
		cfg:       cfg,
		endpoints: make(map[string]*endpoint),
		byMethod:  make(map[string]uint64),
		rng:       rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
	}, nil
}

// Listen registers (or replaces) the endpoint at info.Addr, serving h, and
// marks it up.
func (n *Network) Listen(info chord.NodeInfo, h chord.Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.endpoints[info.Addr] = &endpoint{info: info, h: h, up: true}
}

// ListenAt serves h at one more position, info.ID, of the endpoint at
// info.Addr (virtual nodes: one process at several positions), which must
// be listening already. Down, Up and Remove act on every position of an
// address at once.
func (n *Network) ListenAt(info chord.NodeInfo, h chord.Handler) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ep, ok := n.endpoints[info.Addr]
	if !ok {
		panic("chordtest: ListenAt " + info.Addr + ": nothing listens there")
	}
	if ep.more == nil {
		ep.more = make(map[chord.ID]chord.Handler)
	}
	ep.more[info.ID] = h
}

// Down makes the endpoint at addr unreachable (a crash): calls to and from it
// fail with chord.ErrUnreachable until Up or Listen.
func (n *Network) Down(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ep, ok := n.endpoints[addr]; ok {
		ep.up = false
	}
}

// Up makes a downed endpoint reachable again.
func (n *Network) Up(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ep, ok := n.endpoints[addr]; ok {
		ep.up = true
	}
}

// Remove deletes the endpoint at addr.
func (n *Network) Remove(addr string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.endpoints, addr)
}

// Partition splits the network: addresses in different groups cannot reach
// each other. Addresses in no group form one more group of their own.
func (n *Network) Partition(groups ...[]string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = make(map[string]int)
	for i, g := range groups {
		for _, addr := range g {
			n.group[addr] = i + 1
		}
	}
}

// Heal removes every partition.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.group = nil
}

// Calls returns the number of calls made so far (reachable or not).
func (n *Network) Calls() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.calls
}

// CallsOf returns the number of calls of method made so far (reachable or
// not).
func (n *Network) CallsOf(method string) uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.byMethod[method]
}

// Transport returns the transport for calls made by the endpoint from.
func (n *Network) Transport(from chord.NodeInfo) *Transport {
	return &Transport{net: n, from: from}
}

// route decides the fate of one call: the handler to run, the delay before
// it, or an error.
func (n *Network) route(from chord.NodeInfo, to chord.NodeInfo, method string) (chord.Handler, time.Duration, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls++
	n.byMethod[method]++
	src, srcOK := n.endpoints[from.Addr]
	ep, ok := n.endpoints[to.Addr]
	switch {
	case !ok || !ep.up:
		return nil, 0, fmt.Errorf("call %s: %w", to.Addr, chord.ErrUnreachable)
	case srcOK && !src.up:
		return nil, 0, fmt.Errorf("call %s from downed %s: %w", to.Addr, from.Addr, chord.ErrUnreachable)
	case n.group != nil && n.group[from.Addr] != n.group[to.Addr]:
		return nil, 0, fmt.Errorf("call %s across partition: %w", to.Addr, chord.ErrUnreachable)
	case n.cfg.Loss > 0 && n.rng.Float64() < n.cfg.Loss:
		return nil, 0, fmt.Errorf("call %s: message lost: %w", to.Addr, chord.ErrUnreachable)
	case !to.ID.IsZero() && to.ID != ep.info.ID && ep.more[to.ID] == nil:
		return nil, 0, fmt.Errorf("call %s: want %s, peer is %s: %w", to.Addr, to.ID.Short(), ep.info.ID.Short(), chord.ErrIdentityMismatch)
	}
	h := ep.h
	if more := ep.more[to.ID]; more != nil {
		h = more
	}
	d := n.cfg.Latency
	if n.cfg.Jitter > 0 {
		d += time.Duration(n.rng.Int64N(int64(n.cfg.Jitter)))
	}
	return h, d, nil
}

// Transport is one endpoint's view of the network. It implements
// chord.Transport.
type Transport struct {
	net  *Network
	from chord.NodeInfo
}

var _ chord.Transport = (*Transport)(nil)

// defaultCallTimeout bounds calls whose ctx has no deadline.
const defaultCallTimeout = 10 * time.Second

// Call implements chord.Transport.
func (t *Transport) Call(ctx context.Context, to chord.NodeInfo, method string, args, reply any) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCallTimeout)
		defer cancel()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	params, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("chordtest: encode %s args: %w", method, err)
	}
	h, delay, err := t.net.route(t.from, to, method)
	if err != nil {
		if errors.Is(err, chord.ErrUnreachable) && t.net.cfg.UnreachableDelay > 0 {
			if werr := ctxutil.Sleep(ctx, t.net.cfg.UnreachableDelay); werr != nil {
				return fmt.Errorf("%w (%w)", werr, err)
			}
		}
		return err
	}
	if err := ctxutil.Sleep(ctx, delay); err != nil {
		return err
	}
	type outcome struct {
		result []byte
		err    error
	}
	done := make(chan outcome, 1)
	go func() {
		res, herr := h.ServeRPC(ctx, t.from.ID, method, params)
		if herr != nil {
			done <- outcome{err: &chord.RemoteError{Code: chord.ErrorCode(herr), Message: herr.Error()}}
			return
		}
		b, merr := json.Marshal(res)
		if merr != nil {
			done <- outcome{err: &chord.RemoteError{Code: chord.CodeInternal, Message: "encode result: " + merr.Error()}}
			return
		}
		done <- outcome{result: b}
	}()
	var out outcome
	select {
	case out = <-done:
	case <-ctx.Done():
		return fmt.Errorf("call %s %s: %w", to.Addr, method, ctx.Err())
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("call %s %s: %w", to.Addr, method, err)
	}
	if out.err != nil {
		return out.err
	}
	if reply == nil {
		return nil
	}
	if err := json.Unmarshal(out.result, reply); err != nil {
		return fmt.Errorf("chordtest: decode %s result: %w", method, err)
	}
	return nil
}
