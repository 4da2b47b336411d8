package dht

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/chord/chordtest"
	"github.com/durachord/durachord/store"
	"github.com/durachord/durachord/store/storetest"
)

// A test ring of physical nodes that each stand at several positions: one
// store and one records layer per physical node, a chord.Node per position.

type vmember struct {
	addr  string
	nodes []*chord.Node
	db    *store.Store
	svc   *Service
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

type vring struct {
	t       *testing.T
	net     *chordtest.Network
	members []*vmember
	// slow multiplies the round intervals of positions but the first, as
	// the daemon does (1: no slowdown).
	slow int
}

// newVRing starts n physical nodes of v positions each, joined one position
// at a time, and waits until every position's neighbours are right.
func newVRing(t *testing.T, n, v int) *vring {
	t.Helper()
	net, err := chordtest.New(chordtest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := &vring{t: t, net: net, slow: 1}
	for i := range n {
		r.add(i, v)
	}
	// Before any member's store is checked and closed, every member has
	// stopped and its replica pushes have ended: a push from one member
	// into another's store during that check would make it fail.
	t.Cleanup(func() {
		for _, m := range r.members {
			m.stop()
		}
		for _, m := range r.members {
			m.wg.Wait()
			m.svc.Wait()
		}
	})
	r.waitStable()
	return r
}

func (r *vring) add(seq, v int) *vmember {
	t := r.t
	t.Helper()
	m := &vmember{addr: fmt.Sprintf("node-%d", seq), db: storetest.OpenTemp(t)}
	ncfg := testNodeConfig()
	var ps []Position
	for i := range v {
		info := chord.NodeInfo{ID: chord.KeyPosition([32]byte{byte(seq), 0xd5, byte(i)}), Addr: m.addr}
		tr := r.net.Transport(info)
		node, err := chord.New(ncfg, info, tr, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.nodes = append(m.nodes, node)
		ps = append(ps, Position{Node: node, Transport: tr})
	}
	cfg := DefaultConfig()
	cfg.MaintainInterval = time.Hour
	cfg.SweepInterval = time.Hour
	cfg.RepairRate = 1 << 20
	cfg.CallTimeout = 500 * time.Millisecond
	svc, err := NewPositions(cfg, ps, m.db)
	if err != nil {
		t.Fatal(err)
	}
	m.svc = svc
	t.Cleanup(func() { svc.Wait() })
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	for i, node := range m.nodes {
		if i == 0 {
			r.net.Listen(node.Self(), node)
		} else {
			r.net.ListenAt(node.Self(), node)
		}
		jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		switch {
		case seq == 0 && i == 0:
			err = node.Create()
		case i == 0:
			err = node.Join(jctx, []string{"node-0"})
		default:
			err = node.JoinThrough(jctx, []chord.NodeInfo{m.nodes[0].Self()})
		}
		cancel()
		if err != nil {
			t.Fatalf("join %v: %v", node.Self(), err)
		}
		m.wg.Go(func() { _ = node.Run(ctx) })
	}
	t.Cleanup(func() { stop(); m.wg.Wait() })
	r.members = append(r.members, m)
	return m
}

// move replaces position i of m with one at id, as the daemon moves a
// position: the new one joins first, then the old one hands its arc over
// and leaves.
func (r *vring) move(m *vmember, i int, id chord.ID) {
	t := r.t
	t.Helper()
	info := chord.NodeInfo{ID: id, Addr: m.addr}
	tr := r.net.Transport(info)
	ncfg := testNodeConfig().FurtherPosition(r.slow)
	node, err := chord.New(ncfg, info, tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.net.ListenAt(info, node)
	if err := m.svc.AddPosition(Position{Node: node, Transport: tr}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := node.JoinThrough(jctx, []chord.NodeInfo{m.nodes[0].Self()}); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	m.wg.Go(func() { _ = node.Run(rctx) })
	t.Cleanup(func() { stop() })
	old := m.nodes[i]
	if err := m.svc.RemovePosition(jctx, old); err != nil {
		t.Fatal(err)
	}
	if err := old.Leave(jctx); err != nil {
		t.Fatal(err)
	}
	m.nodes[i] = node
}

// positions returns every position of the ring in ring order.
func (r *vring) positions() []chord.NodeInfo {
	var all []chord.NodeInfo
	for _, m := range r.members {
		for _, n := range m.nodes {
			all = append(all, n.Self())
		}
	}
	slices.SortFunc(all, func(a, b chord.NodeInfo) int { return a.ID.Cmp(b.ID) })
	return all
}

func (r *vring) waitStable() {
	r.t.Helper()
	all := r.positions()
	k := len(all)
	stable := func() bool {
		for _, m := range r.members {
			for _, node := range m.nodes {
				i := slices.IndexFunc(all, func(n chord.NodeInfo) bool { return n.ID == node.Self().ID })
				pred, ok := node.Predecessor()
				if k > 1 && (!ok || pred.ID != all[(i+k-1)%k].ID) {
					return false
				}
				succ := node.Successors()
				want := min(chord.DefaultConfig().SuccessorListLen, k-1)
				if len(succ) < want {
					return false
				}
				for j := range want {
					if succ[j].ID != all[(i+1+j)%k].ID {
						return false
					}
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	for !stable() {
		if time.Now().After(deadline) {
			r.t.Fatal("ring did not stabilise within 30s")
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
	}
}

// window returns the physical nodes (addresses) that should hold the key at
// pos with replication repl: the first repl distinct ones from its owner.
func (r *vring) window(pos chord.ID, repl int) []string {
	all := r.positions()
	at, _ := slices.BinarySearchFunc(all, pos, func(n chord.NodeInfo, id chord.ID) int { return n.ID.Cmp(id) })
	var out []string
	for j := range all {
		n := all[(at+j)%len(all)]
		if !slices.Contains(out, n.Addr) {
			out = append(out, n.Addr)
		}
		if len(out) == repl {
			break
		}
	}
	return out
}

// TestVirtualNodesPlacement: with four positions per physical node, at every
// ring size from 1 to 8, each record ends up on the first replication
// distinct physical nodes from its owner and on no other, through PUTs at
// every node and maintenance rounds, and again after one more node joins
// with four positions; every record reads back through every node.
func TestVirtualNodesPlacement(t *testing.T) {
	const (
		v    = 4
		keys = 40
		repl = 3
	)
	for n := 1; n <= 8; n++ {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			r := newVRing(t, n, v)
			ctx := context.Background()
			for i := range keys {
				m := r.members[i%n]
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := m.svc.Put(pctx, key(i), value(i, 1), time.Hour, repl)
				cancel()
				if err != nil {
					t.Fatalf("Put(key-%d) via %s = %v", i, m.addr, err)
				}
			}
			settle := func() {
				for _, m := range r.members {
					m.svc.Wait()
				}
				for range 3 {
					for _, m := range r.members {
						if err := m.svc.Maintain(ctx); err != nil {
							t.Logf("Maintain at %s: %v", m.addr, err)
						}
					}
				}
				for _, m := range r.members {
					m.svc.Wait()
				}
			}
			check := func(when string) {
				for i := range keys {
					pos := chord.KeyPosition(key(i))
					want := r.window(pos, repl)
					var got []string
					for _, m := range r.members {
						if rec, err := m.db.Get(key(i)); err == nil && bytes.Equal(rec.Value, value(i, 1)) {
							got = append(got, m.addr)
						}
					}
					slices.Sort(got)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("%s: key-%d at %s: held by %v; want %v", when, i, pos.Short(), got, want)
					}
					for _, m := range r.members {
						gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
						v, err := m.svc.Get(gctx, key(i))
						cancel()
						if err != nil || !bytes.Equal(v, value(i, 1)) {
							t.Errorf("%s: Get(key-%d) via %s = %q, %v", when, i, m.addr, v, err)
						}
					}
				}
			}
			settle()
			check("after the PUTs")
			// A node joins with four positions: the arcs and windows it
			// takes move to it, and the copies that left their windows go.
			r.add(n, v)
			r.waitStable()
			settle()
			check("after a join")
			// A node moves one of its positions elsewhere: the new one
			// joins, the old one hands its arc over and leaves.
			m := r.members[0]
			if len(m.nodes) > 1 {
				r.move(m, 1, chord.KeyPosition([32]byte{0xee, byte(n)}))
				r.waitStable()
				settle()
				check("after a position moved")
			}
		})
	}
}

// TestVersionsConfirmOnlyAtTheOwner: a dht.versions call that asks for a
// confirmation as owner (versionsArgs.Owner) is answered by the position
// that owns the records and refused (chord.ErrNotOwner) by another position
// of the same node, although both read one store.
func TestVersionsConfirmOnlyAtTheOwner(t *testing.T) {
	r := newVRing(t, 2, 4)
	ctx := context.Background()
	m := r.members[0]
	k := key(1)
	pos := chord.KeyPosition(k)
	var owner, other chord.NodeInfo
	for _, n := range m.nodes {
		if n.Owns(pos) {
			owner = n.Self()
		} else {
			other = n.Self()
		}
	}
	if owner.Addr == "" {
		m = r.members[1]
		for _, n := range m.nodes {
			if n.Owns(pos) {
				owner = n.Self()
			} else {
				other = n.Self()
			}
		}
	}
	tr := r.net.Transport(r.members[1-slices.Index(r.members, m)].nodes[0].Self())
	va := versionsArgs{From: pos, To: pos, MinReplication: 1, Limit: maxPageRecords, Owner: &pos}
	var rep versionsReply
	if err := tr.Call(ctx, owner, methodVersions, va, &rep); err != nil {
		t.Fatalf("versions as owner at the owning position %v: %v", owner, err)
	}
	if err := tr.Call(ctx, other, methodVersions, va, &rep); !errors.Is(err, chord.ErrNotOwner) {
		t.Fatalf("versions as owner at position %v of the same node, which does not own %s: %v; want %v", other, pos.Short(), err, chord.ErrNotOwner)
	}
	va.Owner = nil
	if err := tr.Call(ctx, other, methodVersions, va, &rep); err != nil {
		t.Fatalf("versions without the owner check at %v: %v", other, err)
	}
}

// TestRequestsAtALocalPositionMakeNoCalls: a PUT or a GET of a key that one
// of the node's positions owns is served there, with no call to another
// node (a route from the position nearest before the key would count one).
func TestRequestsAtALocalPositionMakeNoCalls(t *testing.T) {
	r := newVRing(t, 4, 4)
	ctx := context.Background()
	m := r.members[0]
	n := 0
	for i := 0; n < 20 && i < 4000; i++ {
		k := key(i)
		pos := chord.KeyPosition(k)
		owner := m.svc.ownerOf(pos)
		if owner == nil || owner == m.svc.ps()[0] {
			continue // not a further position's: the first routes from itself anyway
		}
		n++
		a := putArgs{Key: chord.ID(k), Value: []byte("v"), Expiry: time.Now().Add(time.Hour).UnixNano(), Replication: 3}
		calls, err := m.svc.put(ctx, a)
		if err != nil {
			t.Fatalf("put of %s, owned here at %s: %v", pos.Short(), owner.node.Self().ID.Short(), err)
		}
		if calls != 0 {
			t.Errorf("put of %s, owned here at %s: %d calls; want 0", pos.Short(), owner.node.Self().ID.Short(), calls)
		}
		if _, calls, err := m.svc.get(ctx, k); err != nil || calls != 0 {
			t.Errorf("get of %s, owned here at %s: %d calls, %v; want 0 calls and the record", pos.Short(), owner.node.Self().ID.Short(), calls, err)
		}
	}
	if n == 0 {
		t.Fatal("no key owned by a further position of the first node among 4000")
	}
}

// TestRequestsSkipPositionsStillJoining: a position a node has added but
// not joined yet (a move's first step, or a restart) is not where the
// node's requests start, although it is the local position nearest before
// the key: it has no tables to route with, and a GET started there found no
// owner and asked no one but this node. Every GET through the node finds
// records it does not hold.
func TestRequestsSkipPositionsStillJoining(t *testing.T) {
	r := newVRing(t, 4, 2)
	ctx := context.Background()
	m := r.members[0]
	n := 0
	for i := 0; n < 10 && i < 400; i++ {
		k := key(i)
		pos := chord.KeyPosition(k)
		if slices.Contains(r.window(pos, 3), m.addr) {
			continue // held here: the GET would find it in any case
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := r.members[1].svc.Put(pctx, k, value(i, 1), time.Hour, 3)
		cancel()
		if err != nil {
			t.Fatalf("Put(key-%d): %v", i, err)
		}
		// A position just before the key, added and not joined.
		before := pos
		for j := len(before) - 1; j >= 0; j-- {
			if before[j]--; before[j] != 0xff {
				break
			}
		}
		info := chord.NodeInfo{ID: before, Addr: m.addr}
		tr := r.net.Transport(info)
		joining, err := chord.New(testNodeConfig(), info, tr, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.net.ListenAt(info, joining)
		if err := m.svc.AddPosition(Position{Node: joining, Transport: tr}); err != nil {
			t.Fatal(err)
		}
		gctx, gcancel := context.WithTimeout(ctx, 10*time.Second)
		got, err := m.svc.Get(gctx, k)
		gcancel()
		if err != nil || !bytes.Equal(got, value(i, 1)) {
			t.Errorf("Get(key-%d) via %s, at a position still joining just before it = %q, %v; want the record", i, m.addr, got, err)
		}
		if err := m.svc.RemovePosition(ctx, joining); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no key among 400 held by none of the first node's positions")
	}
}

// TestDistinctAfterSkipsTheOwnersPositions: when the owner lacks a record,
// a GET asks the nodes after it, and those are other physical nodes: a
// further position of the owner, or a second one of a node already asked,
// answers from the same store.
func TestDistinctAfterSkipsTheOwnersPositions(t *testing.T) {
	at := func(b byte, addr string) chord.NodeInfo { return chord.NodeInfo{ID: chord.ID{b}, Addr: addr} }
	owner := at(0x10, "a")
	list := []chord.NodeInfo{at(0x20, "a"), at(0x30, "b"), at(0x40, "b"), at(0x50, "a"), at(0x60, "c"), at(0x05, "d")}
	got := distinctAfter(owner, 3, list)
	want := []chord.NodeInfo{at(0x30, "b"), at(0x60, "c"), at(0x05, "d")}
	if !slices.Equal(got, want) {
		t.Errorf("distinctAfter(%v) = %v; want %v", owner, got, want)
	}
	if got := distinctAfter(owner, 1, list); !slices.Equal(got, want[:1]) {
		t.Errorf("distinctAfter(%v, 1) = %v; want %v", owner, got, want[:1])
	}
}
