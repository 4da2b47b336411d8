package e2e

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
)

// TestHintsWhileOwnerUnreachable: the owner of some keys is frozen
// (SIGSTOP) for 10 s while writers put those keys and others through
// another node, each PUT followed by a GET on its connection. No PUT fails;
// PUTs that no owner could take in time are kept as hints; once the owner
// is back, every key reads back through a third node with the last value put
// on it, and no node keeps a hint. No GET answers an older value than the
// PUT before it on its connection, also while the owner comes back: a PUT
// that waited in the frozen owner's sockets is refused there, not versioned
// above the writes that followed it.
func TestHintsWhileOwnerUnreachable(t *testing.T) {
	c := NewCluster(t, ClusterOptions{Replication: 3})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	nodes := c.StartNodes(5)
	stable(t, ctx, c)
	ring := c.MustPositions(ctx)
	owner := nodes[4]
	// Keys the owner owns, all with the same next holder, next: it takes the
	// owner's keys over as soon as the owner stops answering, so the entry
	// and the reader are two other nodes. And as many keys elsewhere.
	var next *Node
	var mine, others [][api.KeySize]byte
	for i := 0; len(mine) < 16 || len(others) < 16; i++ {
		if i == 100000 {
			t.Fatalf("found %d keys of the owner's with one next holder and %d others in %d tries", len(mine), len(others), i)
		}
		var k [api.KeySize]byte
		copy(k[:], fmt.Sprintf("hint-%d", i))
		if hs := holders(ring, k, 2); hs[0] == owner {
			if len(mine) < 16 && (next == nil || hs[1] == next) {
				next = hs[1]
				mine = append(mine, k)
			}
		} else if len(others) < 16 {
			others = append(others, k)
		}
	}
	var entry, reader *Node
	for _, n := range nodes[:4] {
		switch {
		case n == next:
		case entry == nil:
			entry = n
		case reader == nil:
			reader = n
		}
	}
	keys := append(mine, others...)

	const writers = 4
	var mu sync.Mutex
	last := make(map[[api.KeySize]byte][]byte) // the last value put on its connection
	stale := 0                                 // GETs after a PUT on its connection that answered something else
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		cl := entry.Dial(ctx)
		wg.Go(func() {
			for seq := 0; ; seq++ {
				select {
				case <-stop:
					return
				default:
				}
				k := keys[(w+seq*writers)%len(keys)]
				v := []byte(fmt.Sprintf("writer-%d-seq-%d", w, seq))
				if err := cl.Put(ctx, api.Put{Key: k, Value: v, TTL: 3600}); err != nil {
					t.Errorf("Put: %v", err)
					return
				}
				got, err := cl.Get(ctx, k)
				mu.Lock()
				last[k] = v
				if err != nil || !bytes.Equal(got, v) {
					stale++
					t.Errorf("GET after PUT of %q on the same connection = %q, %v; want %q", k[:10], got, err, v)
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	owner.Signal(syscall.SIGSTOP)
	time.Sleep(10 * time.Second)
	owner.Signal(syscall.SIGCONT)
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	// A PUT gets no reply: one that failed shows only in the entry's
	// metrics (and, when the GET after it answered the value before, above).
	failed, all, err := entry.FailedPuts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if failed != 0 {
		t.Errorf("%v of %v PUTs failed at the entry node; want none (each is taken by an owner or kept as a hint)", failed, all)
	}
	if t.Failed() {
		t.Logf("%d GETs answered an older value than the PUT before them; the entry node's warnings:\n%s",
			stale, grepLog(entry.LogPath, 40, "[WARN]", "[ERROR]"))
		return
	}

	stored, err := entry.Metric(ctx, "durachord_dht_hints_total", "outcome", "stored")
	if err != nil {
		t.Fatal(err)
	}
	// The owner's successor takes its arc over once the ring has evicted
	// it (about a second here), so only PUTs caught before that can need a
	// hint; the in-memory tests of package dht cover the hints themselves.
	late, err := owner.Metric(ctx, "durachord_dht_refused_records_total", "reason", "late_put")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v PUTs kept as hints while the owner was frozen; %v PUTs that waited through the freeze refused by the owner", stored, late)
	rd := reader.Dial(ctx)
	pctx, pcancel := context.WithTimeout(ctx, time.Minute)
	defer pcancel()
	poll(t, pctx, 200*time.Millisecond, "every key reads back with its last value and no hint is left", func() string {
		for _, n := range nodes {
			kept, err := n.Metric(pctx, "durachord_dht_hints")
			if err != nil {
				return err.Error()
			}
			if kept != 0 {
				return fmt.Sprintf("%s keeps %v hints", n.Name, kept)
			}
		}
		for k, want := range last {
			got, err := rd.Get(pctx, k)
			if err != nil || !bytes.Equal(got, want) {
				return fmt.Sprintf("key %q reads %q, %v through %s; want %q", bytes.TrimRight(k[:], "\x00"), got, err, reader.Name, want)
			}
		}
		return ""
	})
}
