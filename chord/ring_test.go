package chord_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/chord/chordtest"
)

// memMeta is an in-memory chord.MetaStore.
type memMeta struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memMeta) Meta(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.m[key]), nil
}

func (s *memMeta) SetMeta(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string][]byte)
	}
	s.m[key] = slices.Clone(value)
	return nil
}

// cluster is a set of nodes on one in-memory network.
type cluster struct {
	t     *testing.T
	net   *chordtest.Network
	cfg   chord.Config
	nodes map[chord.ID]*member
}

type member struct {
	node *chord.Node
	meta *memMeta
	stop func()
}

func newCluster(t *testing.T, cfg chord.Config) *cluster {
	t.Helper()
	net, err := chordtest.New(chordtest.Config{Latency: time.Millisecond, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, net: net, cfg: cfg, nodes: make(map[chord.ID]*member)}
}

func testID(i int) chord.ID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return chord.ID(sha256.Sum256(b[:]))
}

// add creates a node (not yet joined) serving on the network.
func (c *cluster) add(id chord.ID, meta *memMeta) *chord.Node {
	c.t.Helper()
	info := chord.NodeInfo{ID: id, Addr: "n-" + id.Short()}
	if meta == nil {
		meta = &memMeta{}
	}
	n, err := chord.New(c.cfg, info, c.net.Transport(info), meta)
	if err != nil {
		c.t.Fatalf("New(%v) = %v", info, err)
	}
	c.net.Listen(info, n)
	c.nodes[id] = &member{node: n, meta: meta, stop: func() {}}
	return n
}

// run starts the node's loops; they stop at kill or test cleanup.
func (c *cluster) run(n *chord.Node) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Run(ctx); err != nil {
			c.t.Errorf("Run = %v; want nil", err)
		}
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	c.nodes[n.Self().ID].stop = stop
	c.t.Cleanup(stop)
}

// kill crashes a node: its loops stop and it becomes unreachable.
func (c *cluster) kill(id chord.ID) {
	m := c.nodes[id]
	c.net.Down(m.node.Self().Addr)
	m.stop()
	delete(c.nodes, id)
}

// start creates a ring of n nodes that join concurrently through the first.
func (c *cluster) start(n int) []*chord.Node {
	c.t.Helper()
	first := c.add(testID(0), nil)
	if err := first.Create(); err != nil {
		c.t.Fatal(err)
	}
	c.run(first)
	nodes := []*chord.Node{first}
	for i := 1; i < n; i++ {
		nodes = append(nodes, c.add(testID(i), nil))
	}
	var wg sync.WaitGroup
	for _, nd := range nodes[1:] {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := nd.Join(ctx, []string{first.Self().Addr}); err != nil {
				c.t.Errorf("Join(%v) = %v", nd.Self(), err)
			}
		})
	}
	wg.Wait()
	for _, nd := range nodes[1:] {
		c.run(nd)
	}
	return nodes
}

func (c *cluster) live() []*chord.Node {
	var out []*chord.Node
	for _, m := range c.nodes {
		out = append(out, m.node)
	}
	slices.SortFunc(out, func(a, b *chord.Node) int { return a.Self().ID.Cmp(b.Self().ID) })
	return out
}

// owner returns the true successor of id among ring (sorted by ID).
func owner(ring []*chord.Node, id chord.ID) *chord.Node {
	i, _ := slices.BinarySearchFunc(ring, id, func(n *chord.Node, id chord.ID) int { return n.Self().ID.Cmp(id) })
	return ring[i%len(ring)]
}

// checkRing compares every node's predecessor, successor list and fingers
// with the truth computed from the sorted IDs.
func checkRing(ring []*chord.Node, listLen int) error {
	n := len(ring)
	for i, nd := range ring {
		self := nd.Self()
		if n == 1 {
			continue
		}
		wantPred := ring[(i-1+n)%n].Self()
		if p, ok := nd.Predecessor(); !ok || p != wantPred {
			return fmt.Errorf("node %d %v: predecessor = %v (known %v); want %v", i, self, p, ok, wantPred)
		}
		succs := nd.Successors()
		want := min(listLen, n-1)
		if len(succs) != want {
			return fmt.Errorf("node %d %v: %d successors %v; want %d", i, self, len(succs), succs, want)
		}
		for k, s := range succs {
			if w := ring[(i+1+k)%n].Self(); s != w {
				return fmt.Errorf("node %d %v: successor %d = %v; want %v", i, self, k, s, w)
			}
		}
		var distinct []chord.NodeInfo
		for k, f := range nd.Fingers() {
			if w := owner(ring, self.ID.AddPow2(k)).Self(); f != w {
				return fmt.Errorf("node %d %v: finger %d = %v; want %v", i, self, k, f, w)
			}
			if f != self && !slices.Contains(distinct, f) {
				distinct = append(distinct, f)
			}
		}
		if got := nd.DistinctFingers(); !slices.Equal(got, distinct) {
			return fmt.Errorf("node %d %v: distinct fingers %v; want %v", i, self, got, distinct)
		}
	}
	return nil
}

// waitFor advances virtual time (inside a synctest bubble) a second at a time
// until cond holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %v of virtual time: %v", what, limit, err)
		}
		time.Sleep(time.Second) // virtual time: lets the nodes' rounds run
	}
}

// checkLookups looks up random identifiers from random nodes and compares the
// owners with the truth.
func checkLookups(t *testing.T, ring []*chord.Node, count int, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed))
	for range count {
		var id chord.ID
		for i := range id {
			id[i] = byte(rng.UintN(256))
		}
		from := ring[rng.IntN(len(ring))]
		res, err := from.Lookup(context.Background(), id)
		if err != nil {
			t.Fatalf("Lookup(%s) from %v = %v", id.Short(), from.Self(), err)
		}
		if want := owner(ring, id).Self(); res.Owner != want {
			t.Fatalf("Lookup(%s) from %v = %v; want %v", id.Short(), from.Self(), res.Owner, want)
		}
	}
}

func testConfig() chord.Config {
	cfg := chord.DefaultConfig()
	cfg.StabilizeInterval = time.Second
	cfg.FixFingersInterval = 500 * time.Millisecond
	cfg.CheckPredecessorInterval = time.Second
	cfg.ProbeInterval = 2 * time.Second
	return cfg
}

func TestConcurrentJoin64(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(64)
		waitFor(t, 10*time.Minute, "correct ring of 64", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		checkLookups(t, c.live(), 500, 1)
		for _, n := range c.live() {
			if !n.Ready() {
				t.Fatalf("%v.Ready() = false in a converged ring", n.Self())
			}
		}
	})
}

func TestHalfFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.SuccessorListLen = 12
		c := newCluster(t, cfg)
		c.start(64)
		waitFor(t, 10*time.Minute, "correct ring of 64", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		rng := rand.New(rand.NewPCG(7, 7))
		ring := c.live()
		rng.Shuffle(len(ring), func(i, j int) { ring[i], ring[j] = ring[j], ring[i] })
		for _, n := range ring[:32] {
			c.kill(n.Self().ID)
		}
		waitFor(t, 10*time.Minute, "correct ring of the 32 survivors", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		checkLookups(t, c.live(), 500, 2)
	})
}

func TestPartitionHeal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(64)
		waitFor(t, 10*time.Minute, "correct ring of 64", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		ring := c.live()
		rng := rand.New(rand.NewPCG(3, 3))
		rng.Shuffle(len(ring), func(i, j int) { ring[i], ring[j] = ring[j], ring[i] })
		half := [2][]*chord.Node{ring[:32], ring[32:]}
		var addrs [2][]string
		for g := range half {
			slices.SortFunc(half[g], func(a, b *chord.Node) int { return a.Self().ID.Cmp(b.Self().ID) })
			for _, n := range half[g] {
				addrs[g] = append(addrs[g], n.Self().Addr)
			}
		}
		c.net.Partition(addrs[0], addrs[1])
		waitFor(t, 10*time.Minute, "two correct rings during the partition", func() error {
			for g := range half {
				if err := checkRing(half[g], cfg.SuccessorListLen); err != nil {
					return fmt.Errorf("half %d: %w", g, err)
				}
			}
			return nil
		})
		c.net.Heal()
		waitFor(t, 10*time.Minute, "one correct ring after healing", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		checkLookups(t, c.live(), 300, 3)
	})
}

func TestRestartRejoinsFromMeta(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(16)
		waitFor(t, 5*time.Minute, "correct ring of 16", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		victim := c.live()[5]
		id, meta := victim.Self().ID, c.nodes[victim.Self().ID].meta
		c.kill(id)
		waitFor(t, 5*time.Minute, "correct ring of 15", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })

		again := c.add(id, meta)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := again.Rejoin(ctx); err != nil {
			t.Fatalf("Rejoin() = %v; want nil", err)
		}
		c.run(again)
		waitFor(t, 5*time.Minute, "correct ring of 16 after restart", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })

		// A quick restart, before the others noticed: the ring still lists
		// the node, and it must find its successor rather than itself.
		victim = c.live()[9]
		id, meta = victim.Self().ID, c.nodes[victim.Self().ID].meta
		c.kill(id)
		again = c.add(id, meta)
		if err := again.Rejoin(ctx); err != nil {
			t.Fatalf("quick Rejoin() = %v; want nil", err)
		}
		c.run(again)
		waitFor(t, 5*time.Minute, "correct ring of 16 after a quick restart", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })

		fresh := c.add(testID(1000), nil)
		if err := fresh.Rejoin(ctx); !errors.Is(err, chord.ErrNoPeers) {
			t.Fatalf("Rejoin() with empty meta = %v; want %v", err, chord.ErrNoPeers)
		}
	})
}

func TestLeave(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(8)
		waitFor(t, 5*time.Minute, "correct ring of 8", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		ring := c.live()
		leaver, pred, succ := ring[3], ring[2], ring[4]
		var handed bool
		leaver.BeforeLeave(func(context.Context) error { handed = true; return nil })
		var changes int
		succ.OnChange(func(chord.Change) { changes++ })
		c.nodes[leaver.Self().ID].stop()
		if err := leaver.Leave(context.Background()); err != nil {
			t.Fatalf("Leave() = %v; want nil", err)
		}
		if !handed {
			t.Fatal("Leave did not call the BeforeLeave hook")
		}
		// Without waiting for any round, the neighbours know.
		if got := pred.Successors()[0]; got != succ.Self() {
			t.Fatalf("predecessor's successor after leave = %v; want %v", got, succ.Self())
		}
		if got, _ := succ.Predecessor(); got != pred.Self() {
			t.Fatalf("successor's predecessor after leave = %v; want %v", got, pred.Self())
		}
		if changes == 0 {
			t.Fatal("OnChange not called on the successor")
		}
		if _, err := leaver.ServeRPC(context.Background(), pred.Self().ID, "chord.ping", nil); !errors.Is(err, chord.ErrShuttingDown) {
			t.Fatalf("ServeRPC after Leave = %v; want %v", err, chord.ErrShuttingDown)
		}
		delete(c.nodes, leaver.Self().ID)
		waitFor(t, 5*time.Minute, "correct ring of 7", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
	})
}

func TestWalk(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(12)
		waitFor(t, 5*time.Minute, "correct ring of 12", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		ring := c.live()
		ring[0].SetReport(func() chord.Report {
			return chord.Report{Records: chord.RecordCounts{Primary: 3, Replica: 4}, Requests: 9, Admin: "127.0.0.1:7410"}
		})
		start := ring[5]
		sts, err := start.Walk(context.Background(), 100)
		if err != nil {
			t.Fatalf("Walk() = %v", err)
		}
		if len(sts) != len(ring) {
			t.Fatalf("Walk() gave %d nodes; want %d", len(sts), len(ring))
		}
		for i, st := range sts {
			want := ring[(5+i)%len(ring)]
			if st.ID != want.Self().ID || !st.Ready {
				t.Fatalf("Walk()[%d] = %s (ready %v); want %s ready", i, st.ID.Short(), st.Ready, want.Self().ID.Short())
			}
		}
		if got := sts[len(ring)-5]; got.Records != (chord.RecordCounts{Primary: 3, Replica: 4}) || got.Requests != 9 || got.Admin != "127.0.0.1:7410" {
			t.Fatalf("Walk() of node 0: records %+v, requests %d, admin %q; want {3 4}, 9, 127.0.0.1:7410", got.Records, got.Requests, got.Admin)
		}
		if sts, err := start.Walk(context.Background(), 3); err != nil || len(sts) != 3 {
			t.Fatalf("Walk(3) = %d statuses, %v; want 3, nil", len(sts), err)
		}
	})
}
