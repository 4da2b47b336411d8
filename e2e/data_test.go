package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
)

// dataSet is a numbered set of records: key testKey(Name, i), value
// testValue(Name, i), for i in [0, N).
type dataSet struct {
	Name string
	N    int
}

// putAll writes every record of ds with conns connections spread over nodes
// (round robin), window PUTs at a time per connection, each window followed
// by GETs of its keys on the same connection (read-your-writes makes them
// the acknowledgement that PUT lacks). A record whose GET does not return
// its value is put again, up to three times; putAll returns how many PUTs
// were not visible at the first GET (lost), and fails the test if a record
// could not be stored at all.
func putAll(t *testing.T, ctx context.Context, nodes []*Node, ds dataSet, conns, window int, ttl uint16, replication uint8) (lost int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex // guards lost, sample
	var sample string
	errs := make(chan error, conns)
	for c := range conns {
		node := nodes[c%len(nodes)]
		wg.Go(func() {
			cl, err := api.Dial(ctx, node.API)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", node.Name, err)
				return
			}
			defer cl.Close()
			var mine []int
			for i := c; i < ds.N; i += conns {
				mine = append(mine, i)
			}
			for len(mine) > 0 {
				batch := mine[:min(window, len(mine))]
				mine = mine[len(batch):]
				for attempt := 0; len(batch) > 0; attempt++ {
					if attempt == 3 {
						errs <- fmt.Errorf("via %s: %d records still unreadable after 3 PUTs (e.g. record %d)", node.Name, len(batch), batch[0])
						return
					}
					for _, i := range batch {
						p := api.Put{TTL: ttl, Replication: replication, Key: testKey(ds.Name, i), Value: testValue(ds.Name, i)}
						if err := cl.Put(ctx, p); err != nil {
							errs <- fmt.Errorf("put %d via %s: %w", i, node.Name, err)
							return
						}
					}
					failed := make(chan int, len(batch))
					var gw sync.WaitGroup
					for _, i := range batch {
						gw.Go(func() {
							gctx, cancel := context.WithTimeout(ctx, 15*time.Second)
							defer cancel()
							v, err := cl.Get(gctx, testKey(ds.Name, i))
							if err != nil || !bytes.Equal(v, testValue(ds.Name, i)) {
								failed <- i
								mu.Lock()
								if sample == "" {
									sample = fmt.Sprintf("GET of record %d via %s right after its PUT = %q, %v", i, node.Name, v, err)
								}
								mu.Unlock()
							}
						})
					}
					gw.Wait()
					close(failed)
					batch = batch[:0:0]
					for i := range failed {
						batch = append(batch, i)
					}
					if attempt == 0 {
						mu.Lock()
						lost += len(batch)
						mu.Unlock()
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if lost > 0 {
		t.Logf("%d of %d PUTs were not visible to a GET on the same connection (e.g. %s)", lost, ds.N, sample)
	}
	if t.Failed() {
		t.FailNow()
	}
	return lost
}

// putBurst pipelines every PUT of ds on conns connections spread over nodes,
// with no acknowledgement: as a client that trusts the protocol does.
func putBurst(t *testing.T, ctx context.Context, nodes []*Node, ds dataSet, conns int, ttl uint16, replication uint8) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c := range conns {
		node := nodes[c%len(nodes)]
		wg.Go(func() {
			cl, err := api.Dial(ctx, node.API)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", node.Name, err)
				return
			}
			defer cl.Close()
			for i := c; i < ds.N; i += conns {
				p := api.Put{TTL: ttl, Replication: replication, Key: testKey(ds.Name, i), Value: testValue(ds.Name, i)}
				if err := cl.Put(ctx, p); err != nil {
					errs <- fmt.Errorf("put %d via %s: %w", i, node.Name, err)
					return
				}
			}
			// A last GET keeps the connection open until the node has read
			// every PUT sent on it.
			gctx, cancel := context.WithTimeout(ctx, 60*time.Second)
			defer cancel()
			_, _ = cl.Get(gctx, testKey("burst-end", c))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// readResult says how a read pass went.
type readResult struct {
	firstPass int   // records not read correctly in the first pass
	missing   []int // records still not read correctly when the deadline passed
	sample    string
}

// readAll reads every record of ds through node with conns connections and
// par GETs in flight on each; records not read correctly are retried until
// they are or ctx ends. A GET that fails once is retried, not counted as
// lost: only what is still unreadable at the end is missing.
func readAll(ctx context.Context, node *Node, ds dataSet, conns, par int) readResult {
	todo := make([]int, ds.N)
	for i := range todo {
		todo[i] = i
	}
	var res readResult
	for pass := 0; ; pass++ {
		failed, sample := readPass(ctx, node, ds, todo, conns, par)
		if pass == 0 {
			res.firstPass = len(failed)
			res.sample = sample
		}
		if len(failed) == 0 || ctx.Err() != nil {
			res.missing = failed
			if res.sample == "" {
				res.sample = sample
			}
			return res
		}
		todo = failed
		t := time.NewTimer(500 * time.Millisecond) // pacing between retry passes, not a wait for a condition
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

func readPass(ctx context.Context, node *Node, ds dataSet, idx []int, conns, par int) (failed []int, sample string) {
	var mu sync.Mutex // guards failed, sample
	fail := func(i int, why string) {
		mu.Lock()
		failed = append(failed, i)
		if sample == "" {
			sample = why
		}
		mu.Unlock()
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range conns {
		cl, err := api.Dial(ctx, node.API)
		if err != nil {
			// No connection: every record this pass is unread.
			mu.Lock()
			if sample == "" {
				sample = err.Error()
			}
			mu.Unlock()
			continue
		}
		var cw sync.WaitGroup
		for range par {
			cw.Go(func() {
				for i := range work {
					gctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					v, err := cl.Get(gctx, testKey(ds.Name, i))
					cancel()
					switch {
					case errors.Is(err, api.ErrNotFound):
						fail(i, fmt.Sprintf("GET record %d via %s = FAILURE", i, node.Name))
					case err != nil:
						fail(i, fmt.Sprintf("GET record %d via %s: %v", i, node.Name, err))
					case !bytes.Equal(v, testValue(ds.Name, i)):
						fail(i, fmt.Sprintf("GET record %d via %s = %q; want %q", i, node.Name, v, testValue(ds.Name, i)))
					}
				}
			})
		}
		wg.Go(func() {
			cw.Wait()
			_ = cl.Close()
		})
	}
	sent := 0
	for _, i := range idx {
		select {
		case work <- i:
			sent++
			continue
		case <-ctx.Done():
		}
		break
	}
	close(work)
	wg.Wait()
	// What was never handed out is unread too.
	failed = append(failed, idx[sent:]...)
	slices.Sort(failed)
	if sent < len(idx) && sample == "" {
		sample = "deadline passed before the pass ended"
	}
	return failed, sample
}

// checkAllReadable fails the test unless every record of ds is readable
// through each node within timeout.
func checkAllReadable(t *testing.T, ctx context.Context, nodes []*Node, ds dataSet, timeout time.Duration) {
	t.Helper()
	for _, n := range nodes {
		rctx, cancel := context.WithTimeout(ctx, timeout)
		start := time.Now()
		res := readAll(rctx, n, ds, 4, 8)
		cancel()
		if res.firstPass > 0 {
			t.Logf("via %s: %d of %d records not read at the first try (e.g. %s)", n.Name, res.firstPass, ds.N, res.sample)
		}
		if len(res.missing) > 0 {
			t.Errorf("via %s: %d of %d records of %q unreadable after %v (first: %v; e.g. %s)",
				n.Name, len(res.missing), ds.N, ds.Name, timeout, res.missing[:min(10, len(res.missing))], res.sample)
		} else {
			t.Logf("via %s: all %d records read in %v", n.Name, ds.N, time.Since(start).Round(time.Millisecond))
		}
	}
}

// testKey is the 32-byte DHT key of record i of a test data set.
func testKey(set string, i int) [32]byte {
	return sha256.Sum256([]byte(fmt.Sprintf("e2e/%s/%d", set, i)))
}

// testValue is the value of record i.
func testValue(set string, i int) []byte {
	return []byte(fmt.Sprintf("value of %s record %d: %s", set, i, strings.Repeat("x", i%50)))
}
