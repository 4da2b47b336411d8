package chordtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/chord/chordtest"
	"github.com/durachord/durachord/chord/transporttest"
)

type harness struct {
	net *chordtest.Network
	n   int
}

func (h *harness) NewNode(t *testing.T, hd chord.Handler) (chord.NodeInfo, chord.Transport) {
	t.Helper()
	h.n++
	info := chord.NodeInfo{ID: chord.KeyPosition([32]byte{byte(h.n), 1}), Addr: fmt.Sprintf("node-%d", h.n)}
	h.net.Listen(info, hd)
	t.Cleanup(func() { h.net.Remove(info.Addr) })
	return info, h.net.Transport(info)
}

func (h *harness) Stop(t *testing.T, n chord.NodeInfo) { h.net.Down(n.Addr) }

func TestConformance(t *testing.T) {
	for _, cfg := range []struct {
		name string
		cfg  chordtest.Config
	}{
		{"instant", chordtest.Config{}},
		{"latency", chordtest.Config{Latency: time.Millisecond, Jitter: time.Millisecond}},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			transporttest.Run(t, func(t *testing.T) transporttest.Harness {
				net, err := chordtest.New(cfg.cfg)
				if err != nil {
					t.Fatal(err)
				}
				return &harness{net: net}
			})
		})
	}
}

func echo(_ context.Context, from chord.ID, method string, _ json.RawMessage) (any, error) {
	return from, nil
}

func TestPartitionLossAndDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net, err := chordtest.New(chordtest.Config{UnreachableDelay: 2 * time.Second, Latency: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		a := chord.NodeInfo{ID: chord.ID{1}, Addr: "a"}
		b := chord.NodeInfo{ID: chord.ID{2}, Addr: "b"}
		h := chord.HandlerFunc(func(ctx context.Context, from chord.ID, method string, p json.RawMessage) (any, error) {
			return echo(ctx, from, method, p)
		})
		net.Listen(a, h)
		net.Listen(b, h)
		ta := net.Transport(a)
		ctx := context.Background()
		var got chord.ID
		if err := ta.Call(ctx, b, "x", nil, &got); err != nil || got != a.ID {
			t.Fatalf("Call(b) = %v, %v; want nil, %v", got, err, a.ID)
		}
		net.Partition([]string{"a"}, []string{"b"})
		start := time.Now()
		err = ta.Call(ctx, b, "x", nil, nil)
		if !errors.Is(err, chord.ErrUnreachable) {
			t.Fatalf("Call across partition = %v; want %v", err, chord.ErrUnreachable)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Fatalf("unreachable call took %v of virtual time; want the UnreachableDelay 2s", d)
		}
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		if err := ta.Call(short, b, "x", nil, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("unreachable call with 1s deadline = %v; want %v", err, context.DeadlineExceeded)
		}
		net.Heal()
		if err := ta.Call(ctx, b, "x", nil, nil); err != nil {
			t.Fatalf("Call after Heal = %v; want nil", err)
		}
	})
}

func TestLoss(t *testing.T) {
	net, err := chordtest.New(chordtest.Config{Loss: 1})
	if err != nil {
		t.Fatal(err)
	}
	b := chord.NodeInfo{ID: chord.ID{2}, Addr: "b"}
	net.Listen(b, chord.HandlerFunc(func(context.Context, chord.ID, string, json.RawMessage) (any, error) { return nil, nil }))
	err = net.Transport(chord.NodeInfo{ID: chord.ID{1}, Addr: "a"}).Call(context.Background(), b, "x", nil, nil)
	if !errors.Is(err, chord.ErrUnreachable) {
		t.Fatalf("Call with loss 1 = %v; want %v", err, chord.ErrUnreachable)
	}
	if _, err := chordtest.New(chordtest.Config{Loss: 2}); !errors.Is(err, chordtest.ErrConfig) {
		t.Fatalf("New(Loss: 2) = %v; want %v", err, chordtest.ErrConfig)
	}
}
