package api_test

import (
	"bufio"
	"bytes"
	"context"
	"testing"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/api/apitest"
)

func BenchmarkParseGet(b *testing.B) {
	wire := api.Get{Key: key("k")}.AppendTo(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := api.Parse(wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadMessagePut(b *testing.B) {
	wire := api.Put{Key: key("k"), Value: bytes.Repeat([]byte("v"), 1024)}.AppendTo(nil)
	r := bytes.NewReader(wire)
	br := bufio.NewReader(r)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(wire)
		br.Reset(r)
		if _, err := api.ReadMessage(br); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetPipelined: many goroutines share one connection (pipelined
// GETs of 100-byte values from an in-memory service).
func BenchmarkGetPipelined(b *testing.B) {
	cfg := api.DefaultConfig()
	cfg.MaxInFlight = 256
	svc := apitest.NewMemService()
	k := key("bench")
	if err := svc.Put(context.Background(), api.Put{Key: k, Value: bytes.Repeat([]byte("v"), 100)}); err != nil {
		b.Fatal(err)
	}
	_, addr := apitest.Serve(b, cfg, svc)
	c, err := api.Dial(context.Background(), addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get(context.Background(), k); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetSerial: one GET at a time on one connection (round trip).
func BenchmarkGetSerial(b *testing.B) {
	svc := apitest.NewMemService()
	k := key("bench")
	if err := svc.Put(context.Background(), api.Put{Key: k, Value: []byte("v")}); err != nil {
		b.Fatal(err)
	}
	_, addr := apitest.Serve(b, api.DefaultConfig(), svc)
	c, err := api.Dial(context.Background(), addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	for b.Loop() {
		if _, err := c.Get(context.Background(), k); err != nil {
			b.Fatal(err)
		}
	}
}
