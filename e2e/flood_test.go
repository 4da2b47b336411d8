package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
)

// floodConns is how many idle connections the flood holds open at once.
const floodConns = 1100

// floodSource is the address the flood comes from.
const floodSource = "127.0.0.66"

// raiseFileLimit raises the soft limit on open files to the hard limit, for
// this process and the daemons it starts (they inherit it), and checks that
// it leaves room for the flood.
func raiseFileLimit(t *testing.T, need uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatalf("raise the open file limit to %d: %v", lim.Max, err)
		}
	}
	if lim.Cur < need {
		t.Fatalf("open file limit %d (hard limit %d); this test needs %d", lim.Cur, lim.Max, need)
	}
}

// floodMaxDials bounds the connections one flood opens: at one per
// floodRedialEvery, some 30 s of flooding.
const floodMaxDials = 30 * floodConns

// floodRedialEvery spaces the flood's new connections after the first
// count: at most one per interval over the whole flood.
const floodRedialEvery = time.Millisecond

// flood holds idle connections from floodSource to addr: it opens count,
// sends nothing, and opens a new one each time the node closes one (at most
// one per floodRedialEvery), until it has opened maxDials or is stopped.
type flood struct {
	addr     string
	dials    atomic.Int64
	maxDials int64
	redial   *time.Ticker
	stop     chan struct{}
	wg       sync.WaitGroup
}

func startFlood(t *testing.T, addr string, count int, maxDials int64) *flood {
	t.Helper()
	f := &flood{addr: addr, maxDials: maxDials, redial: time.NewTicker(floodRedialEvery), stop: make(chan struct{})}
	ready := make(chan struct{}, count)
	for range count {
		f.wg.Go(func() { f.hold(ready) })
	}
	for range count {
		<-ready
	}
	t.Cleanup(f.Stop)
	return f
}

// hold keeps one connection of the flood open, opening a new one when the
// node closes it.
func (f *flood) hold(ready chan<- struct{}) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(floodSource)}, Timeout: 5 * time.Second}
	first := true
	for f.dials.Add(1) <= f.maxDials {
		if !first {
			select {
			case <-f.stop:
				return
			case <-f.redial.C:
			}
		}
		c, err := d.Dial("tcp", f.addr)
		if first {
			ready <- struct{}{}
			first = false
		}
		if err != nil {
			continue
		}
		closed := make(chan struct{})
		go func() {
			var b [1]byte
			_, _ = c.Read(b[:]) // returns when the node closes it (or the flood does)
			close(closed)
		}()
		select {
		case <-f.stop:
			_ = c.Close()
			<-closed
			return
		case <-closed:
			_ = c.Close()
		}
	}
	if first {
		ready <- struct{}{}
	}
}

// Stop closes the flood's connections and waits for its goroutines.
func (f *flood) Stop() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
	}
	f.wg.Wait()
	f.redial.Stop()
}

// Dials returns how many connections the flood opened or tried to.
func (f *flood) Dials() int64 { return min(f.dials.Load(), f.maxDials) }

// servedWithin1s checks that a client from 127.0.0.1 gets a PUT and a GET
// through the node's API within 1 s each.
func servedWithin1s(t *testing.T, n *Node, tag string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	nc, err := d.DialContext(ctx, "tcp", n.API)
	if err != nil {
		t.Fatalf("%s: dial the API from 127.0.0.1: %v", tag, err)
	}
	cl := api.NewClient(nc)
	defer cl.Close()
	var k [api.KeySize]byte
	copy(k[:], tag)
	v := []byte("value " + tag)
	if err := cl.Put(ctx, api.Put{Key: k, Value: v}); err != nil {
		t.Fatalf("%s: PUT from 127.0.0.1 not served within 1 s: %v", tag, err)
	}
	got, err := cl.Get(ctx, k)
	if err != nil || string(got) != string(v) {
		t.Fatalf("%s: GET from 127.0.0.1 within 1 s = %q, %v; want %q", tag, got, err, v)
	}
}

func TestIdleConnectionFloodLocksNobodyOut(t *testing.T) {
	requireE2E(t)
	raiseFileLimit(t, 2*floodConns+1000)
	c := NewCluster(t, ClusterOptions{})
	n0 := c.NewNode(NodeOptions{})
	n0.Start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c.WaitStable(ctx)

	// The client API: 1,100 idle connections from one address, reopened as
	// the node closes them.
	apiFlood := startFlood(t, n0.API, floodConns, floodMaxDials)
	for i := range 3 {
		servedWithin1s(t, n0, fmt.Sprintf("during the api flood %d", i))
	}
	evicted, err := n0.Metric(ctx, "durachord_api_connections_evicted_total", "reason", "max_conns_per_address")
	if err != nil {
		t.Fatal(err)
	}
	if evicted < floodConns-256 {
		t.Errorf("api connections evicted = %v; want at least %d (the flood beyond max_conns_per_address)", evicted, floodConns-256)
	}
	apiFlood.Stop()

	// The p2p port: the same, then a new node joins through the flooded node.
	p2pFlood := startFlood(t, n0.P2P, floodConns, floodMaxDials)
	servedWithin1s(t, n0, "during the p2p flood")
	n1 := c.NewNode(NodeOptions{})
	n1.Start(n0.P2P)
	// Before, the flood held every slot for the 10 s handshake timeout and
	// took them again as they were freed, for as long as it went on.
	jctx, jcancel := context.WithTimeout(ctx, 15*time.Second)
	defer jcancel()
	c.WaitStable(jctx)
	servedWithin1s(t, n1, "through the new node during the p2p flood")
	evicted, err = n0.Metric(ctx, "durachord_rpc_connections_evicted_total", "reason", "max_conns_per_address")
	if err != nil {
		t.Fatal(err)
	}
	if evicted < floodConns-128 {
		t.Errorf("p2p connections evicted = %v; want at least %d (the flood beyond max_conns_per_address)", evicted, floodConns-128)
	}
	p2pFlood.Stop()
	t.Logf("flood dials: api %d, p2p %d; p2p connections evicted %v", apiFlood.Dials(), p2pFlood.Dials(), evicted)

	// The node said so, without a line per connection.
	logData, err := os.ReadFile(n0.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Count(string(logData), "connection limit reached")
	if lines == 0 || lines > 4 {
		t.Errorf("%d log lines about the connection limits; want 1 to 4 (once a minute per address and server)", lines)
	}
	if len(logData) > 1<<20 {
		t.Errorf("the node's log is %d bytes after the floods; want well under 1 MiB", len(logData))
	}
}
