package main

import (
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// TestProvisionerMetrics: the provisioner serves /healthz, /readyz and
// /metrics on its own ops listener, and its series count what it did: a
// provisioning, a move with its write freeze, jobs in the catalog and the
// newest fan-out.
func TestProvisionerMetrics(t *testing.T) {
	env(t)
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	addr := freeAddr(t)
	stop := background(t, "provisioner", "--provisioner-admin-addr", addr)
	defer stop()
	waitHealthy(t, "http://"+addr+"/healthz")

	_, _, err = tg(t, "tenants", "create", "--slug", "bigco", "--name", "Big", "--plan", "enterprise", "--wait")
	require.NoError(t, err)
	_, _, err = tg(t, "tenants", "create", "--slug", "smallco", "--name", "Small", "--plan", "pro")
	require.NoError(t, err)
	_, _, err = tg(t, "tenants", "move", "smallco", "--to", "dedicated", "--wait")
	require.NoError(t, err)
	// bigco's database goes back one version, so the fan-out has work.
	_, _, err = tg(t, "migrate", "tenants", "--tenant", "bigco", "--to", "2")
	require.NoError(t, err)
	_, _, err = tg(t, "migrate", "tenants")
	require.NoError(t, err)

	res := call(t, "GET", "http://"+addr+"/readyz", "", "")
	require.Equal(t, 200, res.StatusCode)
	res = call(t, "GET", "http://"+addr+"/metrics", "", "")
	require.Equal(t, 200, res.StatusCode)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(res.Body)
	require.NoError(t, err)

	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		f := fams[name]
		require.NotNil(t, f, "%s is exported", name)
		for _, m := range f.GetMetric() {
			if hasLabels(m, labels) {
				switch {
				case m.Counter != nil:
					return m.GetCounter().GetValue()
				case m.Gauge != nil:
					return m.GetGauge().GetValue()
				case m.Histogram != nil:
					return float64(m.GetHistogram().GetSampleCount())
				}
			}
		}
		t.Fatalf("%s has no series with %v", name, labels)
		return 0
	}
	require.GreaterOrEqual(t, value("tenantgate_provisioner_jobs_total", map[string]string{"kind": "provision", "result": "succeeded"}), 1.0)
	require.Equal(t, 1.0, value("tenantgate_provisioner_jobs_total", map[string]string{"kind": "move", "result": "succeeded"}))
	require.Equal(t, 1.0, value("tenantgate_move_duration_seconds", map[string]string{"direction": "dedicated", "result": "succeeded"}))
	require.Equal(t, 1.0, value("tenantgate_move_freeze_seconds", map[string]string{"direction": "dedicated"}))
	require.Equal(t, 1.0, value("tenantgate_provisioner_jobs", map[string]string{"kind": "move", "state": "succeeded"}))
	require.Contains(t, fams, "tenantgate_pool_connections", "the scheduler's pool cache")
	require.Equal(t, 0.0, value("tenantgate_fanout_databases", map[string]string{"state": "failed"}))
	require.Equal(t, 0.0, value("tenantgate_fanout_databases", map[string]string{"state": "pending"}), "the fan-out has ended")
	require.Equal(t, 1.0, value("tenantgate_fanout_databases", map[string]string{"state": "succeeded"}),
		"bigco's database was migrated; the others were at the target")
	freeze := fams["tenantgate_move_freeze_seconds"].GetMetric()[0].GetHistogram().GetSampleSum()
	total := value("tenantgate_move_duration_seconds", map[string]string{"direction": "dedicated", "result": "succeeded"})
	require.Positive(t, freeze)
	require.Positive(t, total)
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}
