// Package transporttest is the conformance suite for chord.Transport
// implementations. Each implementation's tests call Run with a Harness that
// builds nodes on that transport; the same assertions then hold for the
// in-memory network and for the real TLS transport.
package transporttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/chord"
)

// Harness builds nodes on the transport under test.
type Harness interface {
	// NewNode starts a node that serves h and returns its identity and a
	// transport whose calls come from that node. The harness stops the node
	// when the test ends.
	NewNode(t *testing.T, h chord.Handler) (chord.NodeInfo, chord.Transport)
	// Stop makes a node unreachable: its listener and connections are closed.
	Stop(t *testing.T, n chord.NodeInfo)
}

type echoArgs struct {
	Text  string   `json:"text"`
	Bytes []byte   `json:"bytes"`
	ID    chord.ID `json:"id"`
}

type echoReply struct {
	Text  string   `json:"text"`
	Bytes []byte   `json:"bytes"`
	ID    chord.ID `json:"id"`
	From  chord.ID `json:"from"`
}

// testHandler is the handler every suite node serves.
type testHandler struct {
	// block is closed by the test to release "block" calls.
	block chan struct{}
}

func (h *testHandler) ServeRPC(ctx context.Context, from chord.ID, method string, params json.RawMessage) (any, error) {
	switch method {
	case "echo":
		var a echoArgs
		if err := json.Unmarshal(params, &a); err != nil {
			return nil, fmt.Errorf("%w: %v", chord.ErrBadRequest, err)
		}
		return echoReply{Text: a.Text, Bytes: a.Bytes, ID: a.ID, From: from}, nil
	case "nothing":
		return nil, nil
	case "notfound":
		return nil, fmt.Errorf("looking for it: %w", chord.ErrNotFound)
	case "notowner":
		return nil, chord.ErrNotOwner
	case "plain":
		return nil, errors.New("some local failure")
	case "block":
		select {
		case <-h.block:
		case <-ctx.Done():
		}
		return "released", nil
	}
	return nil, chord.ErrUnknownMethod
}

// Run runs every conformance test against the transport built by newHarness.
func Run(t *testing.T, newHarness func(t *testing.T) Harness) {
	type pair struct {
		a, b   chord.NodeInfo
		ta, tb chord.Transport
		hb     *testHandler
	}
	setup := func(t *testing.T) (Harness, pair) {
		t.Helper()
		hs := newHarness(t)
		ha := &testHandler{block: make(chan struct{})}
		hb := &testHandler{block: make(chan struct{})}
		t.Cleanup(func() { close(ha.block); close(hb.block) })
		a, ta := hs.NewNode(t, ha)
		b, tb := hs.NewNode(t, hb)
		if a.ID == b.ID || a.ID.IsZero() || b.ID.IsZero() {
			t.Fatalf("harness gave IDs %v and %v; want two distinct non-zero IDs", a.ID, b.ID)
		}
		return hs, pair{a: a, b: b, ta: ta, tb: tb, hb: hb}
	}
	ctxT := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t.Cleanup(cancel)
		return ctx
	}

	t.Run("RoundTrip", func(t *testing.T) {
		_, p := setup(t)
		args := echoArgs{Text: "hello", Bytes: []byte{0, 1, 2, 255}, ID: chord.ID{1, 2, 3}}
		var reply echoReply
		if err := p.ta.Call(ctxT(t), p.b, "echo", args, &reply); err != nil {
			t.Fatalf("Call(echo) = %v; want nil", err)
		}
		if reply.Text != args.Text || string(reply.Bytes) != string(args.Bytes) || reply.ID != args.ID {
			t.Fatalf("echo reply = %+v; want the args %+v back", reply, args)
		}
		if reply.From != p.a.ID {
			t.Fatalf("handler saw caller %v; want %v", reply.From, p.a.ID)
		}
	})

	t.Run("BothDirections", func(t *testing.T) {
		_, p := setup(t)
		var r1, r2 echoReply
		if err := p.ta.Call(ctxT(t), p.b, "echo", echoArgs{Text: "ab"}, &r1); err != nil {
			t.Fatalf("a->b: %v", err)
		}
		if err := p.tb.Call(ctxT(t), p.a, "echo", echoArgs{Text: "ba"}, &r2); err != nil {
			t.Fatalf("b->a: %v", err)
		}
		if r1.From != p.a.ID || r2.From != p.b.ID {
			t.Fatalf("callers seen: %v, %v; want %v, %v", r1.From, r2.From, p.a.ID, p.b.ID)
		}
	})

	t.Run("NilResultAndNilReply", func(t *testing.T) {
		_, p := setup(t)
		if err := p.ta.Call(ctxT(t), p.b, "nothing", nil, nil); err != nil {
			t.Fatalf("Call(nothing) = %v; want nil", err)
		}
		if err := p.ta.Call(ctxT(t), p.b, "echo", echoArgs{Text: "x"}, nil); err != nil {
			t.Fatalf("Call(echo, reply nil) = %v; want nil", err)
		}
	})

	t.Run("RemoteSentinels", func(t *testing.T) {
		_, p := setup(t)
		for _, tc := range []struct {
			method string
			want   error
		}{
			{"notfound", chord.ErrNotFound},
			{"notowner", chord.ErrNotOwner},
			{"plain", chord.ErrInternal},
			{"no-such-method", chord.ErrUnknownMethod},
		} {
			err := p.ta.Call(ctxT(t), p.b, tc.method, nil, nil)
			if !errors.Is(err, tc.want) {
				t.Errorf("Call(%s) = %v; want errors.Is %v", tc.method, err, tc.want)
			}
			var re *chord.RemoteError
			if !errors.As(err, &re) {
				t.Errorf("Call(%s) = %T; want a *chord.RemoteError", tc.method, err)
			}
		}
		// A bad request is reported as such.
		err := p.ta.Call(ctxT(t), p.b, "echo", map[string]int{"text": 5}, nil)
		if !errors.Is(err, chord.ErrBadRequest) {
			t.Errorf("Call(echo, bad params) = %v; want %v", err, chord.ErrBadRequest)
		}
	})

	t.Run("ZeroIDAcceptsAnyPeer", func(t *testing.T) {
		_, p := setup(t)
		var reply echoReply
		if err := p.ta.Call(ctxT(t), chord.NodeInfo{Addr: p.b.Addr}, "echo", echoArgs{Text: "z"}, &reply); err != nil {
			t.Fatalf("Call to address only = %v; want nil", err)
		}
	})

	t.Run("IdentityMismatch", func(t *testing.T) {
		_, p := setup(t)
		wrong := chord.NodeInfo{ID: p.a.ID, Addr: p.b.Addr} // b's address, a's ID
		err := p.ta.Call(ctxT(t), wrong, "echo", echoArgs{}, nil)
		if !errors.Is(err, chord.ErrIdentityMismatch) {
			t.Fatalf("Call to %v = %v; want %v", wrong, err, chord.ErrIdentityMismatch)
		}
		// The right identity still works afterwards.
		if err := p.ta.Call(ctxT(t), p.b, "echo", echoArgs{}, nil); err != nil {
			t.Fatalf("Call after mismatch = %v; want nil", err)
		}
	})

	t.Run("Deadline", func(t *testing.T) {
		_, p := setup(t)
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := p.ta.Call(ctx, p.b, "block", nil, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Call(block) with deadline = %v; want %v", err, context.DeadlineExceeded)
		}
		// The connection stays usable.
		if err := p.ta.Call(ctxT(t), p.b, "echo", echoArgs{}, nil); err != nil {
			t.Fatalf("Call after a timed-out call = %v; want nil", err)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		_, p := setup(t)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.ta.Call(ctx, p.b, "block", nil, nil) }()
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled Call = %v; want %v", err, context.Canceled)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("cancelled Call did not return")
		}
	})

	t.Run("Unreachable", func(t *testing.T) {
		hs, p := setup(t)
		if err := p.ta.Call(ctxT(t), p.b, "echo", echoArgs{}, nil); err != nil {
			t.Fatalf("Call before stop = %v", err)
		}
		hs.Stop(t, p.b)
		err := p.ta.Call(ctxT(t), p.b, "echo", echoArgs{}, nil)
		if !errors.Is(err, chord.ErrUnreachable) {
			t.Fatalf("Call to stopped node = %v; want %v", err, chord.ErrUnreachable)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		_, p := setup(t)
		const n = 64
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			wg.Go(func() {
				text := fmt.Sprintf("call-%d", i)
				var reply echoReply
				if err := p.ta.Call(ctxT(t), p.b, "echo", echoArgs{Text: text}, &reply); err != nil {
					errs <- err
					return
				}
				if reply.Text != text {
					errs <- fmt.Errorf("reply %q to %q", reply.Text, text)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("SlowCallDoesNotBlockOthers", func(t *testing.T) {
		_, p := setup(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { _ = p.ta.Call(ctx, p.b, "block", nil, nil) }()
		if err := p.ta.Call(ctxT(t), p.b, "echo", echoArgs{Text: "fast"}, nil); err != nil {
			t.Fatalf("Call while another blocks = %v; want nil", err)
		}
	})
}
