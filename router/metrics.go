package router

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/tenancy/placement"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
)

// Metrics are the public API's Prometheus series. Labels are bounded: the
// route pattern (never the raw path), a known method, the status and the
// plan. Tenants get series of their own only through the top-N collector.
type Metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	rateLimited *prometheus.CounterVec
	tenants     *topTenants
	dbTime      *topTenants
}

// NewMetrics registers the API's series with reg (none when reg is nil).
// topTenants is how many of the busiest organizations are exported by
// slug; 0 exports none.
func NewMetrics(reg prometheus.Registerer, topTenants int) *Metrics {
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
		tenants: newTopTenants(topTenants),
		dbTime:  newTopDBTime(topTenants),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.duration, m.rateLimited)
		if topTenants > 0 {
			reg.MustRegister(m.tenants, m.dbTime)
		}
	}
	return m
}

func (m *Metrics) observe(method, route string, status int, plan, slug string, d, dbTime time.Duration) {
	method = knownMethod(method)
	m.requests.WithLabelValues(route, method, strconv.Itoa(status), plan).Inc()
	m.duration.WithLabelValues(route, method).Observe(d.Seconds())
	if slug != "" {
		m.tenants.add(slug)
		m.dbTime.addN(slug, dbTime.Microseconds())
	}
}

// knownMethod keeps the method label bounded: a client can send any token
// as a method.
func knownMethod(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return m
	}
	return "OTHER"
}

// PoolCollector exports the pool cache's statistics.
type PoolCollector struct {
	Pools *poolcache.Cache
}

var (
	poolOpenDesc     = prometheus.NewDesc("tenantgate_pools_open", "Pools held open by the pool cache.", nil, nil)
	poolCountsDesc   = prometheus.NewDesc("tenantgate_pool_cache_total", "Pool cache events.", []string{"event"}, nil)
	poolConnsDesc    = prometheus.NewDesc("tenantgate_pool_connections", "Connections over all pools by state.", []string{"state"}, nil)
	poolWaitsDesc    = prometheus.NewDesc("tenantgate_pool_waits_total", "Connection dials that queued for the connection budget.", nil, nil)
	poolServerDesc   = prometheus.NewDesc("tenantgate_pool_server_connections", "Open connections by PostgreSQL server.", []string{"server"}, nil)
	poolBreakersDesc = prometheus.NewDesc("tenantgate_pool_breakers_open", "Databases whose circuit breaker is open.", nil, nil)
)

// Describe implements prometheus.Collector.
func (p PoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolOpenDesc, poolCountsDesc, poolConnsDesc, poolWaitsDesc, poolServerDesc, poolBreakersDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (p PoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.Pools.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(poolOpenDesc, float64(s.Open))
	for ev, n := range map[string]int64{"hit": s.Hits, "miss": s.Misses, "eviction": s.Evictions, "open": s.Opens} {
		ch <- prometheus.MustNewConstMetric(poolCountsDesc, prometheus.CounterValue, float64(n), ev)
	}
	gauge(poolConnsDesc, float64(s.InUse), "in_use")
	gauge(poolConnsDesc, float64(s.Idle), "idle")
	gauge(poolConnsDesc, float64(s.TotalConns), "total")
	ch <- prometheus.MustNewConstMetric(poolWaitsDesc, prometheus.CounterValue, float64(s.Waits))
	gauge(poolBreakersDesc, float64(s.BreakersOpen))
	// Servers are the registered PostgreSQL servers: few, and named by
	// operators, so a label each is bounded.
	perServer := map[string]int{}
	for _, pool := range s.Pools {
		perServer[pool.Server] += pool.Total
	}
	for server, n := range perServer {
		gauge(poolServerDesc, float64(n), server)
	}
}

// PlacementCollector exports the placement cache's statistics.
type PlacementCollector struct {
	Placements *placement.Cache
}

var (
	placementCountsDesc  = prometheus.NewDesc("tenantgate_placement_cache_total", "Placement cache lookups (hit, miss, stale: expired but served while the catalog is away) and invalidations.", []string{"result"}, nil)
	placementEntriesDesc = prometheus.NewDesc("tenantgate_placement_cache_entries", "Placements cached.", nil, nil)
)

// Describe implements prometheus.Collector.
func (p PlacementCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- placementCountsDesc
	ch <- placementEntriesDesc
}

// Collect implements prometheus.Collector.
func (p PlacementCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.Placements.Stats()
	for result, n := range map[string]int64{"hit": s.Hits, "miss": s.Misses, "invalidation": s.Invalidations, "stale": s.Stale} {
		ch <- prometheus.MustNewConstMetric(placementCountsDesc, prometheus.CounterValue, float64(n), result)
	}
	ch <- prometheus.MustNewConstMetric(placementEntriesDesc, prometheus.GaugeValue, float64(s.Entries))
}
