package chord_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/durachord/durachord/chord"
)

// logBuf collects one node's log lines; safe for the node's goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// addLogged is cluster.add with the node's log lines (INFO and above) kept
// in the returned buffer.
func (c *cluster) addLogged(id chord.ID, meta *memMeta) (*chord.Node, *logBuf) {
	c.t.Helper()
	return c.addLoggedWith(c.cfg, id, meta)
}

// addLoggedWith is addLogged with the node's own configuration.
func (c *cluster) addLoggedWith(cfg chord.Config, id chord.ID, meta *memMeta) (*chord.Node, *logBuf) {
	c.t.Helper()
	out := &logBuf{}
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: out, Level: hclog.Info})
	info := chord.NodeInfo{ID: id, Addr: "n-" + id.Short()}
	if meta == nil {
		meta = &memMeta{}
	}
	n, err := chord.New(cfg, info, c.net.Transport(info), meta)
	if err != nil {
		c.t.Fatalf("New(%v) = %v", info, err)
	}
	c.net.Listen(info, n)
	c.nodes[id] = &member{node: n, meta: meta, stop: func() {}}
	return n, out
}

// restartAll crashes every node of a converged ring and builds them again,
// not joined, on their saved peers, each with the configuration cfgOf gives
// its rank by ID (nil: the cluster's). They are returned sorted by ID with
// their logs.
func (c *cluster) restartAll(cfgOf func(rank int) chord.Config) ([]*chord.Node, []*logBuf) {
	c.t.Helper()
	// A few stabilise rounds more, so that every node saved the peers of
	// the converged ring.
	time.Sleep(5 * c.cfg.StabilizeInterval)
	old := c.live()
	metas := make([]*memMeta, len(old))
	for i, n := range old {
		metas[i] = c.nodes[n.Self().ID].meta
		c.kill(n.Self().ID)
	}
	nodes := make([]*chord.Node, len(old))
	logs := make([]*logBuf, len(old))
	for i, n := range old {
		cfg := c.cfg
		if cfgOf != nil {
			cfg = cfgOf(i)
		}
		nodes[i], logs[i] = c.addLoggedWith(cfg, n.Self().ID, metas[i])
	}
	return nodes, logs
}

// startAll runs Start on every node at once and returns when all have
// returned, with each one's error.
func startAll(ctx context.Context, nodes []*chord.Node, bootstrap []string) []error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = n.Start(ctx, bootstrap) })
	}
	wg.Wait()
	return errs
}

// TestStartCreatesWithoutPeers: a node with no bootstrap address and no
// saved peers starts a new ring, and a second node given its address as
// bootstrap joins it: the two form one correct ring.
func TestStartCreatesWithoutPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		ctx := context.Background()
		first, firstLog := c.addLogged(testID(0), nil)
		if err := first.Start(ctx, nil); err != nil {
			t.Fatalf("Start(no bootstrap, no saved peers) = %v; want nil", err)
		}
		if !strings.Contains(firstLog.String(), "starting a new ring") || !first.Ready() {
			t.Fatalf("first node did not start a ring (ready %v):\n%s", first.Ready(), firstLog.String())
		}
		second, secondLog := c.addLogged(testID(1), nil)
		if err := second.Start(ctx, []string{first.Self().Addr}); err != nil {
			t.Fatalf("Start(bootstrap %s) = %v; want nil", first.Self().Addr, err)
		}
		if s := secondLog.String(); !strings.Contains(s, "joined ring") || strings.Contains(s, "created ring") {
			t.Fatalf("second node did not join through the bootstrap:\n%s", s)
		}
		c.run(first)
		c.run(second)
		waitFor(t, time.Minute, "correct ring of 2", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
	})
}

// TestStartRetriesBootstrap: a bootstrap peer that is down when Start begins
// is retried with a backoff doubling from 200 ms, and the node joins through
// it at the first attempt after it comes up.
func TestStartRetriesBootstrap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		ctx := context.Background()
		seed, _ := c.addLogged(testID(0), nil)
		if err := seed.Create(); err != nil {
			t.Fatal(err)
		}
		c.run(seed)
		addr := seed.Self().Addr
		c.net.Down(addr)
		const downFor = 2 * time.Second
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			time.Sleep(downFor)
			c.net.Up(addr)
		})
		n, log := c.addLogged(testID(1), nil)
		began := time.Now()
		if err := n.Start(ctx, []string{addr}); err != nil {
			t.Fatalf("Start(bootstrap down for %v) = %v; want nil", downFor, err)
		}
		// Attempts at 0, 0.2, 0.6, 1.4 s fail; the one at 3 s succeeds.
		if took := time.Since(began); took < downFor || took > downFor+1600*time.Millisecond+cfg.CallTimeout {
			t.Errorf("Start took %v with the bootstrap down for %v; want the first attempt after it came up", took, downFor)
		}
		s := log.String()
		for _, retry := range []string{"retry-in=200ms", "retry-in=400ms", "retry-in=800ms", "retry-in=1.6s"} {
			if !strings.Contains(s, retry) {
				t.Errorf("log has no %q:\n%s", retry, s)
			}
		}
		if strings.Contains(s, "created ring") || !strings.Contains(s, "joined ring") {
			t.Errorf("node did not join through the bootstrap:\n%s", s)
		}
		c.run(n)
		waitFor(t, time.Minute, "correct ring of 2", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
	})
}

// TestStartRejoinsSavedPeers: a node restarted without bootstrap addresses,
// whose saved peers are up, rejoins through them rather than starting a
// ring, and the ring is whole again.
func TestStartRejoinsSavedPeers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(6)
		waitFor(t, 5*time.Minute, "correct ring of 6", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		victim := c.live()[2]
		id, meta := victim.Self().ID, c.nodes[victim.Self().ID].meta
		c.kill(id)
		waitFor(t, 5*time.Minute, "correct ring of 5", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })

		again, log := c.addLogged(id, meta)
		if err := again.Start(context.Background(), nil); err != nil {
			t.Fatalf("Start(saved peers up) = %v; want nil", err)
		}
		if s := log.String(); !strings.Contains(s, "joined ring") || strings.Contains(s, "created ring") {
			t.Fatalf("restarted node did not rejoin through its saved peers:\n%s", s)
		}
		c.run(again)
		waitFor(t, 5*time.Minute, "correct ring of 6 after the restart", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
	})
}

// TestStartWholeRingRestart: every node of a ring restarts at once on its
// saved peers, none of them joined yet. Exactly one ring forms: the node
// with the lowest ID creates it, within the grace, and every other node
// joins it; successor lists and lookups from every node agree.
func TestStartWholeRingRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(8)
		waitFor(t, 5*time.Minute, "correct ring of 8", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		nodes, logs := c.restartAll(nil)

		for i, err := range startAll(context.Background(), nodes, nil) {
			if err != nil {
				t.Fatalf("Start(%v) in a whole-ring restart = %v; want nil", nodes[i].Self(), err)
			}
		}
		for i, n := range nodes {
			s := logs[i].String()
			created := strings.Contains(s, "created ring")
			if created != (i == 0) {
				t.Errorf("%v (rank %d by ID) created a ring: %v; want only the lowest ID to:\n%s", n.Self(), i, created, s)
			}
			if strings.Contains(s, "answered in time") {
				t.Errorf("%v waited out the grace in a whole-ring restart:\n%s", n.Self(), s)
			}
		}
		if !strings.Contains(logs[0].String(), "this node has the lowest ID") {
			t.Errorf("the lowest node's log does not say why it started the ring:\n%s", logs[0].String())
		}
		for _, n := range nodes {
			c.run(n)
		}
		waitFor(t, 5*time.Minute, "one correct ring of 8 after the restart", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		checkLookups(t, c.live(), 200, 7)
	})
}

// TestStartGraceThenMerge: a restarted node whose saved peers never answer
// (a partition hides them; they restarted and formed their ring) keeps
// retrying for the grace, then starts a ring of its own; once the partition
// heals, its probe round, asking the saved peers it remembered, merges it
// into their ring (the others remember no peer, so the merge is its doing).
func TestStartGraceThenMerge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(4)
		waitFor(t, 5*time.Minute, "correct ring of 4", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		nodes, logs := c.restartAll(func(rank int) chord.Config {
			cfg := c.cfg
			if rank < 3 {
				cfg.RememberSize = 0
			}
			return cfg
		})
		// The highest node is cut off from the others: not the lowest of
		// its saved peers, it can only wait out the grace.
		lone, lonelog, rest := nodes[len(nodes)-1], logs[len(logs)-1], nodes[:len(nodes)-1]
		var restAddrs []string
		for _, n := range rest {
			restAddrs = append(restAddrs, n.Self().Addr)
		}
		c.net.Partition([]string{lone.Self().Addr}, restAddrs)

		ctx := context.Background()
		var wg sync.WaitGroup
		var loneErr error
		var loneTook time.Duration
		wg.Go(func() {
			began := time.Now()
			loneErr = lone.Start(ctx, nil)
			loneTook = time.Since(began)
		})
		restErrs := startAll(ctx, rest, nil)
		wg.Wait()
		for i, err := range restErrs {
			if err != nil {
				t.Fatalf("Start(%v) = %v; want nil", rest[i].Self(), err)
			}
		}
		if loneErr != nil {
			t.Fatalf("Start(saved peers unreachable) = %v; want nil after the grace", loneErr)
		}
		const grace = 30 * time.Second // chord's rejoinGrace
		if loneTook < grace || loneTook > grace+5*time.Second+cfg.LookupTimeout+cfg.CallTimeout {
			t.Errorf("Start with unreachable saved peers took %v; want the grace %v and at most one more attempt", loneTook, grace)
		}
		s := lonelog.String()
		if !strings.Contains(s, "no remembered peer answered in time") || !strings.Contains(s, "created ring") {
			t.Fatalf("cut-off node did not start its own ring after the grace:\n%s", s)
		}
		if !strings.Contains(s, "retry-in=5s") || strings.Contains(s, "retry-in=10s") {
			t.Errorf("backoff not capped at 5 s:\n%s", s)
		}
		for _, n := range nodes {
			c.run(n)
		}
		waitFor(t, 5*time.Minute, "two rings during the partition", func() error {
			if err := checkRing(rest, cfg.SuccessorListLen); err != nil {
				return fmt.Errorf("the others: %w", err)
			}
			if got := lone.Successors(); len(got) != 1 || got[0] != lone.Self() {
				return fmt.Errorf("cut-off node's successors = %v; want only itself", got)
			}
			return nil
		})
		c.net.Heal()
		waitFor(t, 10*time.Minute, "one correct ring after healing", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		checkLookups(t, c.live(), 100, 9)
	})
}

// TestStartCancelled: Start that keeps failing (its bootstrap peer never
// answers) returns ctx's error as soon as ctx is cancelled, and the node
// stays out of any ring.
func TestStartCancelled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newCluster(t, testConfig())
		n, _ := c.addLogged(testID(0), nil)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		const after = 7 * time.Second
		var wg sync.WaitGroup
		defer wg.Wait()
		wg.Go(func() {
			time.Sleep(after)
			cancel()
		})
		began := time.Now()
		err := n.Start(ctx, []string{"n-nobody"})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Start(bootstrap that never answers) after cancel = %v; want %v", err, context.Canceled)
		}
		if took := time.Since(began); took != after {
			t.Errorf("Start returned %v after it began; want at the cancel, %v", took, after)
		}
		if n.Ready() {
			t.Error("node is ready after a cancelled Start; want it out of any ring")
		}
	})
}

// TestLowestOfAll: the whole-ring restart rule of a process at several
// positions, on the peers a converged ring saved: positions that include
// the lowest ID start the ring; any others, alone or together, do not.
func TestLowestOfAll(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(8)
		waitFor(t, 5*time.Minute, "correct ring of 8", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		nodes, _ := c.restartAll(nil) // sorted by ID, not joined, on their saved peers
		for _, tc := range []struct {
			ranks []int
			want  bool
		}{
			{[]int{0}, true},
			{[]int{1}, false},
			{[]int{3, 0}, true}, // the lowest need not come first
			{[]int{7, 4, 0}, true},
			{[]int{2, 3}, false},
			{[]int{7, 1}, false},
		} {
			var ps []*chord.Node
			for _, r := range tc.ranks {
				ps = append(ps, nodes[r])
			}
			got, err := chord.LowestOfAll(ps)
			if err != nil || got != tc.want {
				t.Errorf("LowestOfAll(ranks %v) = %v, %v; want %v", tc.ranks, got, err, tc.want)
			}
		}
	})
}

// TestRestartedNodeJoinsThroughItsPredecessor: a node restarts before the
// ring has noticed that it was down, so its predecessor still names it (its
// earlier run, now answering "not ready") as its successor. A join through
// that predecessor alone finds the node after it: the predecessor's answer
// offers only the joining node's own ID as a closer node, which the walk
// then asks the ring to route around. Further positions of a restarted
// process join so, through a position 0 whose tables still name them.
func TestRestartedNodeJoinsThroughItsPredecessor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		c := newCluster(t, cfg)
		c.start(12)
		waitFor(t, 5*time.Minute, "correct ring of 12", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
		ring := c.live()
		victim, pred, next := ring[5].Self(), ring[4].Self(), ring[6].Self()
		meta := c.nodes[victim.ID].meta
		c.kill(victim.ID)
		again, _ := c.addLogged(victim.ID, meta) // at once: the ring still lists it
		c.net.Up(victim.Addr)
		if got := ring[4].Successors(); len(got) == 0 || got[0] != victim {
			t.Fatalf("predecessor's successors = %v; want the restarted node first", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := again.JoinThrough(ctx, []chord.NodeInfo{pred}); err != nil {
			t.Fatalf("JoinThrough(its predecessor) = %v; want the node after it found", err)
		}
		if got := again.Successors(); len(got) == 0 || got[0] != next {
			t.Fatalf("successors after the join = %v; want %v first", got, next)
		}
		c.run(again)
		waitFor(t, 5*time.Minute, "correct ring of 12 after the restart", func() error { return checkRing(c.live(), cfg.SuccessorListLen) })
	})
}
