package dht

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/chord/chordtest"
	"github.com/durachord/durachord/store"
	"github.com/durachord/durachord/store/storetest"
)

// member is one node of a test ring: overlay, store and records layer.
type member struct {
	info chord.NodeInfo
	node *chord.Node
	db   *store.Store
	svc  *Service
	stop context.CancelFunc
	done chan struct{}
}

type ring struct {
	t       testing.TB
	net     *chordtest.Network
	members []*member
	seq     int
	// tune, if set, adjusts each member's records-layer config before the
	// member starts. By default periodic maintenance runs hourly: tests
	// that do not run the members' loops call Maintain themselves.
	tune func(*Config)
	// lying is set by tests with a member that lies: honest members may
	// then suspect it.
	lying bool
}

func newRing(t testing.TB, n int) *ring {
	t.Helper()
	return newRingTuned(t, n, nil)
}

// newRingMaintained starts n members whose periodic maintenance runs every
// maintain (when their loops run).
func newRingMaintained(t testing.TB, n int, maintain time.Duration) *ring {
	t.Helper()
	return newRingTuned(t, n, func(c *Config) { c.MaintainInterval = maintain })
}

// newRingTuned starts n members whose records-layer config tune adjusts.
func newRingTuned(t testing.TB, n int, tune func(*Config)) *ring {
	t.Helper()
	return newRingOn(t, n, chordtest.Config{}, tune)
}

// newRingOn is newRingTuned on a network configured by netCfg.
func newRingOn(t testing.TB, n int, netCfg chordtest.Config, tune func(*Config)) *ring {
	t.Helper()
	net, err := chordtest.New(netCfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &ring{t: t, net: net, tune: tune}
	for i := range n {
		r.add(i > 0)
	}
	r.waitStable()
	// Without a liar nobody loses what it acknowledged: a suspicion among
	// honest members is a false one.
	t.Cleanup(func() {
		if r.lying {
			return
		}
		for _, m := range r.members {
			if sus := m.svc.suspects.current(); len(sus) > 0 {
				t.Errorf("%v suspects %v on a ring without a liar", m.info, sus)
			}
		}
	})
	return r
}

// add starts a node and joins it through the first live member.
func (r *ring) add(join bool) *member {
	t := r.t
	t.Helper()
	r.seq++
	info := chord.NodeInfo{ID: chord.KeyPosition([32]byte{byte(r.seq), 0xd4}), Addr: fmt.Sprintf("node-%d", r.seq)}
	ncfg := testNodeConfig()
	db := storetest.OpenTemp(t)
	tr := r.net.Transport(info)
	node, err := chord.New(ncfg, info, tr, db)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.MaintainInterval = time.Hour
	cfg.SweepInterval = time.Hour
	cfg.RepairRate = 1 << 20
	cfg.CallTimeout = 500 * time.Millisecond
	if r.tune != nil {
		r.tune(&cfg)
	}
	if os.Getenv("DHT_TEST_LOG") != "" {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: info.Addr, Level: hclog.LevelFromString(os.Getenv("DHT_TEST_LOG"))})
	}
	svc, err := New(cfg, node, tr, db)
	if err != nil {
		t.Fatal(err)
	}
	node.BeforeLeave(svc.HandOff)
	// Before this store is checked and closed: every member's pushes,
	// not only this one's, may write to it.
	t.Cleanup(r.quiesce)
	r.net.Listen(info, node)
	m := &member{info: info, node: node, db: db, svc: svc, done: make(chan struct{})}
	if !join {
		if err := node.Create(); err != nil {
			t.Fatal(err)
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := node.Join(ctx, []string{r.live()[0].info.Addr}); err != nil {
			t.Fatalf("join %v: %v", info, err)
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	m.stop = stop
	go func() {
		defer close(m.done)
		_ = node.Run(ctx)
	}()
	t.Cleanup(m.halt)
	r.members = append(r.members, m)
	return m
}

// testNodeConfig is the ring config of test members: fast rounds.
func testNodeConfig() chord.Config {
	ncfg := chord.DefaultConfig()
	ncfg.StabilizeInterval = 10 * time.Millisecond
	ncfg.FixFingersInterval = 10 * time.Millisecond
	ncfg.CheckPredecessorInterval = 20 * time.Millisecond
	ncfg.ProbeInterval = 50 * time.Millisecond
	ncfg.CallTimeout = 500 * time.Millisecond
	ncfg.LookupTimeout = 2 * time.Second
	return ncfg
}

func (m *member) halt() {
	m.stop()
	<-m.done
}

func (r *ring) live() []*member {
	var out []*member
	for _, m := range r.members {
		select {
		case <-m.done:
		default:
			out = append(out, m)
		}
	}
	return out
}

// kill stops a member without a word to anyone: a crash.
func (r *ring) kill(m *member) {
	r.net.Down(m.info.Addr)
	m.halt()
}

// newFrozenRing starts n members, stores k = v with replication repl through
// the first, and freezes the ring.
func newFrozenRing(t testing.TB, n int, k [32]byte, v []byte, repl uint8) *ring {
	t.Helper()
	r := newRing(t, n)
	if err := r.members[0].svc.Put(context.Background(), k, v, time.Hour, repl); err != nil {
		t.Fatalf("Put(%x) = %v; want nil", k, err)
	}
	r.quiesce()
	r.freeze()
	return r
}

// freeze stops every member's ring maintenance; the members still answer
// calls. The ring's views stay as they are: a member taken down stays named
// as owner and as successor by the others. No member counts as live after
// it, so tests use r.members.
func (r *ring) freeze() {
	for _, m := range r.members {
		m.halt()
		// Its views no longer change: it counts as in sync with its
		// holders, as a node whose rounds have run.
		m.svc.fresh.synced.Store(m.svc.fresh.gen.Load())
	}
}

// quiesce waits until no member has a replica push in flight: the pushes
// that go on after a PUT was acknowledged have all landed (or failed).
func (r *ring) quiesce() {
	for _, m := range r.members {
		m.svc.Wait()
	}
}

// member returns the member with id.
func (r *ring) member(id chord.ID) *member {
	r.t.Helper()
	for _, m := range r.members {
		if m.info.ID == id {
			return m
		}
	}
	r.t.Fatalf("no member %v", id.Short())
	return nil
}

// placement returns the owner of k and, as the owner sees them, the replica
// holders of a record of k with replication repl.
func (r *ring) placement(k [32]byte, repl int) (owner *member, hs []*member) {
	r.t.Helper()
	pos := chord.KeyPosition(k)
	for _, m := range r.members {
		if m.node.Owns(pos) {
			owner = m
		}
	}
	if owner == nil {
		r.t.Fatalf("no member owns %v", pos.Short())
	}
	for _, h := range holders(owner.info, owner.node.Successors(), repl) {
		hs = append(hs, r.member(h.ID))
	}
	return owner, hs
}

// bystanders returns the members other than the owner of k that hold no
// copy of it: their reads of k go over the network.
func (r *ring) bystanders(k [32]byte) []*member {
	pos := chord.KeyPosition(k)
	var out []*member
	for _, m := range r.members {
		if _, err := m.db.Get(k); errors.Is(err, store.ErrNotFound) && !m.node.Owns(pos) {
			out = append(out, m)
		}
	}
	return out
}

// waitStable polls until every live member's predecessor and whole
// successor list are its true neighbours.
func (r *ring) waitStable() {
	r.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !r.stable() {
		if time.Now().After(deadline) {
			r.t.Fatal("ring did not stabilise within 30s")
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a wait for an event
	}
}

func (r *ring) stable() bool {
	live := r.live()
	ids := make([]chord.ID, len(live))
	for i, m := range live {
		ids[i] = m.info.ID
	}
	slices.SortFunc(ids, func(a, b chord.ID) int { return a.Cmp(b) })
	n := len(ids)
	for _, m := range live {
		i, _ := slices.BinarySearchFunc(ids, m.info.ID, func(a, b chord.ID) int { return a.Cmp(b) })
		pred, hasPred := m.node.Predecessor()
		if n > 1 && (!hasPred || pred.ID != ids[(i+n-1)%n]) {
			return false
		}
		succ := m.node.Successors()
		want := min(chord.DefaultConfig().SuccessorListLen, n-1)
		if len(succ) < want {
			return false
		}
		for j := range want {
			if succ[j].ID != ids[(i+1+j)%n] {
				return false
			}
		}
	}
	return true
}

// settle runs maintenance rounds on every live member until a round moves
// nothing, at most a few times.
func (r *ring) settle() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 4 {
		for _, m := range r.live() {
			if err := m.svc.Maintain(ctx); err != nil {
				r.t.Logf("maintain %v: %v", m.info, err)
			}
		}
	}
}

func key(i int) [32]byte {
	var k [32]byte
	copy(k[:], fmt.Sprintf("key-%d", i))
	return k
}

// ownedBy returns the first of key(0), key(1), ... that m owns.
func ownedBy(m *member) [32]byte {
	for i := 0; ; i++ {
		if k := key(i); m.node.Owns(chord.KeyPosition(k)) {
			return k
		}
	}
}

func value(i, gen int) []byte { return []byte(fmt.Sprintf("value-%d-gen-%d", i, gen)) }

// putAll puts n records through the live members in turn.
func (r *ring) putAll(n, gen int, repl uint8) {
	r.t.Helper()
	live := r.live()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := live[i%len(live)].svc.Put(ctx, key(i), value(i, gen), time.Hour, repl); err != nil {
				errs <- fmt.Errorf("put %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		r.t.Error(err)
	}
	r.quiesce()
}

// checkAll reads every record through every live member.
func (r *ring) checkAll(n, gen int) {
	r.t.Helper()
	for _, m := range r.live() {
		for i := range n {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			got, err := m.svc.Get(ctx, key(i))
			cancel()
			if err != nil || !bytes.Equal(got, value(i, gen)) {
				r.t.Fatalf("Get(key-%d) via %v = %q, %v; want %q", i, m.info, got, err, value(i, gen))
			}
		}
	}
}

// copies counts the live members whose store holds key i, and the primaries.
func (r *ring) copies(i int) (holders, primaries int) {
	for _, m := range r.live() {
		rec, err := m.db.Get(key(i))
		if err == nil {
			holders++
			if rec.Primary {
				primaries++
			}
		}
	}
	return holders, primaries
}

func (r *ring) checkCopies(n, want int) {
	r.t.Helper()
	for i := range n {
		if h, p := r.copies(i); h != want || p != 1 {
			pos := chord.KeyPosition(key(i))
			for _, m := range r.live() {
				rec, err := m.db.Get(key(i))
				r.t.Logf("%v owns=%v has=%v primary=%v succs=%v", m.info, m.node.Owns(pos), err == nil, rec.Primary, m.node.Successors())
			}
			r.t.Fatalf("key-%d: %d holders, %d primaries; want %d holders, 1 primary", i, h, p, want)
		}
	}
}

func TestPutGetReplicated(t *testing.T) {
	r := newRing(t, 6)
	r.putAll(200, 1, 3)
	r.checkAll(200, 1)
	r.checkCopies(200, 3)
	// Maintenance on a settled ring moves nothing and changes nothing.
	r.settle()
	r.checkCopies(200, 3)
}

func TestOverwriteWinsEverywhere(t *testing.T) {
	r := newRing(t, 5)
	r.putAll(50, 1, 3)
	r.putAll(50, 2, 3)
	r.checkAll(50, 2)
	for i := range 50 {
		for _, m := range r.live() {
			if rec, err := m.db.Get(key(i)); err == nil && !bytes.Equal(rec.Value, value(i, 2)) {
				t.Fatalf("key-%d on %v holds %q; want the overwrite", i, m.info, rec.Value)
			}
		}
	}
}

func TestReplicationClamped(t *testing.T) {
	r := newRing(t, 3)
	ctx := context.Background()
	m := r.live()[0]
	if err := m.svc.Put(ctx, key(1), value(1, 1), time.Hour, 0); err != nil {
		t.Fatal(err)
	}
	if err := m.svc.Put(ctx, key(2), value(2, 1), time.Hour, 255); err != nil {
		t.Fatal(err)
	}
	r.quiesce()
	if h, _ := r.copies(1); h != 3 {
		t.Errorf("replication 0 (default 3) on 3 nodes: %d holders; want 3", h)
	}
	if h, _ := r.copies(2); h != 3 {
		t.Errorf("replication 255 on 3 nodes: %d holders; want 3 (ring size)", h)
	}
	for _, m := range r.live() {
		if rec, err := m.db.Get(key(2)); err == nil && rec.Replication != 8 {
			t.Errorf("record keeps replication %d; want the configured maximum 8", rec.Replication)
		}
	}
}

// TestReplicationDefaultAndMaximum runs on a ring larger than both the
// default and the maximum replication, so that the two cannot be mistaken for
// each other or for the ring size: replication 0 means the default, a count
// above the maximum is cut to it, and each record keeps the count it got.
func TestReplicationDefaultAndMaximum(t *testing.T) {
	const nodes, def, maxRepl = 7, 2, 5
	r := newRingTuned(t, nodes, func(c *Config) {
		c.DefaultReplication = def
		c.MaxReplication = maxRepl
	})
	ctx := context.Background()
	for i, tc := range []struct {
		name string
		repl uint8
		want int
	}{
		{"zero means the default", 0, def},
		{"one", 1, 1},
		{"between default and maximum", 4, 4},
		{"the maximum", maxRepl, maxRepl},
		{"above the maximum", maxRepl + 1, maxRepl},
		{"largest on the wire", 255, maxRepl},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := key(i)
			m := r.live()[i%nodes]
			if err := m.svc.Put(ctx, k, value(i, 1), time.Hour, tc.repl); err != nil {
				t.Fatalf("Put(%x, replication %d) = %v; want nil", k, tc.repl, err)
			}
			r.quiesce()
			if h, _ := r.copies(i); h != tc.want {
				t.Errorf("Put(%x, replication %d) on %d nodes: %d holders; want %d", k, tc.repl, nodes, h, tc.want)
			}
			for _, m := range r.live() {
				if rec, err := m.db.Get(k); err == nil && int(rec.Replication) != tc.want {
					t.Errorf("Put(%x, replication %d): %v keeps replication %d; want %d", k, tc.repl, m.info, rec.Replication, tc.want)
				}
			}
		})
	}
}

func TestCrashOfTwoNodesLosesNothing(t *testing.T) {
	r := newRing(t, 8)
	r.putAll(300, 1, 3)
	// Two neighbours crash: for some records, the owner and a replica.
	live := r.live()
	slices.SortFunc(live, func(a, b *member) int { return a.info.ID.Cmp(b.info.ID) })
	r.kill(live[2])
	r.kill(live[3])
	r.checkAll(300, 1) // readable at once, before the ring has healed
	r.waitStable()
	r.settle()
	r.checkAll(300, 1)
	r.checkCopies(300, 3)
}

func TestJoinTakesArcAndOldHoldersLetGo(t *testing.T) {
	r := newRing(t, 5)
	r.putAll(300, 1, 2)
	newcomer := r.add(true)
	r.waitStable()
	r.checkAll(300, 1) // readable during the handover
	r.settle()
	r.checkAll(300, 1)
	r.checkCopies(300, 2)
	st, err := newcomer.db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.PrimaryRecords == 0 {
		t.Fatalf("newcomer holds no primary records after the handover; stats %+v", st)
	}
	// Its primaries are exactly the records of its arc.
	pred, _ := newcomer.node.Predecessor()
	for i := range 300 {
		rec, err := newcomer.db.Get(key(i))
		inArc := chord.KeyPosition(key(i)).InHalfOpen(pred.ID, newcomer.info.ID)
		if inArc && (err != nil || !rec.Primary) {
			t.Fatalf("key-%d is in the newcomer's arc but it holds %+v, %v", i, rec.Primary, err)
		}
	}
}

func TestGracefulLeaveLosesNothing(t *testing.T) {
	r := newRing(t, 5)
	r.putAll(200, 1, 1) // one copy only: the leaving node must hand its own over
	leaver := r.live()[1]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaver.node.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	r.net.Down(leaver.info.Addr)
	leaver.halt()
	r.waitStable()
	r.settle()
	r.checkAll(200, 1)
	r.checkCopies(200, 1)
}

func TestExpiredRecordsVanishAndAreSwept(t *testing.T) {
	r := newRing(t, 4)
	ctx := context.Background()
	m := r.live()[0]
	if err := m.svc.Put(ctx, key(1), value(1, 1), time.Second, 3); err != nil {
		t.Fatal(err)
	}
	if _, err := r.live()[3].svc.Get(ctx, key(1)); err != nil {
		t.Fatalf("Get before expiry: %v", err)
	}
	// Move every node's clock past the expiry.
	for _, m := range r.live() {
		m.svc.now = func() time.Time { return time.Now().Add(2 * time.Second) }
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := r.live()[2].svc.Get(ctx, key(1))
		if errors.Is(err, ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Get after expiry = %v; want %v", err, ErrNotFound)
		}
		time.Sleep(50 * time.Millisecond) // the store's own clock decides expiry
	}
	for _, m := range r.live() {
		if _, err := m.svc.db.Sweep(ctx, time.Now().Add(2*time.Second), 100); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := m.db.ForEach(func(store.Entry) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%v still stores %d records after the sweep", m.info, n)
		}
	}
}

// TestExpiredRecordFromPeerIsNotFound: a node does not return a record that
// has expired by its own clock, though the holders, whose clocks are behind,
// still hand it out: neither the owner's copy nor a replica's.
func TestExpiredRecordFromPeerIsNotFound(t *testing.T) {
	ctx := context.Background()
	k := key(1)
	r := newFrozenRing(t, 5, k, value(1, 1), 3)
	owner, _ := r.placement(k, 3)
	by := r.bystanders(k)
	if len(by) < 2 {
		t.Fatalf("set-up: %d members hold no copy of %x; want 2", len(by), k)
	}
	// One reader's clock runs two hours ahead of the holders': to it, the
	// record expired an hour ago. The other's agrees with theirs.
	agrees, ahead := by[0], by[1]
	ahead.svc.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	for _, tc := range []struct {
		name    string
		prepare func()
	}{
		{"owner reachable", func() {}},
		{"owner unreachable", func() { r.net.Down(owner.info.Addr) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.prepare()
			if got, err := agrees.svc.Get(ctx, k); err != nil || !bytes.Equal(got, value(1, 1)) {
				t.Fatalf("Get(%x) via %v = %q, %v; want %q", k, agrees.info, got, err, value(1, 1))
			}
			if got, err := ahead.svc.Get(ctx, k); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(%x) via %v, clock 2h ahead = %q, %v; want %v", k, ahead.info, got, err, ErrNotFound)
			}
		})
	}
}

// orderedGets is a transport that holds every dht.get call to node then
// until the dht.get call to node first is over, so that first's answer is in
// before then's. A call is over when the caller releases its context, as a
// GET does once it has read the answer.
type orderedGets struct {
	chord.Transport
	first, then chord.ID
	over        chan struct{} // closed when first's call is over
	once        sync.Once
}

func (o *orderedGets) Call(ctx context.Context, to chord.NodeInfo, method string, args, reply any) error {
	switch {
	case method != methodGet:
	case args.(getArgs).Route:
		// Routed gets look for the owner; the holders' answers are the
		// plain gets that follow.
	case to.ID == o.first:
		context.AfterFunc(ctx, func() { o.once.Do(func() { close(o.over) }) })
	case to.ID == o.then:
		select {
		case <-o.over:
		case <-ctx.Done():
			return fmt.Errorf("held until %v had answered: %w", o.first.Short(), ctx.Err())
		}
	}
	return o.Transport.Call(ctx, to, method, args, reply)
}

// TestGetTakesNewestReplica: while the owner is unreachable, a GET is
// answered by the replica holders, and it returns the newest version that
// any of them holds, even when a holder that missed the last overwrite
// answers first.
func TestGetTakesNewestReplica(t *testing.T) {
	ctx := context.Background()
	k := key(1)
	r := newFrozenRing(t, 5, k, value(1, 1), 3)
	owner, hs := r.placement(k, 3)
	stale, fresh := hs[0], hs[1]
	// The first holder is away during the overwrite.
	r.net.Down(stale.info.Addr)
	if err := owner.svc.Put(ctx, k, value(1, 2), time.Hour, 3); err != nil {
		t.Fatal(err)
	}
	r.net.Up(stale.info.Addr)
	for _, h := range []struct {
		m    *member
		want []byte
	}{{owner, value(1, 2)}, {stale, value(1, 1)}, {fresh, value(1, 2)}} {
		if rec, err := h.m.db.Get(k); err != nil || !bytes.Equal(rec.Value, h.want) {
			t.Fatalf("set-up: %v holds %q, %v; want %q", h.m.info, rec.Value, err, h.want)
		}
	}
	r.net.Down(owner.info.Addr)
	client := r.bystanders(k)[0]
	base := client.svc.tr // from here on only the GETs below call through it
	// The holder that missed the overwrite answers first. orderedGets
	// forces that order up to the hand-over of its answer, not up to the
	// moment the GET takes it in, so a GET that kept the first answer could
	// now and then end up with the newer one by luck of scheduling: a few
	// reads rule that out.
	for range 8 {
		client.svc.tr = &orderedGets{Transport: base, first: stale.info.ID, then: fresh.info.ID, over: make(chan struct{})}
		if got, err := client.svc.Get(ctx, k); err != nil || !bytes.Equal(got, value(1, 2)) {
			t.Fatalf("Get(%x) = %q, %v; want %q", k, got, err, value(1, 2))
		}
	}
}

func TestAntiEntropyRepairsMissingCopies(t *testing.T) {
	r := newRing(t, 5)
	r.putAll(100, 1, 3)
	// Remove records behind the ring's back: from a replica and from an owner.
	var lostReplica, lostPrimary int
	for i := range 100 {
		for _, m := range r.live() {
			rec, err := m.db.Get(key(i))
			if err != nil {
				continue
			}
			if (rec.Primary && i%2 == 0) || (!rec.Primary && i%2 == 1) {
				if err := m.db.Delete(context.Background(), key(i)); err != nil {
					t.Fatal(err)
				}
				if rec.Primary {
					lostPrimary++
				} else {
					lostReplica++
				}
				break
			}
		}
	}
	if lostPrimary == 0 || lostReplica == 0 {
		t.Fatalf("set-up removed %d primaries and %d replicas; want some of each", lostPrimary, lostReplica)
	}
	r.settle()
	r.checkCopies(100, 3)
}

func TestHandlersRejectBadInput(t *testing.T) {
	r := newRing(t, 2)
	a, b := r.live()[0], r.live()[1]
	tr := r.net.Transport(a.info)
	ctx := context.Background()
	for _, tc := range []struct {
		method string
		args   any
		want   error
	}{
		{methodPut, putArgs{Key: chord.ID{1}, Value: nil, Replication: 1}, chord.ErrBadRequest},
		{methodPut, map[string]any{"key": 5}, chord.ErrBadRequest},
		{methodStore, storeArgs{Records: []wireRecord{{Key: chord.ID{1}, Value: []byte("x"), Replication: 1}}}, chord.ErrBadRequest},
		{methodFetch, fetchArgs{Keys: make([]chord.ID, maxFetchKeys+1)}, chord.ErrBadRequest},
		{methodGet, getArgs{Key: chord.ID{9}}, chord.ErrNotFound},
	} {
		if err := tr.Call(ctx, b.info, tc.method, tc.args, nil); !errors.Is(err, tc.want) {
			t.Errorf("Call(%s, %+v) = %v; want %v", tc.method, tc.args, err, tc.want)
		}
	}
}

// TestRingChangesStartRepair runs each member's own loops (no manual rounds):
// records written on a small ring reach their full replication once the ring
// has grown, because every ring change starts a maintenance round.
func TestRingChangesStartRepair(t *testing.T) {
	// Ring changes start rounds at once, on the nodes whose neighbours
	// changed and (through dht.recheck) on those pushed out of a window.
	r := newRingMaintained(t, 2, 300*time.Millisecond)
	r.putAll(100, 1, 3) // two nodes: two copies each for now
	for _, m := range r.live() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.svc.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	for range 3 {
		m := r.add(true)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.svc.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	r.waitStable()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 100; {
		if h, p := r.copies(i); h == 3 && p == 1 {
			i++
			continue
		}
		if time.Now().After(deadline) {
			h, p := r.copies(i)
			t.Fatalf("key-%d: %d holders, %d primaries 30s after the ring grew; want 3 and 1", i, h, p)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	r.checkAll(100, 1)
}

// TestJoinPushesOutExtraCopiesAtOnce: a join pushes the last holder of some
// windows out of them; that holder sees no change of its own neighbours (the
// ring is longer than a successor list), but the owners tell it
// (dht.recheck), so the extra copies go long before the periodic round (an
// hour here).
func TestJoinPushesOutExtraCopiesAtOnce(t *testing.T) {
	n := chord.DefaultConfig().SuccessorListLen + 4
	r := newRing(t, n) // periodic maintenance every hour: only ring changes and hints start rounds
	run := func(m *member) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = m.svc.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
	}
	r.putAll(300, 1, 3)
	r.settle()
	r.checkCopies(300, 3)
	for _, m := range r.live() {
		// The ring's formation left a round pending on every member: drop
		// it, so that only the join and the hints start rounds.
		select {
		case <-m.svc.kick:
		default:
		}
		run(m)
	}
	run(r.add(true))
	r.waitStable()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < 300; {
		if h, p := r.copies(i); h == 3 && p == 1 {
			i++
			continue
		}
		if time.Now().After(deadline) {
			h, p := r.copies(i)
			t.Fatalf("key-%d: %d holders, %d primaries 30s after a join; want 3 and 1", i, h, p)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	r.checkAll(300, 1)
}

// TestRangePages walks the whole circle of a node's records through the
// range call, in small pages, and gets each record exactly once.
func TestRangePages(t *testing.T) {
	r := newRing(t, 1)
	r.putAll(120, 1, 1)
	m := r.members[0]
	tr := r.net.Transport(chord.NodeInfo{ID: chord.ID{0xee}, Addr: "client"})
	seen := map[chord.ID]int{}
	args := rangeArgs{From: m.info.ID, To: m.info.ID, Limit: 7}
	pages := 0
	for {
		var reply rangeReply
		if err := tr.Call(context.Background(), m.info, methodRange, args, &reply); err != nil {
			t.Fatalf("range page %d: %v", pages, err)
		}
		pages++
		if len(reply.Records) > 7 {
			t.Fatalf("page of %d records; want at most the limit 7", len(reply.Records))
		}
		for _, w := range reply.Records {
			seen[w.Key]++
		}
		if reply.Next == nil {
			break
		}
		args.After = reply.Next
		if pages > 100 {
			t.Fatal("range did not end")
		}
	}
	if len(seen) != 120 {
		t.Fatalf("range returned %d distinct records in %d pages; want 120", len(seen), pages)
	}
	for k, n := range seen {
		if n != 1 {
			t.Fatalf("record %s returned %d times", k.Short(), n)
		}
	}
}
