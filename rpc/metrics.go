package rpc

import (
	"errors"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durachord/durachord/internal/netutil"
)

// Rejection reasons, the values of durachord_rpc_rejected_total's label.
const (
	ReasonTLS      = "tls"
	ReasonHMAC     = "hmac"
	ReasonProtocol = "protocol"
	ReasonIdentity = "identity"
	ReasonFrame    = "frame"
)

// metrics are the collectors of a Client or Server. A Client and a Server
// registered with the same Registerer share them.
type metrics struct {
	calls           *prometheus.CounterVec
	callErrors      *prometheus.CounterVec
	callDuration    *prometheus.HistogramVec
	handlerDuration *prometheus.HistogramVec
	overloaded      prometheus.Counter
	rejected        *prometheus.CounterVec
	clientConns     prometheus.Gauge
	serverConns     prometheus.Gauge

	// byMethod caches the series of each method (*callSeries for the client,
	// prometheus.Observer for handlers), so that a call looks them up
	// without hashing label values.
	byMethod, byHandler sync.Map
}

// callSeries are the client's series of one method.
type callSeries struct {
	calls, errors prometheus.Counter
	duration      prometheus.Observer
}

// call returns the client's series of method.
func (m *metrics) call(method string) *callSeries {
	if s, ok := m.byMethod.Load(method); ok {
		return s.(*callSeries)
	}
	s, _ := m.byMethod.LoadOrStore(method, &callSeries{
		calls:    m.calls.WithLabelValues(method),
		errors:   m.callErrors.WithLabelValues(method),
		duration: m.callDuration.WithLabelValues(method),
	})
	return s.(*callSeries)
}

// handler returns the handler duration series of method.
func (m *metrics) handler(method string) prometheus.Observer {
	if o, ok := m.byHandler.Load(method); ok {
		return o.(prometheus.Observer)
	}
	o, _ := m.byHandler.LoadOrStore(method, m.handlerDuration.WithLabelValues(method))
	return o.(prometheus.Observer)
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_rpc_calls_total", Help: "RPC calls made, by method.",
		}, []string{"method"}),
		callErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_rpc_call_errors_total", Help: "RPC calls that failed (remote error, unreachable, timeout), by method.",
		}, []string{"method"}),
		callDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "durachord_rpc_call_duration_seconds", Help: "Duration of RPC calls made, by method.", Buckets: buckets,
		}, []string{"method"}),
		handlerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "durachord_rpc_handler_duration_seconds", Help: "Duration of RPC handlers served, by method.", Buckets: buckets,
		}, []string{"method"}),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_rpc_overloaded_total", Help: "RPC requests answered with overloaded because all handler slots were busy.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_rpc_rejected_total", Help: "Peer connections or frames refused, by reason (tls, hmac, protocol, identity, frame).",
		}, []string{"reason"}),
		clientConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "durachord_rpc_client_connections", Help: "Open outgoing RPC connections.",
		}),
		serverConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "durachord_rpc_server_connections", Help: "Open incoming RPC connections.",
		}),
	}
	for _, r := range []string{ReasonTLS, ReasonHMAC, ReasonProtocol, ReasonIdentity, ReasonFrame} {
		m.rejected.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.calls, err = register(reg, m.calls)
	if err == nil {
		m.callErrors, err = register(reg, m.callErrors)
	}
	if err == nil {
		m.callDuration, err = register(reg, m.callDuration)
	}
	if err == nil {
		m.handlerDuration, err = register(reg, m.handlerDuration)
	}
	if err == nil {
		m.overloaded, err = register(reg, m.overloaded)
	}
	if err == nil {
		m.rejected, err = register(reg, m.rejected)
	}
	if err == nil {
		m.clientConns, err = register(reg, m.clientConns)
	}
	if err == nil {
		m.serverConns, err = register(reg, m.serverConns)
	}
	return m, err
}

// register registers c, or returns the identical collector registered before
// (by the Client or Server sharing the Registerer).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// serverMetrics are the collectors only a Server has: its connection limits
// and byte budgets.
type serverMetrics struct {
	refused *prometheus.CounterVec
	evicted *prometheus.CounterVec
	silent  prometheus.Counter
}

// Budget classes, the class label of the request byte metrics.
const (
	classRecords = "records"
	classCalling = "calling"
)

func newServerMetrics(reg prometheus.Registerer, records, calling *netutil.Budget) (*serverMetrics, error) {
	m := &serverMetrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_rpc_connections_refused_total",
			Help: "Peer connections closed at accept because a connection limit was reached with every connection busy, by reason (max_conns, max_conns_per_address).",
		}, []string{"reason"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_rpc_connections_evicted_total",
			Help: "Idle peer connections closed to make room for a new one at a connection limit, by reason (max_conns, max_conns_per_address).",
		}, []string{"reason"}),
		silent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_rpc_first_byte_timeouts_total",
			Help: "Accepted peer connections closed because they sent nothing within the first-byte timeout.",
		}),
	}
	for _, r := range []string{netutil.ReasonTotal, netutil.ReasonAddress} {
		m.refused.WithLabelValues(r)
		m.evicted.WithLabelValues(r)
	}
	collectors := []prometheus.Collector{m.refused, m.evicted, m.silent}
	for class, b := range map[string]*netutil.Budget{classRecords: records, classCalling: calling} {
		collectors = append(collectors,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name:        "durachord_rpc_request_bytes",
				Help:        "Bytes of request frames read and not yet answered, by budget class (records, calling); frames of at most 4 KiB are not counted.",
				ConstLabels: prometheus.Labels{"class": class},
			}, func() float64 { return float64(b.Held()) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "durachord_rpc_request_bytes_waits_total",
				Help:        "Times a peer connection stopped reading because its budget class was spent by requests in progress.",
				ConstLabels: prometheus.Labels{"class": class},
			}, func() float64 { return float64(b.Waits()) }))
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
