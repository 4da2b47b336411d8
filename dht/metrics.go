package dht

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	ops         *prometheus.CounterVec
	replication *prometheus.CounterVec
	received    prometheus.Counter
	handoff     prometheus.Counter
	repair      *prometheus.CounterVec
	dropped     prometheus.Counter
	promoted    prometheus.Counter
	swept       prometheus.Counter
	rounds      *prometheus.CounterVec
	callsVec    *prometheus.HistogramVec
	// calls observes the calls per operation, by op.
	calls     struct{ get, put prometheus.Observer }
	refused   *prometheus.CounterVec
	hints     *prometheus.CounterVec
	refreshed prometheus.Counter
	quorum    *prometheus.CounterVec
	immediate *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_dht_operations_total",
			Help: "Puts and gets handled by the records layer, by outcome.",
		}, []string{"op", "outcome"}),
		replication: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_dht_replica_pushes_total",
			Help: "Records pushed by an owner to a replica holder on a put, by outcome.",
		}, []string{"outcome"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_dht_records_received_total",
			Help: "Records stored because another node sent them (replication, handoff, repair).",
		}),
		handoff: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_dht_handoff_records_total",
			Help: "Records sent to their new owner because they left this node's arc, or on leave.",
		}),
		repair: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_dht_repair_records_total",
			Help: "Records moved by anti-entropy, by direction (pushed to a holder, fetched from one).",
		}, []string{"direction"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_dht_records_dropped_total",
			Help: "Records deleted because this node left their replication window.",
		}),
		promoted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_dht_records_promoted_total",
			Help: "Replicas that became primary because their position entered this node's arc.",
		}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_dht_records_swept_total",
			Help: "Expired records deleted by the sweeper.",
		}),
		rounds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_dht_maintenance_rounds_total",
			Help: "Maintenance rounds (placement and anti-entropy), by outcome.",
		}, []string{"outcome"}),
		callsVec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "durachord_dht_rpcs_per_operation",
			Help: "Calls to other nodes per GET and per PUT this node served for a client (lookup hops, requests, " +
				"replica reads on a fallback; an owner's replica pushes are counted in durachord_dht_replica_pushes_total), by op.",
			Buckets: prometheus.LinearBuckets(0, 1, 9),
		}, []string{"op"}),
		refreshed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_dht_owner_refreshed_total",
			Help: "Records an owner not yet in sync with its replica holders found newer on one of them while serving a GET.",
		}),
		hints: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_dht_hints_total",
			Help: "PUTs kept as hints for an owner out of reach, by fate (stored, full, failed, delivered, superseded, expired); superseded_at_owner counts delivered hints an owner found older than what it holds.",
		}, []string{"outcome"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_dht_refused_records_total",
			Help: "Records from other nodes refused, and rounds that kept copies an owner asked them to let go, by reason (version_ahead: a version further ahead of this node's clock than allowed; window: a copy pushed by a node whose replication window, as this node sees the ring, does not include it; placement: an owner or successor list this node's view contradicts; unconfirmed: the owner did not confirm it holds the records; late_put: a dht.put read just after this node ran again from a gap, whose caller's time was up; suspect: rounds that kept copies because their owner lacks copies it acknowledged).",
		}, []string{"reason"}),
		quorum: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_dht_put_quorum_total",
			Help: "Puts stored by this node as owner, by whether their write quorum was met (met, short).",
		}, []string{"outcome"}),
		immediate: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_dht_immediate_repair_records_total",
			Help: "Records a holder missed on a put, by fate (queued, repaired, given_up, left_window, overflow).",
		}, []string{"outcome"}),
	}
	// The label values the node knows, so that their series are there
	// (at 0) before the first event.
	for _, op := range []string{"get", "put"} {
		for _, o := range []string{"ok", "not_found", "timeout", "error"} {
			m.ops.WithLabelValues(op, o)
		}
	}
	for _, o := range []string{"ok", "not_found", "timeout", "error", "no_slot"} {
		m.replication.WithLabelValues(o)
	}
	for _, d := range []string{"pushed", "fetched"} {
		m.repair.WithLabelValues(d)
	}
	for _, o := range []string{"ok", "error"} {
		m.rounds.WithLabelValues(o)
	}
	for _, o := range []string{"stored", "full", "failed", "delivered", "superseded", "superseded_at_owner", "expired"} {
		m.hints.WithLabelValues(o)
	}
	for _, o := range []string{"met", "short"} {
		m.quorum.WithLabelValues(o)
	}
	for _, o := range []string{"queued", "repaired", "given_up", "left_window", "overflow"} {
		m.immediate.WithLabelValues(o)
	}
	m.calls.get = m.callsVec.WithLabelValues("get")
	m.calls.put = m.callsVec.WithLabelValues("put")
	if reg != nil {
		for _, c := range []prometheus.Collector{m.ops, m.replication, m.received, m.handoff, m.repair,
			m.dropped, m.promoted, m.swept, m.rounds, m.callsVec, m.hints, m.refreshed, m.refused, m.quorum, m.immediate} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// backlogs are the gauges of the work waiting: replica pushes queued or in
// flight, and keys holders missed on a put queued for immediate repair.
func (m *metrics) backlogs(pushes *pushQueues, repairs *repairQueue, sus *suspects) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "durachord_dht_push_backlog",
			Help: "Replica pushes of PUTs queued or in flight to their holders.",
		}, func() float64 { return float64(pushes.backlog()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "durachord_dht_repair_backlog_keys",
			Help: "Keys that a holder missed on a PUT, queued for immediate repair and not yet repaired or given up.",
		}, func() float64 { return float64(repairs.backlog()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "durachord_dht_suspect_holders",
			Help: "Peers this node's placement skips because they were found lacking copies they had acknowledged.",
		}, func() float64 { return float64(len(sus.current())) }),
	}
}
