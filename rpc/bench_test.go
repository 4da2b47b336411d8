package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"testing"

	"github.com/durachord/durachord/chord"
	"github.com/durachord/durachord/crypto/cryptotest"
)

// benchPair starts a server answering with h and a client on loopback,
// with the connection already open.
func benchPair(b *testing.B, h chord.Handler) (*Client, chord.NodeInfo) {
	b.Helper()
	ca, keys := cryptotest.NewCA(b), cryptotest.NewKeyring(b)
	srvID := cryptotest.NewIdentity(b, ca, "127.0.0.1:0")
	srv, err := NewServer(DefaultServerConfig(), srvID, keys, h)
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
	return cli, chord.NodeInfo{ID: srvID.ID, Addr: l.Addr().String()}
}

type benchArgs struct {
	Key   chord.ID `json:"key"`
	Value []byte   `json:"value"`
}

// BenchmarkCall measures one call at a time on the pooled connection.
func BenchmarkCall(b *testing.B) {
	cli, to := benchPair(b, echo)
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
	cli, to := benchPair(b, echo)
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

// getArgs and getReply have the shape of dht.get: a 32-byte key in, a record
// with a 100-byte value out.
type getArgs struct {
	Key chord.ID `json:"key"`
}

type getVersion struct {
	Clock uint64 `json:"clock"`
	Node  uint64 `json:"node"`
}

type getReply struct {
	Key         chord.ID   `json:"key"`
	Value       []byte     `json:"value"`
	Expiry      int64      `json:"expiry"`
	Version     getVersion `json:"version"`
	Replication uint8      `json:"replication"`
}

// getHandler answers "dht.get" as the records service does: it decodes the
// key and returns a record.
var getHandler = chord.HandlerFunc(func(_ context.Context, _ chord.ID, method string, params json.RawMessage) (any, error) {
	if method != "dht.get" {
		return nil, chord.ErrUnknownMethod
	}
	var a getArgs
	if err := json.Unmarshal(params, &a); err != nil {
		return nil, chord.ErrBadRequest
	}
	return getReply{
		Key:         a.Key,
		Value:       benchValue,
		Expiry:      1798761600000000000,
		Version:     getVersion{Clock: 1764582000123456789, Node: 0x1234567890abcdef},
		Replication: 3,
	}, nil
})

var benchValue = bytes.Repeat([]byte{'v'}, 100)

// getPair starts a server answering dht.get and a client on loopback,
// with the connection already open.
func getPair(b *testing.B) (*Client, chord.NodeInfo) {
	b.Helper()
	cli, to := benchPair(b, getHandler)
	var reply getReply
	if err := cli.Call(context.Background(), to, "dht.get", getArgs{Key: chord.ID{1}}, &reply); err != nil {
		b.Fatal(err)
	}
	if !bytes.Equal(reply.Value, benchValue) {
		b.Fatalf("dht.get value = %q; want %q", reply.Value, benchValue)
	}
	return cli, to
}

// BenchmarkGet measures one dht.get-shaped round trip at a time over TLS.
func BenchmarkGet(b *testing.B) {
	cli, to := getPair(b)
	args := getArgs{Key: chord.ID{1, 2, 3}}
	b.ReportAllocs()
	for b.Loop() {
		var reply getReply
		if err := cli.Call(context.Background(), to, "dht.get", args, &reply); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetParallel measures dht.get-shaped round trips from 16 callers
// per core sharing one connection, as concurrent GETs through a node do.
func BenchmarkGetParallel(b *testing.B) {
	cli, to := getPair(b)
	args := getArgs{Key: chord.ID{1, 2, 3}}
	b.ReportAllocs()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			var reply getReply
			if err := cli.Call(context.Background(), to, "dht.get", args, &reply); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
