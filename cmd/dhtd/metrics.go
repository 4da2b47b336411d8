package main

import (
	"math"
	"math/big"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durachord/durachord/chord"
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
			"Distinct other nodes in the successor lists of this node's ring positions.", nil, nil),
		listLen: prometheus.NewDesc("durachord_ring_successor_list_length",
			"Successors this node keeps when the ring has enough nodes (ring.successor_list_len).", nil, nil),
		size: prometheus.NewDesc("durachord_ring_size_estimate",
			"Nodes in the ring as this node estimates them from the successor lists of its positions: exact while the lists hold every position of the ring, else from their spacing.", nil, nil),
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
	var views []positionView
	for _, p := range c.d.positions() {
		views = append(views, positionView{p.Self(), p.Successors()})
	}
	others, size := ringView(views, c.d.cfg.Ring.SuccessorListLen, c.d.cfg.Ring.VNodes)
	_, hasPred := node.Predecessor()
	ch <- prometheus.MustNewConstMetric(c.successors, prometheus.GaugeValue, float64(others))
	ch <- prometheus.MustNewConstMetric(c.listLen, prometheus.GaugeValue, float64(c.d.cfg.Ring.SuccessorListLen))
	ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, size)
	ch <- prometheus.MustNewConstMetric(c.predecessor, prometheus.GaugeValue, b2f(hasPred))
	ch <- prometheus.MustNewConstMetric(c.rdy, prometheus.GaugeValue, b2f(node.Ready()))
	leaf := c.d.id.Current().Leaf
	ch <- prometheus.MustNewConstMetric(c.certNotAfter, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()))
}

// positionView is one ring position of a node and its successor list.
type positionView struct {
	self  chord.NodeInfo
	succs []chord.NodeInfo
}

// ringView counts the physical nodes the successor lists of a node's
// positions ps (position 0 first; a physical node is an address) show:
// others, the distinct other nodes in them, and size, the ring's nodes.
// The node's positions cut the circle into gaps, each starting at one of
// them; a position's list shows the positions of its gap, all of them when
// it reaches the node's next position or holds fewer than listLen entries
// (the whole ring). size is exact, others + 1, while every gap is so
// shown. Otherwise a gap shown in part counts its positions by the spacing
// of those shown (k positions over a part of its length make k times the
// whole over that part spacings, the last ending at the node's next
// position; chord.EstimateRingSize does so for one list), and
// size is the ring's positions so counted divided by vnodes (every node of
// a cluster stands at as many).
func ringView(ps []positionView, listLen, vnodes int) (others int, size float64) {
	if len(ps) == 0 {
		return 0, 0
	}
	self := ps[0].self.Addr
	mine := make([]chord.ID, len(ps))
	for i, p := range ps {
		mine[i] = p.self.ID
	}
	slices.SortFunc(mine, func(a, b chord.ID) int { return a.Cmp(b) })
	circle := new(big.Int).Lsh(big.NewInt(1), 8*chord.IDBytes)
	arc := func(from, to chord.ID) *big.Float { // clockwise, in (0, circle]
		d := new(big.Int).Sub(new(big.Int).SetBytes(to[:]), new(big.Int).SetBytes(from[:]))
		if d.Sign() <= 0 {
			d.Add(d, circle)
		}
		return new(big.Float).SetInt(d)
	}
	addrs := map[string]bool{}
	exact := true
	positions := float64(len(ps))
	for _, p := range ps {
		id := p.self.ID
		next := mine[(slices.Index(mine, id)+1)%len(mine)]
		shown, whole := 0, len(p.succs) < listLen
		var last chord.ID
		for _, s := range p.succs {
			if s.Addr != self {
				addrs[s.Addr] = true
			}
			switch {
			case s.ID == id:
			case len(mine) > 1 && !s.ID.InOpen(id, next):
				whole = true // at or past the node's next position
			case !whole:
				shown++
				last = s.ID
			}
		}
		if whole || shown == 0 {
			exact = exact && whole
			positions += float64(shown)
			continue
		}
		exact = false
		f, _ := new(big.Float).Quo(new(big.Float).Mul(big.NewFloat(float64(shown)), arc(id, next)), arc(id, last)).Float64()
		positions += max(f-1, float64(shown)) // the node's next position ends the gap
	}
	if exact {
		return len(addrs), float64(len(addrs) + 1)
	}
	return len(addrs), math.Round(positions / float64(max(vnodes, 1)))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
