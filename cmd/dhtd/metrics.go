package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// stateCollector reports the node's state at scrape time: the records and
// bytes it holds (the store's kept counts: one key read, no scan) and its
// view of the ring.
type stateCollector struct {
	d *daemon

	records, bytes               *prometheus.Desc
	successors, predecessor, rdy *prometheus.Desc
	listLen, size                *prometheus.Desc
	certNotAfter                 *prometheus.Desc
}

func newStateCollector(d *daemon) *stateCollector {
	return &stateCollector{
		d: d,
		records: prometheus.NewDesc("durachord_store_records",
			"Records held, by kind (primary: this node owns them; replica); expired ones count until swept.", []string{"kind"}, nil),
		bytes: prometheus.NewDesc("durachord_store_value_bytes",
			"Value bytes of the records held, by kind; expired ones count until swept.", []string{"kind"}, nil),
		successors: prometheus.NewDesc("durachord_ring_successors",
			"Distinct live successors in this node's successor list.", nil, nil),
		listLen: prometheus.NewDesc("durachord_ring_successor_list_length",
			"Successors this node keeps when the ring has enough nodes (ring.successor_list_len).", nil, nil),
		size: prometheus.NewDesc("durachord_ring_size_estimate",
			"Nodes in the ring as this node estimates them from its successor list: exact while the list holds every other node, else from the list's spacing.", nil, nil),
		predecessor: prometheus.NewDesc("durachord_ring_predecessor_set",
			"1 if this node knows a predecessor, else 0.", nil, nil),
		rdy: prometheus.NewDesc("durachord_ring_ready",
			"1 if this node has joined and its successor answers, else 0.", nil, nil),
		certNotAfter: prometheus.NewDesc("durachord_tls_cert_not_after_seconds",
			"Expiry (Unix time) of the node certificate in use; it changes when SIGHUP loads a renewed one.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.records, c.bytes, c.successors, c.listLen, c.size, c.predecessor, c.rdy, c.certNotAfter} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if st, err := c.d.db.Stats(); err == nil {
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(st.PrimaryRecords), "primary")
		ch <- prometheus.MustNewConstMetric(c.records, prometheus.GaugeValue, float64(st.ReplicaRecords), "replica")
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.PrimaryBytes), "primary")
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.ReplicaBytes), "replica")
	} else {
		ch <- prometheus.NewInvalidMetric(c.records, err)
	}
	node := c.d.node
	self := node.Self().ID
	seen := map[[32]byte]bool{}
	for _, s := range node.Successors() {
		if s.ID != self {
			seen[s.ID] = true
		}
	}
	_, hasPred := node.Predecessor()
	ch <- prometheus.MustNewConstMetric(c.successors, prometheus.GaugeValue, float64(len(seen)))
	ch <- prometheus.MustNewConstMetric(c.listLen, prometheus.GaugeValue, float64(c.d.cfg.Ring.SuccessorListLen))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, node.RingSizeEstimate())
	ch <- prometheus.MustNewConstMetric(c.predecessor, prometheus.GaugeValue, b2f(hasPred))
	ch <- prometheus.MustNewConstMetric(c.rdy, prometheus.GaugeValue, b2f(node.Ready()))
	leaf := c.d.id.Current().Leaf
	ch <- prometheus.MustNewConstMetric(c.certNotAfter, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
