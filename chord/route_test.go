package chord_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"

	"github.com/durachord/durachord/chord"
)

// methodTestGet is the request the route tests send: its owner serves it (and
// tells its neighbours when asked), any other node answers with its referral,
// as the records layer's dht.get does.
const methodTestGet = "test.get"

type testGetArgs struct {
	ID         chord.ID `json:"id"`
	Neighbours bool     `json:"neighbours,omitempty"`
}

type testGetReply struct {
	Referral   *chord.Referral   `json:"referral,omitempty"`
	Neighbours *chord.Neighbours `json:"neighbours,omitempty"`
}

// at returns an identifier whose first byte is b: the tests place nodes and
// positions by hand.
func at(b byte) chord.ID { return chord.ID{b, 0x5a} }

// handRing is a ring whose rounds the test runs by hand (no loops), so that
// a node's view stays as stale as the test makes it.
type handRing struct {
	*cluster
	ctx context.Context
	// asked lists the nodes the last route sent its request to, in order.
	asked []chord.ID
}

// newHandRing starts nodes at the given first bytes, joined through the
// first and settled by hand, each serving methodTestGet.
func newHandRing(t *testing.T, cfg chord.Config, firsts ...byte) *handRing {
	t.Helper()
	r := &handRing{cluster: newCluster(t, cfg), ctx: context.Background()}
	for i, b := range firsts {
		n := r.addNode(at(b))
		if i == 0 {
			if err := n.Create(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := n.Join(r.ctx, []string{r.node(at(firsts[0])).Self().Addr}); err != nil {
			t.Fatalf("Join(%v) = %v", n.Self(), err)
		}
	}
	r.settle(nil)
	return r
}

func (r *handRing) addNode(id chord.ID) *chord.Node {
	n := r.add(id, nil)
	n.Handle(methodTestGet, func(_ context.Context, _ chord.ID, _ string, params json.RawMessage) (any, error) {
		var a testGetArgs
		if err := json.Unmarshal(params, &a); err != nil {
			return nil, fmt.Errorf("%w: %v", chord.ErrBadRequest, err)
		}
		if !n.Owns(a.ID) {
			ref, err := n.Refer(a.ID)
			if err != nil {
				return nil, err
			}
			return testGetReply{Referral: &ref}, nil
		}
		var rep testGetReply
		if a.Neighbours {
			nb := n.Neighbours()
			rep.Neighbours = &nb
		}
		return rep, nil
	})
	return n
}

func (r *handRing) node(id chord.ID) *chord.Node {
	r.t.Helper()
	m, ok := r.nodes[id]
	if !ok {
		r.t.Fatalf("no live node %s", id.Short())
	}
	return m.node
}

// settle runs every live node's rounds, except those of the nodes in
// frozen, until the others' views are right, at most a few times.
func (r *handRing) settle(frozen []chord.ID) {
	r.t.Helper()
	for range 2 * len(r.nodes) {
		for _, n := range r.live() {
			if containsID(frozen, n.Self().ID) {
				continue
			}
			_ = n.CheckPredecessor(r.ctx)
			_ = n.Stabilize(r.ctx)
		}
	}
	for range 16 {
		for _, n := range r.live() {
			if !containsID(frozen, n.Self().ID) {
				_ = n.FixFingers(r.ctx)
			}
		}
	}
	var others []*chord.Node
	for _, n := range r.live() {
		if !containsID(frozen, n.Self().ID) {
			others = append(others, n)
		}
	}
	if len(frozen) == 0 {
		if err := checkRing(others, r.cfg.SuccessorListLen); err != nil {
			r.t.Fatalf("ring did not settle: %v", err)
		}
	}
}

func containsID(ids []chord.ID, id chord.ID) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// route sends methodTestGet for id through from and returns the node that
// served it.
func (r *handRing) route(from *chord.Node, id chord.ID, wrap func(chord.Asker) chord.Asker) (chord.NodeInfo, chord.RouteResult, error) {
	tr := r.net.Transport(from.Self())
	var served chord.NodeInfo
	r.asked = nil
	ask := func(ctx context.Context, to chord.NodeInfo, learn bool) (chord.Reply, error) {
		r.asked = append(r.asked, to.ID)
		if to.ID == from.Self().ID {
			served = to
			return chord.Reply{}, nil
		}
		var rep testGetReply
		if err := tr.Call(ctx, to, methodTestGet, testGetArgs{ID: id, Neighbours: learn}, &rep); err != nil {
			return chord.Reply{}, err
		}
		if rep.Referral == nil {
			served = to
		}
		return chord.Reply{Referral: rep.Referral, Neighbours: rep.Neighbours}, nil
	}
	if wrap != nil {
		ask = wrap(ask)
	}
	res, err := from.Route(r.ctx, id, ask)
	return served, res, err
}

// mustRoute routes id through from and checks that want served it within
// maxCalls calls.
func (r *handRing) mustRoute(from *chord.Node, id chord.ID, want chord.ID, maxCalls int) chord.RouteResult {
	r.t.Helper()
	served, res, err := r.route(from, id, nil)
	if err != nil {
		r.t.Fatalf("Route(%s) from %v = %v", id.Short(), from.Self(), err)
	}
	if served.ID != want || res.Owner.ID != want {
		r.t.Fatalf("Route(%s) from %v served by %v (result %v); want %s", id.Short(), from.Self(), served, res.Owner, want.Short())
	}
	if res.Calls > maxCalls {
		r.t.Fatalf("Route(%s) from %v took %d calls; want at most %d", id.Short(), from.Self(), res.Calls, maxCalls)
	}
	return res
}

func routeConfig() chord.Config {
	cfg := testConfig()
	cfg.ConfirmDelay = 0 // rounds run by hand: a failed neighbour is confirmed at once
	cfg.MaxHops = 6
	// Short lists, so that most arcs lie beyond a node's own successors.
	cfg.SuccessorListLen = 3
	return cfg
}

// TestRouteWarmIsOneCall: once a node has routed to an owner, it sends the
// next request for that owner's arc straight to it (one call), and none for
// its own arc.
func TestRouteWarmIsOneCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHandRing(t, routeConfig(), 0x10, 0x30, 0x50, 0x70, 0x90, 0xb0, 0xd0, 0xf0)
		from := r.node(at(0xd0))
		for _, tc := range []struct {
			name       string
			pos, owner byte
			cold       int // calls the first time, at most
		}{
			{"own arc", 0xc8, 0xd0, 0},
			{"successor's arc", 0xe0, 0xf0, 1},
			{"far arc", 0x60, 0x70, 4},
			{"past the highest ID", 0xf8, 0x10, 4},
		} {
			// (No t.Run inside a synctest bubble.)
			want := 1
			if tc.owner == 0xd0 {
				want = 0
			}
			r.mustRoute(from, at(tc.pos), at(tc.owner), tc.cold)
			if res := r.mustRoute(from, at(tc.pos), at(tc.owner), want); res.Calls != want {
				t.Fatalf("%s: second Route(%s) took %d calls; want %d", tc.name, at(tc.pos).Short(), res.Calls, want)
			}
		}
	})
}

// TestRouteStaleCache: a node whose owner cache names a node that no longer
// owns the position still reaches the right owner within the hop limit, and
// the next request goes straight to it.
func TestRouteStaleCache(t *testing.T) {
	for _, tc := range []struct {
		name string
		// The cache learns that cached owns pos; then a node joins at
		// joined (0: none) or cached dies; owner owns pos afterwards.
		from, pos, cached, joined byte
		dies                      bool
		owner                     byte
		maxCalls                  int
	}{
		// A newcomer between the position and the cached owner: the cached
		// owner refers to it as its predecessor.
		{name: "join", from: 0xb0, pos: 0x60, cached: 0x70, joined: 0x68, owner: 0x68, maxCalls: 2},
		// The same across zero: the position just after the highest ID,
		// cached as the lowest node's, and a newcomer below the lowest.
		{name: "join at wrap-around", from: 0x50, pos: 0xf8, cached: 0x10, joined: 0x08, owner: 0x08, maxCalls: 2},
		{name: "join past the highest ID", from: 0x50, pos: 0xf8, cached: 0x10, joined: 0xfc, owner: 0xfc, maxCalls: 2},
		// The cached owner crashed; its successor took the arc over.
		{name: "cached owner died", from: 0xb0, pos: 0x60, cached: 0x70, dies: true, owner: 0x90, maxCalls: 4},
		{name: "cached owner died at wrap-around", from: 0x50, pos: 0xf8, cached: 0x10, dies: true, owner: 0x30, maxCalls: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newHandRing(t, routeConfig(), 0x10, 0x30, 0x50, 0x70, 0x90, 0xb0, 0xd0, 0xf0)
				from := r.node(at(tc.from))
				r.mustRoute(from, at(tc.pos), at(tc.cached), 6)
				r.mustRoute(from, at(tc.pos), at(tc.cached), 1) // cached
				var frozen []chord.ID
				switch {
				case tc.dies:
					r.kill(at(tc.cached))
					// The routing node does not notice by itself.
					frozen = []chord.ID{from.Self().ID}
				default:
					n := r.addNode(at(tc.joined))
					if err := n.Join(r.ctx, []string{r.node(at(0x10)).Self().Addr}); err != nil {
						t.Fatalf("Join(%v) = %v", n.Self(), err)
					}
				}
				r.settle(frozen)
				r.mustRoute(from, at(tc.pos), at(tc.owner), tc.maxCalls)
				if len(r.asked) == 0 || r.asked[0] != at(tc.cached) {
					t.Fatalf("Route(%s) asked %v first; want the cached owner %s", at(tc.pos).Short(), r.asked, at(tc.cached).Short())
				}
				if res := r.mustRoute(from, at(tc.pos), at(tc.owner), 1); res.Calls != 1 {
					t.Fatalf("Route after the correction took %d calls; want 1", res.Calls)
				}
			})
		})
	}
}

// TestRouteChecksReferrals: a referral that names an owner or a predecessor
// outside the interval asked about is ignored, and the route still reaches
// the true owner.
func TestRouteChecksReferrals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHandRing(t, routeConfig(), 0x10, 0x30, 0x50, 0x70, 0x90, 0xb0, 0xd0, 0xf0)
		from := r.node(at(0xb0))
		pos := at(0x60)
		r.mustRoute(from, pos, at(0x70), 6)
		// The cache now names 0x70. A node joins at 0x68, and 0x70 lies:
		// it names as owner a node before the position and as its
		// predecessor a node after itself (0x90).
		n := r.addNode(at(0x68))
		if err := n.Join(r.ctx, []string{r.node(at(0x10)).Self().Addr}); err != nil {
			t.Fatal(err)
		}
		r.settle(nil)
		// The owner it names is a node before the position that serves
		// whatever it is sent, as a node with a stale view would.
		wrong := chord.NodeInfo{ID: at(0x40), Addr: "n-wrong"}
		r.net.Listen(wrong, chord.HandlerFunc(func(context.Context, chord.ID, string, json.RawMessage) (any, error) {
			return testGetReply{}, nil
		}))
		liar := r.node(at(0x70)).Self()
		lie := func(ask chord.Asker) chord.Asker {
			return func(ctx context.Context, to chord.NodeInfo, learn bool) (chord.Reply, error) {
				if to.ID != liar.ID {
					return ask(ctx, to, learn)
				}
				after := r.node(at(0x90)).Self()
				return chord.Reply{Referral: &chord.Referral{Owner: &wrong, Predecessor: &after}}, nil
			}
		}
		served, res, err := r.route(from, pos, lie)
		if err != nil || served.ID != at(0x68) {
			t.Fatalf("Route(%s) past a lying referral = served by %v, %v; want %s", pos.Short(), served, err, at(0x68).Short())
		}
		if res.Calls > r.cfg.MaxHops {
			t.Fatalf("Route took %d calls; want at most MaxHops %d", res.Calls, r.cfg.MaxHops)
		}
	})
}

// TestRouteBounded: when every node asked refers without naming anyone, the
// route gives up within the hop limit.
func TestRouteBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHandRing(t, routeConfig(), 0x10, 0x30, 0x50, 0x70, 0x90, 0xb0, 0xd0, 0xf0)
		from := r.node(at(0xb0))
		calls := 0
		unhelpful := func(chord.Asker) chord.Asker {
			return func(context.Context, chord.NodeInfo, bool) (chord.Reply, error) {
				calls++
				return chord.Reply{Referral: &chord.Referral{}}, nil
			}
		}
		_, res, err := r.route(from, at(0x60), unhelpful)
		if !errors.Is(err, chord.ErrLookupFailed) {
			t.Fatalf("Route with unhelpful referrals = %v; want %v", err, chord.ErrLookupFailed)
		}
		if res.Calls > r.cfg.MaxHops || calls == 0 {
			t.Fatalf("Route made %d calls, %d requests; want at most MaxHops %d, at least one request", res.Calls, calls, r.cfg.MaxHops)
		}
	})
}

// TestRouteSlowOwnerNotSuspected: an owner whose request timed out is routed
// around for that request but not suspected: the next request goes to it
// again, from the owner cache.
func TestRouteSlowOwnerNotSuspected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHandRing(t, routeConfig(), 0x10, 0x30, 0x50, 0x70, 0x90, 0xb0, 0xd0, 0xf0)
		from, pos, owner := r.node(at(0xb0)), at(0x60), at(0x70)
		r.mustRoute(from, pos, owner, 6)
		slow := func(ask chord.Asker) chord.Asker {
			return func(ctx context.Context, to chord.NodeInfo, learn bool) (chord.Reply, error) {
				if to.ID == owner {
					return chord.Reply{}, fmt.Errorf("call %s: %w", to.Addr, context.DeadlineExceeded)
				}
				return ask(ctx, to, learn)
			}
		}
		if _, _, err := r.route(from, pos, slow); err == nil {
			t.Fatalf("Route(%s) with its owner timing out = nil; want an error", pos.Short())
		}
		r.mustRoute(from, pos, owner, 1)
		if len(r.asked) != 1 || r.asked[0] != owner {
			t.Fatalf("Route(%s) after a timeout asked %v; want the cached owner %s alone", pos.Short(), r.asked, owner.Short())
		}
	})
}

// TestRouteGoesOnFromAMovedPosition: a believed owner whose process no longer
// stands at that position (virtual nodes: it moved it) answers "no such
// position"; the route goes on to the node that owns the arc now, instead of
// returning that answer as the owner's, and the next route does not ask the
// moved position again.
func TestRouteGoesOnFromAMovedPosition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHandRing(t, routeConfig(), 0x10, 0x30, 0x50, 0x70, 0x90, 0xb0, 0xd0, 0xf0)
		from, pos, moved, next := r.node(at(0xb0)), at(0x60), at(0x70), at(0x90)
		r.mustRoute(from, pos, moved, 6)
		r.mustRoute(from, pos, moved, 1) // cached
		// The position leaves the ring as a graceful leave does, and its
		// address answers calls for it with "no such position".
		if err := r.node(moved).Leave(r.ctx); err != nil {
			t.Fatal(err)
		}
		r.settle([]chord.ID{from.Self().ID, moved})
		gone := func(ask chord.Asker) chord.Asker {
			return func(ctx context.Context, to chord.NodeInfo, learn bool) (chord.Reply, error) {
				if to.ID == moved {
					return chord.Reply{}, &chord.RemoteError{Code: chord.ErrorCode(chord.ErrNoPosition), Message: "chord: no such position at this node"}
				}
				return ask(ctx, to, learn)
			}
		}
		served, res, err := r.route(from, pos, gone)
		if err != nil {
			t.Fatalf("Route(%s) with its cached owner moved away = %v; want it served by %s", pos.Short(), err, next.Short())
		}
		if served.ID != next || res.Owner.ID != next {
			t.Fatalf("Route(%s) served by %v (result %v); want %s", pos.Short(), served, res.Owner, next.Short())
		}
		if _, _, err := r.route(from, pos, gone); err != nil || containsID(r.asked, moved) {
			t.Fatalf("the next Route(%s) = %v, asking %v; want it served without asking the moved position %s", pos.Short(), err, r.asked, moved.Short())
		}
	})
}
