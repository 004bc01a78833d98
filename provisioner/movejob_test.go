package provisioner

import (
	"context"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// TestMoveJobChangesPlanThroughTheHook: a move job that carries a plan
// moves the tenant, then asks ChangePlan for the plan once the placement
// matches it; it never sets the plan itself. The move is timed.
func TestMoveJobChangesPlanThroughTheHook(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	reg := prometheus.NewRegistry()
	f.prov.Metrics = NewMetrics(reg)
	f.prov.Publish = func(context.Context, string) error { return nil }
	type change struct {
		plan      tenancy.Plan
		placement string
	}
	var mu sync.Mutex
	var changes []change
	f.prov.ChangePlan = func(ctx context.Context, orgID string, plan tenancy.Plan) error {
		pl, err := f.store.Placement(ctx, orgID)
		if err != nil {
			return err
		}
		mu.Lock()
		changes = append(changes, change{plan, pl.Kind})
		mu.Unlock()
		return nil
	}
	f.worker(t, f.prov.Handlers())
	org := f.org(t, "grower", tenancy.PlanPro)

	job, err := f.store.EnqueueJob(ctx(t), catalog.JobMove, org, catalog.MovePayload{To: tenancy.KindDedicated, Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	done := f.waitJob(t, job.ID)
	require.Equal(t, catalog.JobSucceeded, done.State, done.Error)
	require.Equal(t, "plan enterprise", done.Step)
	mu.Lock()
	require.Equal(t, []change{{tenancy.PlanEnterprise, tenancy.KindDedicated}}, changes, "asked once, with the data in place")
	mu.Unlock()
	o, err := f.store.Organization(ctx(t), org)
	require.NoError(t, err)
	require.Equal(t, tenancy.KindDedicated, o.Placement)
	require.Equal(t, tenancy.PlanPro, o.Plan, "the job leaves setting the plan to ChangePlan")
	// Each run of the move is timed: one, unless a loaded machine made
	// the worker lose its short lease and run the job again.
	require.Equal(t, uint64(done.Attempts), moveCount(t, reg), "the move is timed")

	// A move without a plan asks for none.
	job, err = f.store.EnqueueJob(ctx(t), catalog.JobMove, org, catalog.MovePayload{To: tenancy.KindShared})
	require.NoError(t, err)
	done = f.waitJob(t, job.ID)
	require.Equal(t, catalog.JobSucceeded, done.State, done.Error)
	mu.Lock()
	require.Len(t, changes, 1)
	mu.Unlock()
}

// moveCount is how many moves the registry's duration histogram saw.
func moveCount(t *testing.T, reg *prometheus.Registry) uint64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	var n uint64
	for _, mf := range families {
		if mf.GetName() == "tenantgate_move_duration_seconds" {
			for _, m := range mf.GetMetric() {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return n
}
