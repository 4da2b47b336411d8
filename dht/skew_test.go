package dht

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
)

// TestClockSkewPutsNeverRevert: members whose clocks are a minute apart
// (30 s ahead or behind the wall clock, the skew supported; admit refuses
// versions more than MaxClockAhead, 2 minutes, ahead of the receiver)
// overwrite records through a join of a member whose clock is behind the
// old owner's, and through a graceful leave of one whose clock is ahead of
// its successor's. After each handoff every acknowledged
// PUT reads back through every member, and no copy of an older value is
// left on any member.
func TestClockSkewPutsNeverRevert(t *testing.T) {
	const (
		skew = 30 * time.Second
		n    = 200
		repl = 2
	)
	// The first four members are ahead; every member that joins later is
	// behind them, so that a newcomer takes over records versioned by a
	// clock a minute ahead of its own.
	started := 0
	r := newRingTuned(t, 4, func(c *Config) {
		d := skew
		if started >= 4 {
			d = -skew
		}
		started++
		c.Now = func() time.Time { return time.Now().Add(d) }
	})
	r.putAll(n, 1, repl)

	// A member behind the others joins and takes over part of an arc
	// whose records were versioned by a clock ahead of its own; PUTs for
	// its arc reach it before it has received them.
	newcomer := r.add(true)
	r.waitStable()
	pred, _ := newcomer.node.Predecessor()
	taken := 0
	for i := range n {
		if chord.KeyPosition(key(i)).InHalfOpen(pred.ID, newcomer.info.ID) {
			taken++
		}
	}
	if taken == 0 {
		t.Fatal("the newcomer took over no key: the test proves nothing")
	}
	t.Logf("newcomer (clock %v) owns %d of %d keys", -skew, taken, n)
	r.putAll(n, 2, repl)
	r.settle()
	r.checkNoRevert(n, 2)

	// A member ahead of the others leaves after another round of PUTs;
	// its records go to a successor whose clock may be behind, which then
	// takes the next round of PUTs.
	r.add(true)
	r.waitStable()
	r.putAll(n, 3, repl)
	// The leaver is ahead and its successor behind: the successor takes
	// over records versioned by a clock ahead of its own.
	var leaver *member
	live := r.live()
	slices.SortFunc(live, func(a, b *member) int { return a.info.ID.Cmp(b.info.ID) })
	for i, m := range live {
		if ahead(m) && !ahead(live[(i+1)%len(live)]) {
			leaver = m
			break
		}
	}
	if leaver == nil {
		t.Fatal("no member ahead precedes one behind: the test proves nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leaver.node.Leave(ctx); err != nil {
		t.Fatalf("Leave(%v) = %v", leaver.info, err)
	}
	r.net.Down(leaver.info.Addr)
	leaver.halt()
	r.waitStable()
	r.putAll(n, 4, repl)
	r.settle()
	r.checkNoRevert(n, 4)
}

// ahead reports whether m's clock is ahead of the wall clock.
func ahead(m *member) bool { return m.svc.now().After(time.Now()) }

// checkNoRevert reads every record through every live member and checks that
// every copy kept anywhere holds generation gen.
func (r *ring) checkNoRevert(n, gen int) {
	r.t.Helper()
	r.checkAll(n, gen)
	for _, m := range r.live() {
		for i := range n {
			rec, err := m.db.Get(key(i))
			if err == nil && !bytes.Equal(rec.Value, value(i, gen)) {
				r.t.Fatalf("%v keeps %q (version %v) for key-%d; want %q", m.info, rec.Value, rec.Version, i, value(i, gen))
			}
		}
	}
}
