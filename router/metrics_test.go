package router

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

// TestTopTenantsKeepsHeavyHitters: among thousands of one-request tenants,
// the few busy ones are found, and memory and series stay bounded.
func TestTopTenantsKeepsHeavyHitters(t *testing.T) {
	t.Parallel()
	top := newTopTenants(3)
	for i := range 5000 {
		top.add(fmt.Sprintf("light-%d", i))
		if i%10 == 0 {
			top.add("heavy-a")
			top.add("heavy-b")
		}
		if i%20 == 0 {
			top.add("heavy-c")
		}
	}
	require.LessOrEqual(t, len(top.counts), top.capacity, "memory is bounded by the capacity")
	got := top.top()
	require.Len(t, got, 3)
	require.ElementsMatch(t, []string{"heavy-a", "heavy-b", "heavy-c"}, []string{got[0].slug, got[1].slug, got[2].slug})
	require.GreaterOrEqual(t, got[0].count, int64(500), "a kept slug's count is never below its true count")
	require.Equal(t, "heavy-c", got[2].slug)

	require.Empty(t, newTopTenants(0).top(), "0 exports no tenant")
}

// TestMetricsCardinalityIsBounded: raw paths, ids and invented methods
// never become label values; tenants appear by slug only within the top N;
// the pool and placement collectors export their series.
func TestMetricsCardinalityIsBounded(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := setup(t, setupOptions{metrics: NewMetrics(reg, 2)})
	reg.MustRegister(PoolCollector{Pools: b.pools}, PlacementCollector{Placements: b.placements})
	orgs := []org{b.org(t, "card-a", tenancy.PlanFree), b.org(t, "card-b", tenancy.PlanPro), b.org(t, "card-c", tenancy.PlanEnterprise)}
	for i, o := range orgs {
		for range 3 - i { // a busiest, then b, then c
			require.Equal(t, 200, b.do(t, "GET", "/api/agents", o.token, nil).status)
		}
	}
	for i := range 50 {
		b.do(t, "GET", "/api/agents/"+uuid.NewString(), orgs[0].token, nil)
		b.do(t, "GET", fmt.Sprintf("/no/such/path/%d", i), orgs[0].token, nil)
		b.do(t, fmt.Sprintf("BREW%d", i), "/api/agents", orgs[0].token, nil)
	}

	families := gather(t, reg)
	requests := families["tenantgate_http_requests_total"]
	require.NotNil(t, requests)
	require.Less(t, len(requests.GetMetric()), 25, "one series per route, method, status and plan, not per path")
	for _, m := range requests.GetMetric() {
		labels := labelMap(m)
		require.NotContains(t, labels["route"], "no/such", "an unknown path is not a label value")
		require.Contains(t, []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER"}, labels["method"])
	}

	tenants := families["tenantgate_tenant_requests_total"]
	require.NotNil(t, tenants)
	var slugs []string
	for _, m := range tenants.GetMetric() {
		slugs = append(slugs, labelMap(m)["organization"])
	}
	require.ElementsMatch(t, []string{"card-a", "card-b"}, slugs, "only the top 2 tenants, by slug")

	dbTime := families["tenantgate_tenant_db_seconds_total"]
	require.NotNil(t, dbTime, "database time of the top tenants")
	require.LessOrEqual(t, len(dbTime.GetMetric()), 2, "only the top 2")
	for _, m := range dbTime.GetMetric() {
		require.Positive(t, m.GetCounter().GetValue(), labelMap(m)["organization"])
	}

	for _, name := range []string{"tenantgate_pools_open", "tenantgate_pool_cache_total", "tenantgate_pool_connections",
		"tenantgate_pool_waits_total", "tenantgate_pool_breakers_open", "tenantgate_pool_server_connections",
		"tenantgate_placement_cache_total", "tenantgate_placement_cache_entries", "tenantgate_http_request_duration_seconds"} {
		require.Contains(t, families, name)
	}
	placements := map[string]float64{}
	for _, m := range families["tenantgate_placement_cache_total"].GetMetric() {
		placements[labelMap(m)["result"]] = m.GetCounter().GetValue()
	}
	require.Positive(t, placements["hit"], "repeat requests hit the placement cache")
	require.Positive(t, placements["miss"])
	require.Equal(t, 3.0, families["tenantgate_placement_cache_entries"].GetMetric()[0].GetGauge().GetValue())
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

func labelMap(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
