package api

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
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
	requests    *prometheus.CounterVec   // type, outcome
	latency     *prometheus.HistogramVec // type
	violations  *prometheus.CounterVec   // reason
	openConns   prometheus.Gauge
	rejected    prometheus.Counter
	idleClosed  prometheus.Counter
	writeErrors prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
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
		rejected: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_api_connections_rejected_total",
			Help: "Client connections closed at accept because MaxConns were open.",
		}),
		idleClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_api_idle_closed_total",
			Help: "Client connections closed after IdleTimeout without a request.",
		}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "durachord_api_write_errors_total",
			Help: "Client connections closed because a reply could not be written.",
		}),
	}
	for _, t := range []string{"put", "get"} {
		m.latency.WithLabelValues(t)
	}
	for _, r := range []string{reasonShortSize, reasonSizeMismatch, reasonUnknownType, reasonUnexpectedType, reasonReadTimeout, reasonTruncated} {
		m.violations.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.violations, m.openConns, m.rejected, m.idleClosed, m.writeErrors} {
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
