package router

import (
	"cmp"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	tenantRequestsDesc = prometheus.NewDesc("tenantgate_tenant_requests_total",
		"Requests of the busiest organizations (top N, approximate), by slug.", []string{"organization"}, nil)
	tenantDBTimeDesc = prometheus.NewDesc("tenantgate_tenant_db_seconds_total",
		"Database time of the organizations that use the most (top N, approximate), by slug.", []string{"organization"}, nil)
)

// topTenants finds the busiest organizations in bounded memory with the
// Space-Saving algorithm (Metwally et al.): it keeps counts for a fixed
// number of slugs, and a new slug takes over the smallest count, plus one.
// A slug's count is then at most its true count plus that inherited
// error, and any slug with more than total/capacity requests is kept.
//
// Exporting only the top n keeps the series per replica at n however many
// tenants there are.
type topTenants struct {
	n        int
	capacity int
	desc     *prometheus.Desc
	scale    float64 // exported value = count × scale

	mu     sync.Mutex
	counts map[string]int64
}

func newTopTenants(n int) *topTenants {
	return &topTenants{n: n, capacity: max(10*n, 100), counts: map[string]int64{}, desc: tenantRequestsDesc, scale: 1}
}

// newTopDBTime ranks organizations by database time (counted in
// microseconds, exported in seconds).
func newTopDBTime(n int) *topTenants {
	t := newTopTenants(n)
	t.desc, t.scale = tenantDBTimeDesc, 1e-6
	return t
}

func (t *topTenants) add(slug string) { t.addN(slug, 1) }

// addN counts weight for slug (Space-Saving with weights: a new slug
// inherits the smallest count, plus its weight).
func (t *topTenants) addN(slug string, weight int64) {
	if t.n <= 0 || weight <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.counts[slug]; ok || len(t.counts) < t.capacity {
		t.counts[slug] += weight
		return
	}
	// Full: the new slug replaces the smallest. The scan is over a small,
	// fixed capacity and only runs for slugs not already counted.
	minSlug, minCount := "", int64(-1)
	for s, c := range t.counts {
		if minCount < 0 || c < minCount {
			minSlug, minCount = s, c
		}
	}
	delete(t.counts, minSlug)
	t.counts[slug] = minCount + weight
}

type tenantCount struct {
	slug  string
	count int64
}

// top returns the n largest counts, largest first.
func (t *topTenants) top() []tenantCount {
	t.mu.Lock()
	all := make([]tenantCount, 0, len(t.counts))
	for s, c := range t.counts {
		all = append(all, tenantCount{s, c})
	}
	t.mu.Unlock()
	slices.SortFunc(all, func(a, b tenantCount) int {
		return cmp.Or(cmp.Compare(b.count, a.count), cmp.Compare(a.slug, b.slug))
	})
	return all[:min(t.n, len(all))]
}

// Describe implements prometheus.Collector.
func (t *topTenants) Describe(ch chan<- *prometheus.Desc) { ch <- t.desc }

// Collect implements prometheus.Collector.
func (t *topTenants) Collect(ch chan<- prometheus.Metric) {
	for _, tc := range t.top() {
		ch <- prometheus.MustNewConstMetric(t.desc, prometheus.CounterValue, float64(tc.count)*t.scale, tc.slug)
	}
}
