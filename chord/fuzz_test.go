package chord_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/chord/chordtest"
)

// FuzzServeRPC feeds arbitrary params to every wire method: the node must
// not panic, must reject what it cannot decode with ErrBadRequest, and must
// return results that encode as JSON.
func FuzzServeRPC(f *testing.F) {
	methods := []string{"chord.find_successor", "chord.neighbours", "chord.ping", "chord.notify", "chord.leave", "chord.status", "x"}
	id := testID(2).String()
	for i := range methods {
		f.Add(uint8(i), []byte(`{"id":"`+id+`"}`), false)
		f.Add(uint8(i), []byte(`{"node":{"id":"`+id+`","address":"b"},"role":"successor"}`), true)
		f.Add(uint8(i), []byte(`{"node":{"id":"`+id+`","address":"b"},"predecessor":null,"successors":[{"id":"`+id+`","address":"c"}]}`), true)
		f.Add(uint8(i), []byte(`null`), false)
	}
	f.Fuzz(func(t *testing.T, m uint8, params []byte, fromNamed bool) {
		net, err := chordtest.New(chordtest.Config{})
		if err != nil {
			t.Fatal(err)
		}
		info := chord.NodeInfo{ID: testID(1), Addr: "a"}
		n, err := chord.New(chord.DefaultConfig(), info, net.Transport(info), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Create(); err != nil {
			t.Fatal(err)
		}
		from := testID(3)
		if fromNamed {
			from = testID(2)
		}
		method := methods[int(m)%len(methods)]
		res, err := n.ServeRPC(context.Background(), from, method, json.RawMessage(params))
		if err != nil {
			if !errors.Is(err, chord.ErrBadRequest) && !errors.Is(err, chord.ErrUnknownMethod) {
				t.Fatalf("ServeRPC(%s, %q) = %v; want nil, ErrBadRequest or ErrUnknownMethod", method, params, err)
			}
			return
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatalf("ServeRPC(%s, %q) result does not encode: %v", method, params, err)
		}
		// The node still answers sensibly afterwards.
		if _, err := n.ServeRPC(context.Background(), from, "chord.ping", nil); err != nil {
			t.Fatalf("ping after ServeRPC(%s, %q) = %v", method, params, err)
		}
		st := n.Status()
		if len(st.Successors) == 0 {
			t.Fatalf("Status after ServeRPC(%s, %q) has no successors", method, params)
		}
	})
}
