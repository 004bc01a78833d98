package provisioner

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// Metrics are the provisioner's Prometheus series. Labels are job kinds,
// results and move directions: a handful of values each.
type Metrics struct {
	jobs           *prometheus.CounterVec
	jobDuration    *prometheus.HistogramVec
	moveDuration   *prometheus.HistogramVec
	moveFreeze     *prometheus.HistogramVec
	schedulesFired prometheus.Counter
}

// NewMetrics registers the provisioner's series with reg (none when nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	long := []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900}
	m := &Metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantgate_provisioner_jobs_total",
			Help: "Job runs ended by this provisioner, by kind and result (succeeded, failed, retried).",
		}, []string{"kind", "result"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tenantgate_provisioner_job_duration_seconds", Help: "Job run time by kind.", Buckets: long,
		}, []string{"kind"}),
		moveDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tenantgate_move_duration_seconds", Help: "Tenant moves by direction (to the tier) and result.", Buckets: long,
		}, []string{"direction", "result"}),
		moveFreeze: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantgate_move_freeze_seconds",
			Help:    "How long a successful move refused the tenant's writes (placement moving to the target unfenced), by direction.",
			Buckets: long,
		}, []string{"direction"}),
		schedulesFired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantgate_schedules_fired_total", Help: "Tasks created by due schedules.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.jobs, m.jobDuration, m.moveDuration, m.moveFreeze, m.schedulesFired)
	}
	return m
}

// jobEnded counts a job run. A failure that will be retried is "retried".
func (m *Metrics) jobEnded(kind string, err error, retry bool, d time.Duration) {
	if m == nil {
		return
	}
	result := "succeeded"
	switch {
	case err != nil && retry:
		result = "retried"
	case err != nil:
		result = "failed"
	}
	m.jobs.WithLabelValues(kind, result).Inc()
	m.jobDuration.WithLabelValues(kind).Observe(d.Seconds())
}

// ScheduleFired counts a task created by a schedule.
func (m *Metrics) ScheduleFired() {
	if m != nil {
		m.schedulesFired.Inc()
	}
}

// MoveTimer times a move to the tier to. Pass its report on to the move
// with the names of the steps that start and end the write freeze; call
// done with the move's result.
func (m *Metrics) MoveTimer(to, freezeStarts, freezeEnds string, report func(string)) (timed func(string), done func(error)) {
	start := time.Now()
	var frozen, thawed time.Time
	timed = func(step string) {
		switch step {
		case freezeStarts:
			frozen = time.Now()
		case freezeEnds:
			thawed = time.Now()
		}
		report(step)
	}
	done = func(err error) {
		if m == nil {
			return
		}
		result := "succeeded"
		if err != nil {
			result = "failed"
		}
		m.moveDuration.WithLabelValues(to, result).Observe(time.Since(start).Seconds())
		if err == nil && !frozen.IsZero() && !thawed.IsZero() {
			m.moveFreeze.WithLabelValues(to).Observe(thawed.Sub(frozen).Seconds())
		}
	}
	return timed, done
}

// CatalogCollector exports, at each scrape, what the catalog says of all
// provisioners' work: jobs by kind and state, and the newest fan-out's
// progress. A scrape that cannot read the catalog exports none of these.
type CatalogCollector struct {
	Store *catalog.Store
	Log   *slog.Logger
}

var (
	jobsDesc   = prometheus.NewDesc("tenantgate_provisioner_jobs", "Jobs in the catalog by kind and state.", []string{"kind", "state"}, nil)
	fanoutDesc = prometheus.NewDesc("tenantgate_fanout_databases",
		"Databases of the newest migration fan-out by state (pending, running, succeeded, failed, interrupted).", []string{"state"}, nil)
	postureDesc = prometheus.NewDesc("tenantgate_database_posture",
		"Databases by the isolation audit's last verdict (ok, drift, unsafe, unaudited).", []string{"state"}, nil)
	lastAuditDesc = prometheus.NewDesc("tenantgate_audit_last_timestamp_seconds",
		"When the newest isolation audit of any database ran (Unix time).", nil, nil)
)

// Describe implements prometheus.Collector.
func (c CatalogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- fanoutDesc
	ch <- postureDesc
	ch <- lastAuditDesc
}

// Collect implements prometheus.Collector.
func (c CatalogCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.Store.JobCounts(ctx)
	if err != nil {
		c.Log.Warn("metrics: reading job counts failed", "err", err)
	}
	for _, jc := range counts {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(jc.Count), jc.Kind, jc.State)
	}
	c.collectPosture(ctx, ch)
	p, err := c.Store.LatestFanout(ctx)
	if err != nil {
		c.Log.Warn("metrics: reading fan-out progress failed", "err", err)
		return
	}
	if p.RunID == "" {
		return
	}
	states := map[string]int{"pending": p.Pending, "running": 0, "succeeded": 0, "failed": 0, "interrupted": 0}
	for s, n := range p.ByStatus {
		states[s] = n
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(fanoutDesc, prometheus.GaugeValue, float64(n), s)
	}
}

func (c CatalogCollector) collectPosture(ctx context.Context, ch chan<- prometheus.Metric) {
	counts, last, err := c.Store.AuditPosture(ctx)
	if err != nil {
		c.Log.Warn("metrics: reading audit posture failed", "err", err)
		return
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(postureDesc, prometheus.GaugeValue, float64(n), state)
	}
	if !last.IsZero() {
		ch <- prometheus.MustNewConstMetric(lastAuditDesc, prometheus.GaugeValue, float64(last.Unix()))
	}
}
