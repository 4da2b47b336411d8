package store

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's collectors, created per Store.
type metrics struct {
	puts          *prometheus.CounterVec // by result: stored, stale, expired
	tampered      prometheus.Counter
	commits       prometheus.Counter
	committedOps  prometheus.Counter
	commitErrors  prometheus.Counter
	commitTime    prometheus.Histogram
	swept         prometheus.Counter
	probeFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		puts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_store_puts_total",
			Help: "Record puts by result: stored, stale (not newer than the stored version), expired (dropped).",
		}, []string{"result"}),
		tampered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_store_tampered_records_total",
			Help: "Stored records found failing their HMAC or undecodable on read.",
		}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_store_commits_total",
			Help: "Durable group commits (one fsynced bbolt transaction each).",
		}),
		committedOps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_store_committed_writes_total",
			Help: "Writes (puts, deletes, flag changes) carried by group commits.",
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_store_commit_errors_total",
			Help: "Group commits that failed.",
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "durachord_store_commit_duration_seconds",
			Help:    "Duration of group commits, from the start of the transaction to the end of its fsync, failed ones included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_store_swept_records_total",
			Help: "Expired records deleted by the sweeper.",
		}),
		probeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_store_probe_failures_total",
			Help: "Store probes (a read and a durable commit, for /readyz and the watchdog) that failed or did not finish in time.",
		}),
	}
	for _, result := range []string{"stored", "stale", "expired"} {
		m.puts.WithLabelValues(result)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.puts, m.tampered, m.commits, m.committedOps, m.commitErrors, m.commitTime, m.swept, m.probeFailures} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register store metrics: %w", err)
		}
	}
	return m, nil
}
