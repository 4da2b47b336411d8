package chord_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durachord/durachord/chord"
)

// liar serves a member's calls as the member would, except the methods it
// has a lie for: there it answers with the lie.
type liar struct {
	honest chord.Handler
	lies   map[string]any
}

func (l liar) ServeRPC(ctx context.Context, from chord.ID, method string, params json.RawMessage) (any, error) {
	if lie, ok := l.lies[method]; ok {
		return lie, nil
	}
	return l.honest.ServeRPC(ctx, from, method, params)
}

func ids(xs []chord.NodeInfo) []chord.ID {
	out := make([]chord.ID, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.ID)
	}
	return out
}

func shorts(xs []chord.ID) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.Short())
	}
	return out
}

// TestLookupRefusesAnswersOutsideInterval: the node a lookup asks first (the
// closest before the id) lies in its chord.find_successor answer; the lookup
// refuses the answer, counts it, goes around the liar and names the true
// owner and its successors.
func TestLookupRefusesAnswersOutsideInterval(t *testing.T) {
	pos := at(0x60)
	// Fake members the lies name: they answer whatever they are asked as
	// if they owned it.
	before := chord.NodeInfo{ID: at(0x58), Addr: "n-before"}
	beyond := chord.NodeInfo{ID: at(0x65), Addr: "n-beyond"}
	for _, tc := range []struct {
		name string
		lie  func(r *handRing) chord.Referral
	}{
		{"owner before the id", func(*handRing) chord.Referral {
			return chord.Referral{Owner: &before}
		}},
		{"owner is not itself", func(*handRing) chord.Referral {
			return chord.Referral{Owner: &before, OwnerIsSelf: true}
		}},
		{"closer node beyond the id", func(*handRing) chord.Referral {
			return chord.Referral{Closer: []chord.NodeInfo{beyond}}
		}},
		{"successors out of ring order", func(r *handRing) chord.Referral {
			o := r.node(at(0x70)).Self()
			return chord.Referral{Owner: &o, Successors: []chord.NodeInfo{r.node(at(0xb0)).Self(), r.node(at(0x90)).Self()}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newHandRing(t, routeConfig(), 0x10, 0x30, 0x50, 0x70, 0x90, 0xb0, 0xd0, 0xf0)
				for _, fake := range []chord.NodeInfo{before, beyond} {
					r.net.Listen(fake, chord.HandlerFunc(func(context.Context, chord.ID, string, json.RawMessage) (any, error) {
						self := fake
						return chord.Referral{Owner: &self, OwnerIsSelf: true}, nil
					}))
				}
				// The observer sits just after 0x10 and knows 0x10, 0x30,
				// 0x50 (its successor list): 0x50 is the node it asks
				// about 0x60.
				cfg := routeConfig()
				reg := prometheus.NewRegistry()
				cfg.Metrics = reg
				info := chord.NodeInfo{ID: at(0x08), Addr: "n-observer"}
				obs, err := chord.New(cfg, info, r.net.Transport(info), nil)
				if err != nil {
					t.Fatal(err)
				}
				r.net.Listen(info, obs)
				if err := obs.Join(r.ctx, []string{r.node(at(0x10)).Self().Addr}); err != nil {
					t.Fatal(err)
				}
				liarNode := r.node(at(0x50))
				r.net.Listen(liarNode.Self(), liar{honest: liarNode, lies: map[string]any{"chord.find_successor": tc.lie(r)}})

				res, err := obs.Lookup(r.ctx, pos)
				if err != nil {
					t.Fatalf("Lookup(%s) past a liar = %v; want an answer", pos.Short(), err)
				}
				if want := at(0x70); res.Owner.ID != want {
					t.Fatalf("Lookup(%s) past a liar = owner %v; want %s", pos.Short(), res.Owner, want.Short())
				}
				want := []chord.ID{at(0x90)}
				if got := ids(res.Successors); len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
					t.Fatalf("Lookup(%s) past a liar = successors %v; want %v first", pos.Short(), shorts(got), shorts(want))
				}
				if res.Hops > cfg.MaxHops {
					t.Fatalf("Lookup(%s) took %d hops; want at most MaxHops %d", pos.Short(), res.Hops, cfg.MaxHops)
				}
				if got := counterValue(t, reg, "durachord_chord_refused_total", "reason", "answer"); got < 1 {
					t.Fatalf("refused answers = %v; want at least 1", got)
				}
			})
		})
	}
}

// TestNotifyChecksNotifier: a member that notifies with its own ID but an
// address nobody serves it at is adopted neither as predecessor nor as
// successor; one outside the arc is ignored; the same member at its true
// address is adopted.
func TestNotifyChecksNotifier(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHandRing(t, routeConfig(), 0x10, 0x30, 0x50, 0x70)
		n := r.node(at(0x50))
		pred := r.node(at(0x30)).Self()
		succ := r.node(at(0x70)).Self()
		notify := func(x chord.NodeInfo, role string) {
			t.Helper()
			p, err := json.Marshal(map[string]any{"node": x, "role": role})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := n.ServeRPC(r.ctx, x.ID, "chord.notify", p); err != nil {
				t.Fatalf("ServeRPC(notify from %v) = %v", x, err)
			}
		}
		before := chord.NodeInfo{ID: at(0x40), Addr: "n-nowhere-40"}
		after := chord.NodeInfo{ID: at(0x60), Addr: "n-nowhere-60"}
		notify(before, "")
		if p, _ := n.Predecessor(); p != pred {
			t.Fatalf("Predecessor() after notify from %v at a dead address = %v; want %v", before, p, pred)
		}
		notify(after, "successor")
		if s := n.Successors(); s[0] != succ {
			t.Fatalf("Successors() after notify as successor from %v at a dead address = %v; want %v first", after, s, succ)
		}
		// Served at its address, but outside (predecessor, self): ignored.
		outside := chord.NodeInfo{ID: at(0x20), Addr: "n-20"}
		r.net.Listen(outside, pinger{})
		notify(outside, "")
		if p, _ := n.Predecessor(); p != pred {
			t.Fatalf("Predecessor() after notify from %v outside the arc = %v; want %v", outside, p, pred)
		}
		// The same members where they answer are adopted.
		before.Addr, after.Addr = "n-40", "n-60"
		r.net.Listen(before, pinger{})
		r.net.Listen(after, pinger{})
		notify(before, "")
		if p, _ := n.Predecessor(); p != before {
			t.Fatalf("Predecessor() after notify from %v = %v; want it", before, p)
		}
		notify(after, "successor")
		if s := n.Successors(); s[0] != after {
			t.Fatalf("Successors() after notify as successor from %v = %v; want it first", after, s)
		}
	})
}

// TestLeaveChecksHandover: a leaving member hands over a predecessor that
// does not answer, and successors of which one does not answer and one
// lies before it: none of them is adopted, and the ring heals around it.
func TestLeaveChecksHandover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHandRing(t, routeConfig(), 0x10, 0x30, 0x50, 0x70, 0x90)
		q, leaver, s := r.node(at(0x30)), r.node(at(0x50)), r.node(at(0x70))
		deadPred := chord.NodeInfo{ID: at(0x20), Addr: "n-nowhere-20"}
		deadSucc := chord.NodeInfo{ID: at(0x60), Addr: "n-nowhere-60"}
		// Answers, but lies between the predecessor and the leaver: not
		// a successor of the leaver.
		early := chord.NodeInfo{ID: at(0x40), Addr: "n-40"}
		r.net.Listen(early, pinger{})
		args, err := json.Marshal(map[string]any{
			"node":        leaver.Self(),
			"predecessor": deadPred,
			"successors":  []chord.NodeInfo{early, deadSucc, s.Self()},
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, to := range []*chord.Node{s, q} {
			if _, err := to.ServeRPC(r.ctx, leaver.Self().ID, "chord.leave", args); err != nil {
				t.Fatalf("ServeRPC(leave) at %v = %v", to.Self(), err)
			}
		}
		if p, ok := s.Predecessor(); ok && p.ID == deadPred.ID {
			t.Fatalf("successor's predecessor after leave = %v; want the dead node left out", p)
		}
		want := []chord.ID{at(0x70), at(0x90)}
		if got := ids(q.Successors()); !slices.Equal(got, want) {
			t.Fatalf("predecessor's successors after leave = %v; want %v", shorts(got), shorts(want))
		}
		r.net.Down(leaver.Self().Addr)
		delete(r.nodes, leaver.Self().ID)
		r.settle(nil)
	})
}

// TestStabilizeChecksSuccessorList: a successor that answers chord.neighbours
// with a list out of ring order, naming this node, a node that does not
// answer as its predecessor and another in its list, has only the entries in
// order after it that answer adopted, and stays the first successor; the
// live nodes of this node's own list that the lie left out are kept.
func TestStabilizeChecksSuccessorList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := routeConfig()
		cfg.SuccessorListLen = 4
		r := newHandRing(t, cfg, 0x10, 0x30, 0x50, 0x70, 0x90, 0xb0)
		q, s := r.node(at(0x30)), r.node(at(0x50))
		dead := chord.NodeInfo{ID: at(0x40), Addr: "n-nowhere-40"}
		n70, n90, nb0 := r.node(at(0x70)).Self(), r.node(at(0x90)).Self(), r.node(at(0xb0)).Self()
		nobody := chord.NodeInfo{ID: at(0x60), Addr: "n-nowhere-60"}
		lie := chord.Neighbours{Predecessor: &dead, Successors: []chord.NodeInfo{nobody, n90, n70, q.Self(), nb0, q.Self()}}
		r.net.Listen(s.Self(), liar{honest: s, lies: map[string]any{"chord.neighbours": lie}})
		if err := q.Stabilize(r.ctx); err != nil {
			t.Fatalf("Stabilize() = %v", err)
		}
		want := []chord.ID{at(0x50), at(0x70), at(0x90), at(0xb0)}
		if got := ids(q.Successors()); !slices.Equal(got, want) {
			t.Fatalf("Successors() after a list out of order = %v; want %v", shorts(got), shorts(want))
		}
	})
}

// TestProbeChecksNamedSuccessor: a remembered (evicted) peer that comes back
// and names, through its lookup answer, a closer successor that does not
// answer has it left out: the probe round adopts only a node that answers.
func TestProbeChecksNamedSuccessor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newHandRing(t, routeConfig(), 0x10, 0x30, 0x50, 0x70)
		n, e := r.node(at(0x30)), r.node(at(0x50))
		// e crashes and n evicts it, remembering it for the probe round.
		r.net.Down(e.Self().Addr)
		if err := n.Stabilize(r.ctx); err != nil {
			t.Fatalf("Stabilize() with its successor down = %v", err)
		}
		if got := n.Successors()[0].ID; got != at(0x70) {
			t.Fatalf("successor after eviction = %s; want %s", got.Short(), at(0x70).Short())
		}
		// It comes back naming a node between n and its successor, at an
		// address nobody serves, as the owner of n's successor position.
		dead := chord.NodeInfo{ID: at(0x40), Addr: "n-nowhere-40"}
		r.net.Listen(e.Self(), liar{honest: e, lies: map[string]any{"chord.find_successor": chord.Referral{Owner: &dead}}})
		if err := n.ProbeEvicted(r.ctx); err != nil {
			t.Fatalf("ProbeEvicted() = %v", err)
		}
		if got := n.Successors()[0]; got.ID == dead.ID {
			t.Fatalf("successor after probe = %v; want the node that did not answer left out", got)
		}
	})
}
