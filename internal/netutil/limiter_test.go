package netutil

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fakeConn is an admitted connection: its slot and whether it was closed.
type fakeConn struct {
	name   string
	slot   *Slot
	closed bool
}

// limiterHarness admits fake connections and records what the limiter did.
type limiterHarness struct {
	t       *testing.T
	l       *Limiter
	mu      sync.Mutex // guards refused, evicted
	refused map[string]int
	evicted map[string]int
	clock   time.Time
	logs    bytes.Buffer
}

func newLimiterHarness(t *testing.T, total, perAddr int) *limiterHarness {
	t.Helper()
	h := &limiterHarness{t: t, refused: map[string]int{}, evicted: map[string]int{}, clock: time.Unix(1_000_000, 0)}
	l, err := NewLimiter(LimiterConfig{
		MaxConns:           total,
		MaxConnsPerAddress: perAddr,
		LogInterval:        time.Minute,
		Logger:             hclog.New(&hclog.LoggerOptions{Output: &h.logs, Level: hclog.Warn}),
		Refused:            func(r string) { h.mu.Lock(); h.refused[r]++; h.mu.Unlock() },
		Evicted:            func(r string) { h.mu.Lock(); h.evicted[r]++; h.mu.Unlock() },
		now:                func() time.Time { return h.clock },
	})
	if err != nil {
		t.Fatalf("NewLimiter: %v", err)
	}
	h.l = l
	return h
}

// admit admits a connection from ip; nil if refused.
func (h *limiterHarness) admit(ip, name string) *fakeConn {
	h.t.Helper()
	c := &fakeConn{name: name}
	s, ok := h.l.Admit(&net.TCPAddr{IP: net.ParseIP(ip), Port: 40000}, func() { c.closed = true })
	if !ok {
		return nil
	}
	c.slot = s
	return c
}

func TestLimiterPerAddressEvictsOldestIdleOfThatAddress(t *testing.T) {
	h := newLimiterHarness(t, 100, 3)
	other := h.admit("127.0.0.1", "other")
	a := h.admit("127.0.0.66", "a")
	b := h.admit("127.0.0.66", "b")
	c := h.admit("127.0.0.66", "c")
	// b works, so a and c are idle, a the longest.
	b.slot.Add(1)
	d := h.admit("127.0.0.66", "d")
	if d == nil {
		t.Fatal("4th connection of 127.0.0.66 refused; want it admitted in place of the longest idle one")
	}
	if !a.closed || b.closed || c.closed || other.closed {
		t.Fatalf("closed: a %v b %v c %v other %v; want only a (longest idle of the address)", a.closed, b.closed, c.closed, other.closed)
	}
	// a became busy and idle again after c: c is now the longest idle.
	d.slot.Add(1)
	d.slot.Add(-1)
	e := h.admit("127.0.0.66", "e")
	if e == nil || !c.closed || d.closed {
		t.Fatalf("5th: admitted %v, c closed %v, d closed %v; want c (idle longest) closed", e != nil, c.closed, d.closed)
	}
	if got := h.evicted[ReasonAddress]; got != 2 {
		t.Errorf("evicted[%s] = %d; want 2", ReasonAddress, got)
	}
	if n := h.l.Open(); n != 4 {
		t.Errorf("Open() = %d; want 4 (other, b, d, e)", n)
	}
}

func TestLimiterRefusesWhenEveryConnectionOfTheAddressIsBusy(t *testing.T) {
	h := newLimiterHarness(t, 100, 2)
	for i := range 2 {
		c := h.admit("10.0.0.5", "busy")
		if c == nil {
			t.Fatalf("connection %d refused", i)
		}
		c.slot.Add(1)
	}
	if c := h.admit("10.0.0.5", "third"); c != nil {
		t.Fatal("third connection admitted while both of the address are busy; want refused")
	}
	if h.admit("10.0.0.6", "elsewhere") == nil {
		t.Fatal("a connection from another address was refused")
	}
	if got := h.refused[ReasonAddress]; got != 1 {
		t.Errorf("refused[%s] = %d; want 1", ReasonAddress, got)
	}
}

func TestLimiterTotalEvictsOldestIdleAnywhere(t *testing.T) {
	h := newLimiterHarness(t, 3, 3)
	x := h.admit("10.0.0.1", "x")
	y := h.admit("10.0.0.2", "y")
	z := h.admit("10.0.0.3", "z")
	x.slot.Add(1) // busy: never evicted
	w := h.admit("10.0.0.4", "w")
	if w == nil || x.closed || !y.closed || z.closed {
		t.Fatalf("admitted %v; closed x %v y %v z %v; want y (longest idle) closed", w != nil, x.closed, y.closed, z.closed)
	}
	z.slot.Add(1)
	w.slot.Add(1)
	if h.admit("10.0.0.5", "v") != nil {
		t.Fatal("admitted with every connection busy at the total limit; want refused")
	}
	if h.refused[ReasonTotal] != 1 || h.evicted[ReasonTotal] != 1 {
		t.Errorf("refused %v evicted %v; want one of each for %s", h.refused, h.evicted, ReasonTotal)
	}
	// A released slot frees its place; a late Add or Release is harmless.
	z.slot.Release()
	z.slot.Release()
	y.slot.Add(1) // evicted earlier
	if h.admit("10.0.0.5", "v") == nil {
		t.Fatal("refused after a slot was released")
	}
	if n := h.l.Open(); n != 3 {
		t.Errorf("Open() = %d; want 3", n)
	}
}

func TestLimiterIPv6CountsPerSlash64(t *testing.T) {
	h := newLimiterHarness(t, 10, 1)
	a := h.admit("2001:db8::1", "a")
	if h.admit("2001:db8::2", "b") == nil || !a.closed {
		t.Fatal("a second address of the same /64 did not take the place of the first")
	}
	if h.admit("2001:db8:0:1::1", "c") == nil {
		t.Fatal("an address of another /64 was refused")
	}
}

func TestLimiterLogsOncePerIntervalPerAddress(t *testing.T) {
	h := newLimiterHarness(t, 100, 1)
	busy := h.admit("127.0.0.66", "busy")
	busy.slot.Add(1)
	for range 1000 {
		if h.admit("127.0.0.66", "flood") != nil {
			t.Fatal("admitted beyond the per-address limit")
		}
	}
	b2 := h.admit("127.0.0.77", "busy2")
	b2.slot.Add(1)
	h.admit("127.0.0.77", "flood2")
	lines := strings.Count(h.logs.String(), "\n")
	if lines != 2 {
		t.Fatalf("%d log lines after 1001 refusals from two addresses within the interval; want 2:\n%s", lines, h.logs.String())
	}
	h.clock = h.clock.Add(time.Minute)
	h.admit("127.0.0.66", "later")
	out := h.logs.String()
	if n := strings.Count(out, "\n"); n != 3 {
		t.Fatalf("%d log lines after the interval passed; want 3:\n%s", n, out)
	}
	last := out[strings.LastIndex(strings.TrimSuffix(out, "\n"), "\n")+1:]
	if !strings.Contains(last, "events-since-last-line=1000") || !strings.Contains(last, "source=127.0.0.66") {
		t.Errorf("last line %q; want source=127.0.0.66 and events-since-last-line=1000 (999 silent + this one)", last)
	}
	if got := h.refused[ReasonAddress]; got != 1002 {
		t.Errorf("refused = %d; want every refusal counted (1002)", got)
	}
}

func TestLimiterSetLimits(t *testing.T) {
	h := newLimiterHarness(t, 10, 5)
	if err := h.l.SetLimits(10, 0); err == nil {
		t.Error("SetLimits(10, 0) = nil; want an error")
	}
	if err := h.l.SetLimits(10, 1); err != nil {
		t.Fatalf("SetLimits(10, 1) = %v", err)
	}
	a := h.admit("10.1.1.1", "a")
	a.slot.Add(1)
	if h.admit("10.1.1.1", "b") != nil {
		t.Error("admitted a second busy-blocked connection after the per-address limit was lowered to 1")
	}
}

// TestLimiterIdleListsStayConsistent: after a random run of busy, idle and
// release events, the idle lists hold exactly the open idle slots, in the
// order they became idle.
func TestLimiterIdleListsStayConsistent(t *testing.T) {
	h := newLimiterHarness(t, 1000, 1000)
	rng := rand.New(rand.NewPCG(1, 2))
	var open []*fakeConn
	var order []*Slot // idle slots, longest idle first
	drop := func(s *Slot) {
		order = slices.DeleteFunc(order, func(o *Slot) bool { return o == s })
	}
	for i := range 5000 {
		switch r := rng.IntN(10); {
		case r < 3 || len(open) == 0:
			c := h.admit(fmt.Sprintf("10.0.%d.%d", rng.IntN(2), rng.IntN(4)), "c")
			open = append(open, c)
			order = append(order, c.slot)
		case r < 6:
			c := open[rng.IntN(len(open))]
			if c.slot.busy.Load() == 0 {
				c.slot.Add(1)
				drop(c.slot)
			} else {
				c.slot.Add(-1)
				if c.slot.busy.Load() == 0 {
					order = append(order, c.slot)
				}
			}
		default:
			j := rng.IntN(len(open))
			open[j].slot.Release()
			drop(open[j].slot)
			open = slices.Delete(open, j, j+1)
		}
		var got []*Slot
		for s := h.l.idle.front; s != nil; s = s.links[0].next {
			got = append(got, s)
		}
		if !slices.Equal(got, order) {
			t.Fatalf("step %d: idle list has %d slots; want %d, in the order they became idle", i, len(got), len(order))
		}
		for key, a := range h.l.addrs {
			n := 0
			for s := a.idle.front; s != nil; s = s.links[1].next {
				if s.key != key || !s.idle {
					t.Fatalf("step %d: address list of %v holds a slot of %v (idle %v)", i, key, s.key, s.idle)
				}
				n++
			}
			if n > a.n {
				t.Fatalf("step %d: %v has %d idle of %d open", i, key, n, a.n)
			}
		}
	}
	if h.l.Open() != len(open) {
		t.Errorf("Open() = %d; want %d", h.l.Open(), len(open))
	}
}
