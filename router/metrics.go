package router

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the public API's Prometheus series.
type Metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
}

// NewMetrics registers the API's series with reg (none when reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_http_requests_total",
			Help: "Public API requests by route, method, status and plan.",
		}, []string{"route", "method", "status", "plan"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantgate_http_request_duration_seconds",
			Help:    "Public API request latency by route and method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "method"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_rate_limited_total",
			Help: "Requests refused by per-organization rate limits, by plan.",
		}, []string{"plan"}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.rateLimited)
	}
	return m
}

func (m *Metrics) observe(method, route string, status int, plan string, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status), plan).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
}
