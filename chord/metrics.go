package chord

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons of durachord_chord_refused_total.
const (
	refusedAnswer   = "answer"
	refusedNoAnswer = "no_answer"
	refusedOrder    = "order"
)

type metrics struct {
	lookups          *prometheus.CounterVec
	lookupHops       prometheus.Histogram
	callFailures     prometheus.Counter
	evictions        prometheus.Counter
	stabilizeRounds  prometheus.Counter
	successorChanges prometheus.Counter
	probeMerges      prometheus.Counter
	routeRedirects   prometheus.Counter
	ownerCache       struct{ hit, miss prometheus.Counter }
	ownerCacheVec    *prometheus.CounterVec
	// refused counts what members sent that failed a check, by reason:
	// answer (a lookup answer or referral out of the interval asked
	// about), no_answer (a node named in notify, leave or a probe that did
	// not answer), order (successor-list entries out of ring order).
	refused *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lookups: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_chord_lookups_total",
			Help: "Lookups started by this node, by result (ok, error).",
		}, []string{"result"}),
		lookupHops: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "durachord_chord_lookup_hops",
			Help:    "Remote nodes queried per successful lookup.",
			Buckets: prometheus.LinearBuckets(0, 1, 17),
		}),
		callFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_chord_call_failures_total",
			Help: "Calls to peers that failed (each makes the peer a suspect).",
		}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_chord_evictions_total",
			Help: "Peers evicted after SuspectAfter consecutive failed calls.",
		}),
		stabilizeRounds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_chord_stabilize_rounds_total",
			Help: "Stabilise rounds run.",
		}),
		successorChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_chord_successor_changes_total",
			Help: "Changes of the immediate successor.",
		}),
		probeMerges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_chord_probe_merges_total",
			Help: "Closer successors found by probing remembered peers (ring merges).",
		}),
		routeRedirects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_chord_route_redirects_total",
			Help: "Requests routed to a node that did not own the identifier or could not be reached, so that the route went on.",
		}),
		ownerCacheVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_chord_owner_cache_total",
			Help: "Routed requests whose owner the owner cache knew (hit) or did not (miss: a lookup first); those the node's own tables answer are not counted.",
		}, []string{"result"}),
	}
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "durachord_chord_refused_total",
		Help: "What members sent that failed a check and was not adopted, by reason (answer, no_answer, order).",
	}, []string{"reason"})
	for _, r := range []string{refusedAnswer, refusedNoAnswer, refusedOrder} {
		m.refused.WithLabelValues(r)
	}
	m.ownerCache.hit = m.ownerCacheVec.WithLabelValues("hit")
	m.ownerCache.miss = m.ownerCacheVec.WithLabelValues("miss")
	m.lookups.WithLabelValues("ok")
	m.lookups.WithLabelValues("error")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lookups, m.lookupHops, m.callFailures, m.evictions,
		m.stabilizeRounds, m.successorChanges, m.probeMerges, m.routeRedirects, m.ownerCacheVec, m.refused} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("%w: metrics already registered: %v", ErrConfig, err)
			}
			return nil, fmt.Errorf("register chord metrics: %w", err)
		}
	}
	return m, nil
}
