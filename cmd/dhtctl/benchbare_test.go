package main

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
)

// serveBareT serves the bare server on a loopback port until the test ends
// and returns its address and a function that stops it and returns what
// serveBare returned.
func serveBareT(t *testing.T) (addr string, stop func() error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serveBare(ctx, l) }()
	var result error
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			result = <-served
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return l.Addr().String(), stop
}

// dialT connects to addr for the rest of the test; ctx bounds the test's
// requests.
func dialT(t *testing.T, addr string) (context.Context, *api.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	c, err := api.Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ctx, c
}

// TestBareServer: the yardstick answers the protocol as a node does: what
// a connection put it gets back, FAILURE for what nobody put.
func TestBareServer(t *testing.T) {
	addr, _ := serveBareT(t)
	ctx, c := dialT(t, addr)
	k, other := benchKey(1), benchKey(2)
	if err := c.Put(ctx, api.Put{Key: k, Value: []byte("v1")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, api.Put{Key: k, Value: []byte("v2")}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, k); err != nil || string(got) != "v2" {
		t.Fatalf("Get after two PUTs = %q, %v; want \"v2\"", got, err)
	}
	if _, err := c.Get(ctx, other); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get of a key never put = %v; want %v", err, api.ErrNotFound)
	}

	rep := runBenchJSON(t, "--api", addr, "--ops", "300", "-c", "4", "--keys", "40", "--put-confirm", "--preload")
	if rep.Ops != 300 || rep.GetHits != rep.Get.Count || rep.FailedGets != 0 || rep.Errors != 0 {
		t.Fatalf("bench against the bare server: %+v; want 300 ops, every GET a hit", rep)
	}
}

// TestBareServerStops: stopping the bare server closes the connections it
// serves, idle ones included, and returns.
func TestBareServerStops(t *testing.T) {
	addr, stop := serveBareT(t)
	ctx, c := dialT(t, addr)
	if _, err := c.Get(ctx, benchKey(1)); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get = %v; want %v", err, api.ErrNotFound)
	}
	if err := stop(); err != nil {
		t.Fatalf("serveBare = %v; want nil after its context ended", err)
	}
	if _, err := c.Get(ctx, benchKey(1)); !errors.Is(err, api.ErrClientClosed) {
		t.Fatalf("Get after the server stopped = %v; want %v", err, api.ErrClientClosed)
	}
}

// TestBareServerHidden: the fixture is not part of bench's help.
func TestBareServerHidden(t *testing.T) {
	code, stdout, _ := runWithInput(t, nil, "bench", "--help")
	if code != exitOK || strings.Contains(stdout, "bare-server") || strings.Contains(stdout, "COMMANDS") {
		t.Fatalf("bench --help = %d, %q; want 0 and no sub-commands listed", code, stdout)
	}
}
