package dht

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/store"
)

// runService runs m's records-layer loops (sweep, maintenance, immediate
// repair) until the test ends. A maintenance round left pending by the ring's
// formation is dropped first, so that only what the test starts runs.
func runService(t *testing.T, m *member) {
	t.Helper()
	select {
	case <-m.svc.kick:
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = m.svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// holds reports whether m's store holds want under k.
func holds(m *member, k [32]byte, want []byte) bool {
	rec, err := m.db.Get(k)
	return err == nil && bytes.Equal(rec.Value, want)
}

// waitHolds polls until m's store holds want under k.
func waitHolds(t *testing.T, m *member, k [32]byte, want []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !holds(m, k, want) {
		if time.Now().After(deadline) {
			rec, err := m.db.Get(k)
			t.Fatalf("%v holds %q, %v 10s on; want %q", m.info, rec.Value, err, want)
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}

// TestPutAckedWithOneHolderDown: with one of two replica holders unreachable
// a PUT is acknowledged once the owner and the other holder have it, and the
// missing holder gets it as soon as it is back, long before the periodic
// maintenance round (an hour here).
func TestPutAckedWithOneHolderDown(t *testing.T) {
	ctx := context.Background()
	k := key(1)
	r := newFrozenRing(t, 5, k, value(1, 1), 3)
	owner, hs := r.placement(k, 3)
	away, present := hs[0], hs[1]
	r.net.Down(away.info.Addr)
	if err := owner.svc.Put(ctx, k, value(1, 2), time.Hour, 3); err != nil {
		t.Fatalf("Put(%x) with one holder down = %v; want nil", k, err)
	}
	// At the acknowledgement: the owner and the present holder have it.
	for _, m := range []*member{owner, present} {
		if !holds(m, k, value(1, 2)) {
			t.Fatalf("%v lacks the acknowledged PUT", m.info)
		}
	}
	if holds(away, k, value(1, 2)) {
		t.Fatal("set-up: the unreachable holder got the PUT")
	}
	runService(t, owner)
	r.net.Up(away.info.Addr)
	waitHolds(t, away, k, value(1, 2))
}

// stallingTransport holds every dht.store call to node until release is
// closed or the call's deadline passes: a frozen holder.
type stallingTransport struct {
	chord.Transport
	node     chord.ID
	release  chan struct{}
	started  chan struct{} // closed when the first stalled call arrives
	once     sync.Once
	finished atomic.Bool // a stalled call has returned
}

func (s *stallingTransport) Call(ctx context.Context, to chord.NodeInfo, method string, args, reply any) error {
	if method != methodStore || to.ID != s.node {
		return s.Transport.Call(ctx, to, method, args, reply)
	}
	s.once.Do(func() { close(s.started) })
	defer s.finished.Store(true)
	select {
	case <-s.release:
		return s.Transport.Call(ctx, to, method, args, reply)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestPutDoesNotWaitForStalledHolder: a holder that takes a push but does not
// answer does not hold up the PUT: it is acknowledged while that push is still
// in flight, and the push lands once the holder answers.
func TestPutDoesNotWaitForStalledHolder(t *testing.T) {
	ctx := context.Background()
	k := key(1)
	r := newFrozenRing(t, 5, k, value(1, 1), 3)
	owner, hs := r.placement(k, 3)
	st := stallPushes(t, owner, hs[0])
	if err := owner.svc.Put(ctx, k, value(1, 2), time.Hour, 3); err != nil {
		t.Fatalf("Put(%x) with a stalled holder = %v; want nil", k, err)
	}
	<-st.started
	if st.finished.Load() {
		t.Fatal("Put returned only after the push to the stalled holder had ended; want it acknowledged before")
	}
	if !holds(hs[1], k, value(1, 2)) {
		t.Fatalf("the answering holder %v lacks the acknowledged PUT", hs[1].info)
	}
	close(st.release)
	owner.svc.Wait()
	if !holds(hs[0], k, value(1, 2)) {
		t.Fatalf("the stalled holder %v lacks the PUT once it answered", hs[0].info)
	}
}

// TestWriteQuorum: a PUT is acknowledged exactly when its write quorum can be
// met by the reachable holders. One that is not is an error, and no GET (at
// the owner or anywhere else) returns its value while it is on fewer disks
// than the quorum; once the holders are back it reaches them and is served.
func TestWriteQuorum(t *testing.T) {
	for _, tc := range []struct {
		name   string
		quorum int
		down   int // holders unreachable, of 2
		acked  bool
	}{
		{"owner only, both holders down", 1, 2, true},
		{"two, one holder down", 2, 1, true},
		{"two, both holders down", 2, 2, false},
		{"three, one holder down", 3, 1, false},
		{"three, all up", 3, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			k := key(1)
			r := newRingTuned(t, 5, func(c *Config) { c.WriteQuorum = tc.quorum })
			owner, _ := r.placement(k, 3)
			if err := owner.svc.Put(ctx, k, value(1, 1), time.Hour, 3); err != nil {
				t.Fatalf("Put(%x) on a whole ring = %v; want nil", k, err)
			}
			r.quiesce()
			r.freeze()
			owner, hs := r.placement(k, 3)
			reader := r.bystanders(k)[0]
			for _, h := range hs[:tc.down] {
				r.net.Down(h.info.Addr)
			}
			err := ownerPut(ctx, owner, k, value(1, 2))
			if tc.acked {
				if err != nil {
					t.Fatalf("Put(%x), quorum %d, %d of 2 holders down = %v; want nil", k, tc.quorum, tc.down, err)
				}
				for _, m := range []*member{owner, reader} {
					if got, err := m.svc.Get(ctx, k); err != nil || !bytes.Equal(got, value(1, 2)) {
						t.Fatalf("Get(%x) via %v after the acknowledgement = %q, %v; want %q", k, m.info, got, err, value(1, 2))
					}
				}
				return
			}
			if !errors.Is(err, ErrNoQuorum) {
				t.Fatalf("Put(%x), quorum %d, %d of 2 holders down = %v; want %v", k, tc.quorum, tc.down, err, ErrNoQuorum)
			}
			if !holds(owner, k, value(1, 2)) {
				t.Fatal("set-up: the owner did not store the PUT short of its quorum")
			}
			for _, m := range []*member{owner, reader} {
				if got, err := m.svc.Get(ctx, k); err != nil || !bytes.Equal(got, value(1, 1)) {
					t.Fatalf("Get(%x) via %v after a PUT short of its quorum = %q, %v; want the previous %q", k, m.info, got, err, value(1, 1))
				}
			}
			// The holders come back: the PUT reaches them and is served.
			runService(t, owner)
			for _, h := range hs[:tc.down] {
				r.net.Up(h.info.Addr)
			}
			for _, h := range hs {
				waitHolds(t, h, k, value(1, 2))
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, err := reader.svc.Get(ctx, k)
				if err == nil && bytes.Equal(got, value(1, 2)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("Get(%x) via %v once on its quorum = %q, %v; want %q", k, reader.info, got, err, value(1, 2))
				}
				time.Sleep(5 * time.Millisecond) // polling interval
			}
		})
	}
}

// ownerPut puts value under k at m as the key's owner, with replication 3
// and a TTL of an hour: the owner's acknowledgement rule alone. A PUT that
// m took from a client and could not get onto its quorum in time would be
// kept as a hint instead (TestHintKeepsPutWhenEntryOwnsItShortOfQuorum).
func ownerPut(ctx context.Context, m *member, k [32]byte, value []byte) error {
	_, err := m.svc.ownerPut(ctx, putArgs{Key: chord.ID(k), Value: value, Replication: 3,
		Expiry: time.Now().Add(time.Hour).UnixNano()})
	return err
}

// TestPutShortOfQuorumHidesNewKey: a first PUT of a key that misses its
// quorum is not served at all: the key reads as absent.
func TestPutShortOfQuorumHidesNewKey(t *testing.T) {
	ctx := context.Background()
	r := newRing(t, 5)
	r.freeze()
	k := key(7)
	owner, hs := r.placement(k, 3)
	for _, h := range hs {
		r.net.Down(h.info.Addr)
	}
	if err := ownerPut(ctx, owner, k, value(7, 1)); !errors.Is(err, ErrNoQuorum) {
		t.Fatalf("Put(%x) with both holders down = %v; want %v", k, err, ErrNoQuorum)
	}
	for _, m := range append([]*member{owner}, r.bystanders(k)...) {
		if got, err := m.svc.Get(ctx, k); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get(%x) via %v = %q, %v; want %v", k, m.info, got, err, ErrNotFound)
		}
	}
}

// newerOnce is the owner's store with a newer version of one key arriving
// (from another node) between the owner's read and its write.
type newerOnce struct {
	Records
	newer store.Record
	once  sync.Once
}

func (n *newerOnce) Put(ctx context.Context, r store.Record) (bool, error) {
	var err error
	n.once.Do(func() {
		rec := n.newer
		rec.Version = store.Version{Clock: r.Version.Clock + uint64(time.Second), Node: 1}
		_, err = n.Records.Put(ctx, rec)
	})
	if err != nil {
		return false, err
	}
	return n.Records.Put(ctx, r)
}

// TestOwnerVersionsAboveNewerStored: when the owner's store refuses a PUT
// because a newer version arrived meanwhile, the owner versions the PUT above
// it instead of reporting a write that did not happen.
func TestOwnerVersionsAboveNewerStored(t *testing.T) {
	ctx := context.Background()
	k := key(1)
	r := newFrozenRing(t, 5, k, value(1, 1), 3)
	owner, _ := r.placement(k, 3)
	newer := store.Record{Key: k, Value: []byte("from elsewhere"), Expiry: time.Now().Add(time.Hour), Primary: true, Replication: 3}
	owner.svc.raw = &newerOnce{Records: owner.svc.raw, newer: newer}
	if err := owner.svc.Put(ctx, k, value(1, 2), time.Hour, 3); err != nil {
		t.Fatalf("Put(%x) = %v; want nil", k, err)
	}
	r.quiesce()
	for _, m := range append([]*member{owner}, r.bystanders(k)...) {
		if got, err := m.svc.Get(ctx, k); err != nil || !bytes.Equal(got, value(1, 2)) {
			t.Fatalf("Get(%x) via %v = %q, %v; want the acknowledged %q", k, m.info, got, err, value(1, 2))
		}
	}
}

// TestPutDoesNotWaitForFullQueue: with the stalled holder's push queue full
// (one record), further PUTs are still acknowledged on the owner and the
// other holder within their deadline; the stalled holder's misses are
// queued for repair, not waited for; the backlogs count the stalled push
// and the missed key, and the push backlog is empty once the push ends.
func TestPutDoesNotWaitForFullQueue(t *testing.T) {
	ctx := context.Background()
	k := key(1)
	r := newRingTuned(t, 5, func(c *Config) { c.MaxBackgroundPushes = 1 })
	r.freeze()
	owner, hs := r.placement(k, 3)
	st := stallPushes(t, owner, hs[0])
	for gen := 1; gen <= 4; gen++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := owner.svc.Put(pctx, k, value(1, gen), time.Hour, 3)
		cancel()
		if err != nil {
			t.Fatalf("Put gen %d with the stalled holder's queue full = %v; want nil", gen, err)
		}
		if !holds(hs[1], k, value(1, gen)) {
			t.Fatalf("the answering holder lacks gen %d", gen)
		}
	}
	if st.finished.Load() {
		t.Fatal("the PUTs were acknowledged only after the stalled push had ended; want them not to wait for its queue")
	}
	// What the backlog gauges read: the one push stalled, the key missed.
	if got := owner.svc.pushQueues.backlog(); got != 1 {
		t.Errorf("push backlog with one push stalled = %d; want 1", got)
	}
	if got := owner.svc.repairs.backlog(); got != 1 {
		t.Errorf("repair backlog after the stalled holder missed key %x = %d; want 1", k, got)
	}
	close(st.release)
	owner.svc.Wait()
	if got := owner.svc.pushQueues.backlog(); got != 0 {
		t.Errorf("push backlog once the pushes ended = %d; want 0", got)
	}
}

// stallPushes makes owner's calls to holder stall until the test releases
// them (close(st.release)) or ends.
func stallPushes(t *testing.T, owner, holder *member) *stallingTransport {
	t.Helper()
	st := &stallingTransport{Transport: owner.svc.tr, node: holder.info.ID, release: make(chan struct{}), started: make(chan struct{})}
	owner.svc.tr = st
	t.Cleanup(func() {
		select {
		case <-st.release:
		default:
			close(st.release)
		}
	})
	return st
}

// TestConfirmationsHideFailedAndNewer: a version whose PUT failed short of
// its quorum stays hidden when a newer PUT of the key is held, and so does
// the newer one until it is on its quorum: the owner serves what it served
// before both, then the newer one, and never the failed one in between.
func TestConfirmationsHideFailedAndNewer(t *testing.T) {
	self, holder := chord.ID{1}, chord.ID{2}
	c := newConfirmations(self)
	now := time.Now()
	k := key(1)
	rec := func(clock uint64, v string) store.Record {
		return store.Record{Key: k, Value: []byte(v), Expiry: now.Add(time.Hour), Version: store.Version{Clock: clock, Node: 1}}
	}
	p0, v1, v2 := rec(10, "acked"), rec(20, "failed short"), rec(30, "newer")
	c.hold(k, v1.Version, p0, true, 2)
	c.stored(k, v1.Version, self) // the holder never takes it
	c.hold(k, v2.Version, p0, true, 2)
	for _, r := range []store.Record{v1, v2} {
		if got, err := c.visible(k, r, now); err != nil || !bytes.Equal(got.Value, p0.Value) {
			t.Errorf("store holding %q: served %q, %v; want %q until the newer one is on its quorum", r.Value, got.Value, err, p0.Value)
		}
	}
	c.stored(k, v1.Version, holder) // late: v1 is superseded, nothing changes
	if got, _ := c.visible(k, v1, now); !bytes.Equal(got.Value, p0.Value) {
		t.Errorf("after a late confirmation of the failed version: served %q; want %q", got.Value, p0.Value)
	}
	c.stored(k, v2.Version, self)
	c.stored(k, v2.Version, holder)
	if got, err := c.visible(k, v2, now); err != nil || !bytes.Equal(got.Value, v2.Value) {
		t.Errorf("newer version on its quorum: served %q, %v; want %q", got.Value, err, v2.Value)
	}
}

// TestKeyLocksSerialise: a second lock of a key waits for the first to be
// released, a lock of another key does not, a waiter whose context ends
// gives up, and no entry is left behind.
func TestKeyLocksSerialise(t *testing.T) {
	l := newKeyLocks()
	ctx := context.Background()
	unlock, err := l.lock(ctx, key(1))
	if err != nil {
		t.Fatal(err)
	}
	other, err := l.lock(ctx, key(2))
	if err != nil {
		t.Fatalf("lock of another key = %v; want it at once", err)
	}
	other()
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.lock(short, key(1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second lock of a held key = %v; want it to wait until its context ends", err)
	}
	got := make(chan struct{})
	go func() {
		u, err := l.lock(ctx, key(1))
		if err == nil {
			u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("second lock taken while the first is held")
	case <-time.After(20 * time.Millisecond):
	}
	unlock()
	<-got
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) != 0 {
		t.Errorf("%d entries left after every lock was released; want 0", len(l.m))
	}
}

// TestPutWaitsForTheFirstQueueWithRoom: with both holders' push queues full,
// one stalled for good and one about to free its room, a PUT waits for room
// at both at once and is acknowledged as soon as the second takes its push,
// instead of spending its time on the stalled one's queue.
func TestPutWaitsForTheFirstQueueWithRoom(t *testing.T) {
	ctx := context.Background()
	k := key(1)
	r := newRingTuned(t, 5, func(c *Config) { c.MaxBackgroundPushes = 1; c.CallTimeout = 10 * time.Second })
	r.freeze()
	owner, hs := r.placement(k, 3)
	stallPushes(t, owner, hs[0])
	slow := stallPushes(t, owner, hs[1]) // wraps the first
	// A first PUT fills both queues and cannot be acknowledged.
	pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if err := ownerPut(pctx, owner, k, value(1, 1)); err == nil {
		t.Fatal("Put with both holders stalled succeeded; want it short of its quorum")
	}
	cancel()
	<-slow.started
	done := make(chan error, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		done <- owner.svc.Put(pctx, k, value(1, 2), time.Hour, 3)
	}()
	close(slow.release) // the second holder's queue frees; the first stays stalled
	if err := <-done; err != nil {
		t.Fatalf("Put with one holder's queue free again = %v; want it acknowledged", err)
	}
	if !holds(hs[1], k, value(1, 2)) {
		t.Fatal("the answering holder lacks the acknowledged version")
	}
}
