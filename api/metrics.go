package api

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/durachord/durachord/internal/netutil"
)

// Request outcomes, the outcome label of durachord_api_requests_total.
const (
	outcomeSuccess  = "success"   // PUT stored, GET answered with SUCCESS
	outcomeNotFound = "not_found" // GET answered FAILURE: no live value
	outcomeTimeout  = "timeout"   // RequestTimeout ran out; GET answered FAILURE
	outcomeError    = "error"     // any other Service error; GET answered FAILURE
	outcomeCanceled = "canceled"  // the connection or server closed first
)

// Violation reasons, the reason label of durachord_api_violations_total.
const (
	reasonShortSize      = "short_size"
	reasonSizeMismatch   = "size_mismatch"
	reasonUnknownType    = "unknown_type"
	reasonUnexpectedType = "unexpected_type"
	reasonReadTimeout    = "read_timeout"
	reasonTruncated      = "truncated"
)

type metrics struct {
	requests     *prometheus.CounterVec   // type, outcome
	latency      *prometheus.HistogramVec // type
	violations   *prometheus.CounterVec   // reason
	openConns    prometheus.Gauge
	rejected     *prometheus.CounterVec // reason
	evicted      *prometheus.CounterVec // reason
	idleClosed   prometheus.Counter
	silentClosed prometheus.Counter
	budgetHeld   prometheus.GaugeFunc
	budgetWaits  prometheus.CounterFunc
	writeErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, budget *netutil.Budget, sources *netutil.SourceBudgets) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_api_requests_total",
			Help: "Client requests served, by type (put, get) and outcome (success, not_found, timeout, error, canceled).",
		}, []string{"type", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "durachord_api_request_duration_seconds",
			Help:    "Time from reading a request to storing it (put) or queueing its reply (get).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14),
		}, []string{"type"}),
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_api_violations_total",
			Help: "Client connections closed for a protocol violation, by reason.",
		}, []string{"reason"}),
		openConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "durachord_api_open_connections",
			Help: "Client connections open now.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_api_connections_rejected_total",
			Help: "Client connections closed at accept because a connection limit was reached with every connection busy, by reason (max_conns, max_conns_per_address).",
		}, []string{"reason"}),
		evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "durachord_api_connections_evicted_total",
			Help: "Idle client connections closed to make room for a new one at a connection limit, by reason (max_conns, max_conns_per_address).",
		}, []string{"reason"}),
		idleClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_api_idle_closed_total",
			Help: "Client connections closed after IdleTimeout without a request.",
		}),
		silentClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_api_first_byte_timeouts_total",
			Help: "New client connections closed because they sent nothing within FirstByteTimeout.",
		}),
		budgetHeld: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "durachord_api_request_bytes",
			Help: "Bytes of client requests read and not yet finished (bounded by MaxRequestBytes).",
		}, func() float64 { return float64(budget.Held()) }),
		budgetWaits: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "durachord_api_request_bytes_waits_total",
			Help: "Times a connection stopped reading because MaxRequestBytes, or MaxRequestBytesPerAddress of its source address, were held by requests in progress.",
		}, func() float64 { return float64(budget.Waits() + sources.Waits()) }),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_api_write_errors_total",
			Help: "Client connections closed because a reply could not be written.",
		}),
	}
	for _, t := range []string{"put", "get"} {
		m.latency.WithLabelValues(t)
		for _, o := range []string{outcomeSuccess, outcomeNotFound, outcomeTimeout, outcomeError, outcomeCanceled} {
			m.requests.WithLabelValues(t, o)
		}
	}
	for _, r := range []string{netutil.ReasonTotal, netutil.ReasonAddress} {
		m.rejected.WithLabelValues(r)
		m.evicted.WithLabelValues(r)
	}
	for _, r := range []string{reasonShortSize, reasonSizeMismatch, reasonUnknownType, reasonUnexpectedType, reasonReadTimeout, reasonTruncated} {
		m.violations.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.violations, m.openConns, m.rejected, m.evicted, m.idleClosed, m.silentClosed, m.budgetHeld, m.budgetWaits, m.writeErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	return m, nil
}

// violationReason maps a read error to a violation reason, or "" if the
// error is not a violation.
func violationReason(err error) string {
	switch {
	case errors.Is(err, ErrShortSize):
		return reasonShortSize
	case errors.Is(err, ErrSizeMismatch):
		return reasonSizeMismatch
	case errors.Is(err, ErrUnknownType):
		return reasonUnknownType
	case errors.Is(err, ErrUnexpectedType):
		return reasonUnexpectedType
	}
	return ""
}
