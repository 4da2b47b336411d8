package api_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/api/apitest"
)

func dialClient(t *testing.T, addr string) *api.Client {
	t.Helper()
	c, err := api.Dial(context.Background(), addr)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func TestClientPutGet(t *testing.T) {
	cfg, _ := testConfig(t)
	_, addr := apitest.Serve(t, cfg, apitest.NewMemService())
	c := dialClient(t, addr)
	ctx := context.Background()
	k := key("k")
	if err := c.Put(ctx, api.Put{TTL: 60, Replication: 1, Key: k, Value: []byte("v")}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if v, err := c.Get(ctx, k); err != nil || string(v) != "v" {
		t.Fatalf("Get(k) = %q, %v; want %q", v, err, "v")
	}
	if v, err := c.Get(ctx, key("absent")); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Get(absent) = %q, %v; want %v", v, err, api.ErrNotFound)
	}
	if err := c.Put(ctx, api.Put{Key: k}); !errors.Is(err, api.ErrValueSize) {
		t.Fatalf("Put(empty value) = %v; want %v", err, api.ErrValueSize)
	}
}

func TestClientConcurrent(t *testing.T) {
	cfg, _ := testConfig(t)
	_, addr := apitest.Serve(t, cfg, apitest.NewMemService())
	c := dialClient(t, addr)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for w := range 32 {
		wg.Go(func() {
			for i := range 50 {
				k := key(fmt.Sprintf("w%d-%d", w, i%10))
				want := fmt.Sprintf("v%d-%d", w, i)
				if err := c.Put(ctx, api.Put{Key: k, Value: []byte(want)}); err != nil {
					errs <- err
					return
				}
				if v, err := c.Get(ctx, k); err != nil || string(v) != want {
					errs <- fmt.Errorf("Get(%s) = %q, %v; want %q", k, v, err, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// fakeNode serves one connection with a script: it reads GETs and lets the
// test write whatever it wants.
func fakeNode(t *testing.T) (addr string, conns <-chan net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan net.Conn, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		t.Cleanup(func() { nc.Close() })
		ch <- nc
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
	})
	return l.Addr().String(), ch
}

func TestClientSameKeyInOrder(t *testing.T) {
	addr, conns := fakeNode(t)
	c := dialClient(t, addr)
	nc := <-conns
	br := bufio.NewReader(nc)
	k := key("k")
	ctx := context.Background()
	results := make([]chan string, 3)
	for i := range results {
		results[i] = make(chan string, 1)
		go func() {
			v, err := c.Get(ctx, k)
			results[i] <- fmt.Sprint(string(v), err)
		}()
		// Wait until GET i is on the wire before starting the next.
		if _, err := api.ReadMessage(br); err != nil {
			t.Fatal(err)
		}
	}
	var b []byte
	for i := range results {
		b = api.Success{Key: k, Value: []byte(fmt.Sprint(i))}.AppendTo(b)
	}
	if _, err := nc.Write(b); err != nil {
		t.Fatal(err)
	}
	for i, ch := range results {
		if got, want := <-ch, fmt.Sprint(i, "<nil>"); got != want {
			t.Errorf("GET %d = %s; want %s", i, got, want)
		}
	}
}

func TestClientUnexpectedReply(t *testing.T) {
	addr, conns := fakeNode(t)
	c := dialClient(t, addr)
	nc := <-conns
	k := key("k")
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), k)
		errc <- err
	}()
	if _, err := api.ReadMessage(bufio.NewReader(nc)); err != nil {
		t.Fatal(err)
	}
	// A reply for a key nobody asked for ends the client.
	if _, err := nc.Write(api.Failure{Key: key("other")}.AppendTo(nil)); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, api.ErrClientClosed) || !errors.Is(err, api.ErrUnexpectedType) {
		t.Fatalf("Get after a stray reply = %v; want %v and %v", err, api.ErrClientClosed, api.ErrUnexpectedType)
	}
	if _, err := c.Get(context.Background(), k); !errors.Is(err, api.ErrClientClosed) {
		t.Fatalf("Get on a failed client = %v; want %v", err, api.ErrClientClosed)
	}
}

func TestClientDeadline(t *testing.T) {
	addr, conns := fakeNode(t)
	c := dialClient(t, addr)
	<-conns // never answers
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, key("k")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get against a silent node = %v; want %v", err, context.DeadlineExceeded)
	}
}

func TestClientClose(t *testing.T) {
	addr, conns := fakeNode(t)
	c, err := api.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	<-conns
	if err := c.Err(); err != nil {
		t.Fatalf("Err() before Close = %v; want nil", err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(context.Background(), key("k"))
		errc <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := <-errc; !errors.Is(err, api.ErrClientClosed) {
		t.Fatalf("Get during Close = %v; want %v", err, api.ErrClientClosed)
	}
	if err := c.Err(); !errors.Is(err, api.ErrClientClosed) {
		t.Fatalf("Err() after Close = %v; want %v", err, api.ErrClientClosed)
	}
	if err := c.Put(context.Background(), api.Put{Key: key("k"), Value: []byte("v")}); !errors.Is(err, api.ErrClientClosed) {
		t.Fatalf("Put after Close = %v; want %v", err, api.ErrClientClosed)
	}
}
