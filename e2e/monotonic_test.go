package e2e

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
)

// TestMonotonicReadsUnderChurn: on a ring of 8 nodes with replication 3, two
// writers overwrite four keys (two each, so every key has one writer and a
// higher seq on it is newer) while four readers on four other nodes read the
// keys in a loop, and the two remaining nodes, the owners of the keys, are in
// turn killed with SIGKILL and restarted from their data dirs, one every 7 s
// for 35 s. A PUT counts as acknowledged as the other e2e tests count it: the
// protocol has no reply to a PUT, so a writer follows each PUT with a GET of
// the key on the same connection, and the PUT is acknowledged when that GET
// returns its value (read-your-writes), at the moment the GET returns. No
// reader's GET may answer a value older than one acknowledged at least 200 ms
// before the GET began, nor NOT FOUND once the key has been acknowledged
// 200 ms before.
func TestMonotonicReadsUnderChurn(t *testing.T) {
	const (
		numKeys   = 4
		writers   = 2
		readers   = 4
		period    = 7 * time.Second // one kill and restart
		down      = 3 * time.Second // how long a victim stays dead
		rounds    = 5
		grace     = 200 * time.Millisecond
		opTimeout = 5 * time.Second
	)
	c := NewCluster(t, ClusterOptions{Replication: 3})
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	nodes := c.StartNodes(8)
	stable(t, ctx, c)
	ring := c.MustPositions(ctx)

	// The victims are two nodes; the keys are chosen so that each victim
	// owns two of them, one of each writer's. The other six nodes are the writers' and readers' entries.
	victims := nodes[6:]
	entries := nodes[:6]
	var keys [numKeys][api.KeySize]byte
	found := 0
	for i := 0; found < numKeys; i++ {
		if i == 100000 {
			t.Fatalf("found %d of %d keys owned by the victims in %d tries", found, numKeys, i)
		}
		k := testKey("monotonic", i)
		want := victims[found%len(victims)]
		if victimRole(ring, want, k) == "owner" {
			keys[found] = k
			found++
		}
	}
	keyName := func(i int) string { return fmt.Sprintf("key%d(%x)", i, keys[i][:4]) }

	type ack struct {
		seq int
		at  time.Time
	}
	type read struct {
		key   int
		start time.Time
		seq   int // -1: NOT FOUND
		value string
		via   string
	}
	type event struct {
		at   time.Time
		what string
	}
	var (
		mu       sync.Mutex
		acks     [numKeys][]ack // per key, in seq and time order (one writer per key)
		reads    []read
		getErrs  int
		ackMiss  int // PUTs whose GET on the same connection did not return them
		events   []event
		putCount int
	)
	start := time.Now()
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var wg sync.WaitGroup
	for w := range writers {
		cl := entries[w].Dial(ctx)
		wg.Go(func() {
			for seq := 1; !stopped(); seq++ {
				ki := w*(numKeys/writers) + seq%(numKeys/writers)
				v := fmt.Sprintf("key%d-writer%d-seq%d", ki, w, seq)
				octx, ocancel := context.WithTimeout(ctx, opTimeout)
				err := cl.Put(octx, api.Put{Key: keys[ki], Value: []byte(v), TTL: 3600, Replication: 3})
				var got []byte
				if err == nil {
					got, err = cl.Get(octx, keys[ki])
				}
				ocancel()
				at := time.Now()
				if ctx.Err() != nil {
					return
				}
				if cerr := cl.Err(); cerr != nil {
					t.Errorf("writer %d via %s: connection failed: %v", w, entries[w].Name, cerr)
					return
				}
				mu.Lock()
				putCount++
				if err == nil && string(got) == v {
					acks[ki] = append(acks[ki], ack{seq: seq, at: at})
				} else {
					ackMiss++
				}
				mu.Unlock()
			}
		})
	}
	for r := range readers {
		n := entries[writers+r]
		cl := n.Dial(ctx)
		wg.Go(func() {
			var mine []read
			errs := 0
			defer func() {
				mu.Lock()
				reads = append(reads, mine...)
				getErrs += errs
				mu.Unlock()
			}()
			for i := r; !stopped(); i++ {
				ki := i % numKeys
				t0 := time.Now()
				gctx, gcancel := context.WithTimeout(ctx, opTimeout)
				got, err := cl.Get(gctx, keys[ki])
				gcancel()
				if ctx.Err() != nil {
					return
				}
				rd := read{key: ki, start: t0, via: n.Name, value: string(got)}
				switch {
				case errors.Is(err, api.ErrNotFound):
					rd.seq, rd.value = -1, "NOT FOUND"
				case err != nil:
					if cerr := cl.Err(); cerr != nil {
						t.Errorf("reader %d via %s: connection failed: %v", r, n.Name, cerr)
						return
					}
					errs++
					continue
				default:
					var k, w int
					if _, serr := fmt.Sscanf(rd.value, "key%d-writer%d-seq%d", &k, &w, &rd.seq); serr != nil || k != ki {
						t.Errorf("reader %d via %s: GET %s = %q: not a value written to that key", r, n.Name, keyName(ki), got)
						return
					}
				}
				mine = append(mine, rd)
			}
		})
	}

	// Churn: the victims in turn, each dead for `down` of every `period`.
	note := func(what string) {
		mu.Lock()
		events = append(events, event{at: time.Now(), what: what})
		mu.Unlock()
	}
	churn := func() {
		time.Sleep(2 * time.Second) // the writers and readers under way
		for i := range rounds {
			v := victims[i%len(victims)]
			round := time.Now()
			v.Kill()
			note(v.Name + " killed")
			time.Sleep(down)
			v.Restart()
			note(v.Name + " restarted")
			time.Sleep(time.Until(round.Add(period)))
		}
	}
	churn()
	close(stop)
	wg.Wait()
	elapsed := time.Since(start)
	if t.Failed() {
		return
	}

	// The churn state when a GET began.
	victimAt := func(at time.Time) string {
		i, _ := slices.BinarySearchFunc(events, at, func(e event, at time.Time) int { return e.at.Compare(at) })
		if i == 0 {
			return "no node killed yet"
		}
		e := events[i-1]
		return fmt.Sprintf("%s %v before", e.what, at.Sub(e.at).Round(time.Millisecond))
	}
	slices.SortFunc(reads, func(a, b read) int { return a.start.Compare(b.start) })
	var stale []string
	staleCount := 0
	for _, rd := range reads {
		as := acks[rd.key]
		// The newest write acknowledged at least grace before the GET.
		i, _ := slices.BinarySearchFunc(as, rd.start.Add(-grace), func(a ack, t time.Time) int {
			if a.at.After(t) {
				return 1
			}
			return -1
		})
		if i == 0 {
			continue
		}
		newest := as[i-1]
		if rd.seq >= newest.seq {
			continue
		}
		staleCount++
		if len(stale) < 10 {
			stale = append(stale, fmt.Sprintf("at +%v GET %s via %s = %q; seq %d was acknowledged %v before the GET began (%s)",
				rd.start.Sub(start).Round(time.Millisecond), keyName(rd.key), rd.via, rd.value, newest.seq,
				rd.start.Sub(newest.at).Round(time.Millisecond), victimAt(rd.start)))
		}
	}
	acked := 0
	for _, as := range acks {
		acked += len(as)
	}
	t.Logf("%d GETs in %v (%.0f/s), %d GET errors; %d PUTs, %d acknowledged, %d not seen by the GET after them; %d kills",
		len(reads), elapsed.Round(time.Millisecond), float64(len(reads))/elapsed.Seconds(), getErrs, putCount, acked, ackMiss, rounds)
	if acked == 0 || len(reads) == 0 {
		t.Fatalf("%d acknowledged PUTs and %d GETs: nothing was checked", acked, len(reads))
	}
	if staleCount > 0 {
		t.Errorf("%d of %d GETs answered a value older than one acknowledged %v before they began; the first:\n%s",
			staleCount, len(reads), grace, strings.Join(stale, "\n"))
	}
}
