package rpc

import (
	"context"
	"net"
	"testing"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto/cryptotest"
)

// benchPair starts a server and a client on loopback.
func benchPair(b *testing.B) (*Client, chord.NodeInfo) {
	b.Helper()
	ca, keys := cryptotest.NewCA(b), cryptotest.NewKeyring(b)
	srvID := cryptotest.NewIdentity(b, ca, "127.0.0.1:0")
	srv, err := NewServer(DefaultServerConfig(), srvID, keys, echo)
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	cli, err := NewClient(DefaultClientConfig(), cryptotest.NewIdentity(b, ca, "127.0.0.1:0"), keys)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cli.Close()
		_ = srv.Close()
		<-served
	})
	to := chord.NodeInfo{ID: srvID.ID, Addr: l.Addr().String()}
	if err := cli.Call(context.Background(), to, "echo", 0, nil); err != nil {
		b.Fatal(err)
	}
	return cli, to
}

type benchArgs struct {
	Key   chord.ID `json:"key"`
	Value []byte   `json:"value"`
}

// BenchmarkCall measures one call at a time on the pooled connection.
func BenchmarkCall(b *testing.B) {
	cli, to := benchPair(b)
	args := benchArgs{Key: chord.ID{1}, Value: make([]byte, 100)}
	var reply benchArgs
	b.ReportAllocs()
	for b.Loop() {
		if err := cli.Call(context.Background(), to, "echo", args, &reply); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallParallel measures concurrent calls sharing one connection.
func BenchmarkCallParallel(b *testing.B) {
	cli, to := benchPair(b)
	args := benchArgs{Key: chord.ID{1}, Value: make([]byte, 100)}
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		var reply benchArgs
		for pb.Next() {
			if err := cli.Call(context.Background(), to, "echo", args, &reply); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
