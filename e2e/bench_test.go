package e2e

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
)

// BenchmarkPutHolderKilled: a ring of 10, replication 3, 32 clients putting
// and confirming (a PUT, then a GET of the key on the same connection)
// through 9 of the nodes for 12 s; 3 s in, the tenth node, a replica holder
// of about 3 in 10 keys (and the owner of about 1 in 10), is SIGKILLed.
// Reported: the latency of an acknowledged PUT (p50, p99, max; p99 also of
// the 2 s after the kill alone, apart for the keys the victim is a holder
// of, the owner of, or neither), the acknowledged PUTs, and how many keys
// read back through another node afterwards with a value older than their
// last acknowledged one (lost). Write quorum 2 (the default) against 3
// (every holder, as before the write quorum).
//
//	DURACHORD_E2E=1 go test -run '^$' -bench PutHolderKilled -benchtime 1x ./e2e/
//
// The same with the tenth node frozen (SIGSTOP, resumed at the end) instead
// of killed: its connections stay open and its calls time out.
func BenchmarkPutHolderKilled(b *testing.B) {
	for _, how := range []string{"kill", "stop"} {
		for _, w := range []int{2, 3} {
			b.Run(fmt.Sprintf("%s/write_quorum=%d", how, w), func(b *testing.B) {
				for range b.N {
					putHolderKilled(b, w, how == "stop")
				}
			})
		}
	}
}

func putHolderKilled(b *testing.B, quorum int, freeze bool) {
	const (
		nodes   = 10
		clients = 32
		keysPer = 64
		run     = 12 * time.Second
		killAt  = 3 * time.Second
		window  = 2 * time.Second
	)
	c := NewCluster(b, ClusterOptions{Replication: 3, WriteQuorum: quorum, LogLevel: "warn"})
	ctx, cancel := context.WithTimeout(b.Context(), 3*time.Minute)
	defer cancel()
	ns := c.StartNodes(nodes)
	c.WaitStable(ctx)
	entries, victim := ns[:nodes-1], ns[nodes-1]
	ring := c.MustPositions(ctx)

	type sample struct {
		at   time.Duration // since the start
		lat  time.Duration
		role string // the victim's role for the key: owner, holder or none
	}
	var (
		mu      sync.Mutex
		samples []sample
		acked   = make(map[string][]byte) // key -> last acknowledged value
		errs    int
	)
	start := time.Now()
	stop := start.Add(run)
	var wg sync.WaitGroup
	for w := range clients {
		cl := entries[w%len(entries)].Dial(ctx)
		wg.Go(func() {
			var mine []sample
			last := make(map[string][]byte)
			for seq := 0; time.Now().Before(stop); seq++ {
				k := benchKey(w, seq%keysPer)
				v := []byte(fmt.Sprintf("client-%d-seq-%d", w, seq))
				t0 := time.Now()
				octx, ocancel := context.WithTimeout(ctx, 10*time.Second)
				err := cl.Put(octx, api.Put{Key: k, Value: v, TTL: 3600})
				var got []byte
				if err == nil {
					got, err = cl.Get(octx, k)
				}
				ocancel()
				if err != nil || !bytes.Equal(got, v) {
					mu.Lock()
					errs++
					mu.Unlock()
					continue
				}
				mine = append(mine, sample{at: t0.Sub(start), lat: time.Since(t0), role: victimRole(ring, victim, k)})
				last[string(k[:])] = v
			}
			mu.Lock()
			samples = append(samples, mine...)
			for k, v := range last {
				acked[k] = v
			}
			mu.Unlock()
		})
	}
	time.Sleep(killAt)
	if freeze {
		victim.Signal(syscall.SIGSTOP)
		defer victim.Signal(syscall.SIGCONT)
	} else {
		victim.Kill()
	}
	wg.Wait()

	// Every key's last acknowledged value, read through another node than
	// the one that took it.
	lost := 0
	readers := make([]*api.Client, len(entries))
	for i, n := range entries {
		readers[i] = n.Dial(ctx)
	}
	for w := range clients {
		r := readers[(w+1)%len(readers)]
		for j := range keysPer {
			k := benchKey(w, j)
			want, ok := acked[string(k[:])]
			if !ok {
				continue
			}
			got, err := r.Get(ctx, k)
			if err != nil || !bytes.Equal(got, want) {
				lost++
				b.Logf("key %s: read %q, %v; last acknowledged %q", bytes.TrimRight(k[:], "\x00"), got, err, want)
			}
		}
	}

	all := make([]time.Duration, 0, len(samples))
	after := make(map[string][]time.Duration)
	for _, s := range samples {
		all = append(all, s.lat)
		if s.at >= killAt && s.at < killAt+window {
			after[s.role] = append(after[s.role], s.lat)
		}
	}
	b.ReportMetric(float64(len(all)), "acked_puts")
	b.ReportMetric(float64(errs), "failed_puts")
	b.ReportMetric(ms(quantile(all, 0.50)), "p50_ms")
	b.ReportMetric(ms(quantile(all, 0.99)), "p99_ms")
	b.ReportMetric(ms(quantile(all, 1)), "max_ms")
	for _, role := range []string{"holder", "owner", "none"} {
		b.ReportMetric(ms(quantile(after[role], 0.99)), "p99_after_"+role+"_ms")
	}
	b.ReportMetric(float64(lost), "lost")
	if lost > 0 {
		b.Errorf("%d keys read back older than their last acknowledged PUT", lost)
	}
}

// victimRole says what the victim is for key k on ring with replication 3:
// its owner, one of its two replica holders, or none.
func victimRole(ring []Placed, victim *Node, k [api.KeySize]byte) string {
	switch slices.Index(holders(ring, k, 3), victim) {
	case -1:
		return "none"
	case 0:
		return "owner"
	default:
		return "holder"
	}
}

// benchKey is client w's j-th key.
func benchKey(w, j int) [api.KeySize]byte {
	var k [api.KeySize]byte
	copy(k[:], fmt.Sprintf("killbench-%d-%d", w, j))
	return k
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(q * float64(len(s)-1))
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
