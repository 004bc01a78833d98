package provisioner

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// scheduler returns a scheduler over the fleet's catalog that fires
// through application-role pools, as the provisioner service's does.
func (f *fleet) scheduler(t *testing.T) *Scheduler {
	var mu sync.Mutex
	pools := map[string]*pgxpool.Pool{}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, p := range pools {
			p.Close()
		}
	})
	lease := func(ctx context.Context, id string) (*pgxpool.Pool, func(error), error) {
		mu.Lock()
		defer mu.Unlock()
		if p, ok := pools[id]; ok {
			return p, func(error) {}, nil
		}
		db, err := f.store.Database(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		dsn, err := schema.WithUser(db.DSN, f.env.AppRole, "")
		if err != nil {
			return nil, nil, err
		}
		p, err := pgxpool.New(ctx, dsn)
		if err != nil {
			return nil, nil, err
		}
		pools[id] = p
		return p, func(error) {}, nil
	}
	return NewScheduler(f.store, tenantdb.NewSchedules(tenantdb.NewScope(lease)), quiet)
}

// dueSchedules gives the organization n yearly schedules due since at, in
// its database and in the catalog's index, as the gateway would.
func (f *fleet) dueSchedules(t *testing.T, orgID string, n int, at time.Time) {
	t.Helper()
	conn := f.owner(t, orgID)
	_, err := conn.Exec(ctx(t), `WITH a AS (INSERT INTO agents (organization_id, name) VALUES ($1, 'cron-' || gen_random_uuid()) RETURNING id)
		INSERT INTO schedules (organization_id, agent_id, cron, task_template, next_run_at)
		SELECT $1, a.id, '0 0 1 1 *', '{"title": "yearly"}', $2 FROM a, generate_series(1, $3)`, orgID, at, n)
	require.NoError(t, err)
	require.NoError(t, f.store.NoteScheduleDue(ctx(t), orgID, at))
}

// owner connects to the organization's database as its owner.
func (f *fleet) owner(t *testing.T, orgID string) *pgx.Conn {
	t.Helper()
	tn, err := f.store.Tenant(ctx(t), orgID)
	require.NoError(t, err)
	db, err := f.store.Database(ctx(t), tn.Placement.DatabaseID)
	require.NoError(t, err)
	return tenancytest.Connect(t, db.DSN)
}

// fired counts the tasks the organization's schedules created, and the
// distinct schedules they came from.
func (f *fleet) fired(t *testing.T, orgID string) (tasks, schedules int) {
	t.Helper()
	require.NoError(t, f.owner(t, orgID).QueryRow(ctx(t), `SELECT count(*), count(DISTINCT details->>'scheduleId')
		FROM activity_logs WHERE organization_id = $1 AND action = 'task.created' AND details ? 'scheduleId'`, orgID).
		Scan(&tasks, &schedules))
	return tasks, schedules
}

func (f *fleet) org(t *testing.T, slug string, plan tenancy.Plan) string {
	t.Helper()
	o, err := f.prov.CreateOrganization(ctx(t), CreateOrganization{Slug: slug, Name: slug, Plan: plan})
	require.NoError(t, err)
	return o.ID
}

// TestSchedulerVisitsFairly: an organization with a backlog of due
// schedules gets a bounded number fired per visit and then waits behind
// one that came due after it, and every one of its schedules fires once
// over its visits.
func TestSchedulerVisitsFairly(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	busy, other := f.org(t, "busy", tenancy.PlanPro), f.org(t, "other", tenancy.PlanPro)
	now := time.Now()
	f.dueSchedules(t, busy, 300, now.Add(-10*time.Minute))
	f.dueSchedules(t, other, 1, now.Add(-5*time.Minute))
	s := f.scheduler(t)
	require.Equal(t, DefaultMaxFiresPerVisit, s.MaxFiresPerVisit)

	visited, err := s.step(ctx(t))
	require.NoError(t, err)
	require.Equal(t, busy, visited, "the organization due the longest first")
	tasks, _ := f.fired(t, busy)
	require.Equal(t, DefaultMaxFiresPerVisit, tasks, "one visit fires at most the limit")

	visited, err = s.step(ctx(t))
	require.NoError(t, err)
	require.Equal(t, other, visited, "the backlog waits behind an organization due before its next visit")
	tasks, _ = f.fired(t, other)
	require.Equal(t, 1, tasks)

	var rest []string
	for {
		visited, err := s.step(ctx(t))
		if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
			break
		}
		require.NoError(t, err)
		rest = append(rest, visited)
		require.Less(t, len(rest), 10, "the backlog drains")
	}
	require.Equal(t, []string{busy, busy}, rest, "the rest of the backlog in two more visits")
	tasks, schedules := f.fired(t, busy)
	require.Equal(t, 300, tasks, "one task per schedule due time")
	require.Equal(t, 300, schedules)
	var left int
	require.NoError(t, f.owner(t, busy).QueryRow(ctx(t), `SELECT count(*) FROM schedules WHERE next_run_at <= now()`).Scan(&left))
	require.Zero(t, left, "every schedule moved to its next run")
}

// TestSchedulerWaitsForTheRequiredSchema: a tenant whose database is
// recorded below the tenant schema the store requires is not ready for
// the gateway, and the scheduler fires nothing there either: it looks
// again later. At the required version the same schedule fires.
func TestSchedulerWaitsForTheRequiredSchema(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	latest := latestTenantVersion(t)
	f.store.RequireTenantVersion(uint(latest))
	org := f.org(t, "behind", tenancy.PlanPro)
	f.dueSchedules(t, org, 1, time.Now().Add(-time.Minute))
	cat := tenancytest.Connect(t, f.env.CatalogURL)
	setVersion := func(v int) {
		_, err := cat.Exec(ctx(t), `UPDATE databases SET schema_version = $1 WHERE kind = 'shared'`, v)
		require.NoError(t, err)
	}
	setVersion(latest - 1)
	tn, err := f.store.Tenant(ctx(t), org)
	require.NoError(t, err)
	require.False(t, tn.Placement.DatabaseReady, "the gateway refuses the tenant")

	s := f.scheduler(t)
	visited, err := s.step(ctx(t))
	require.NoError(t, err)
	require.Equal(t, org, visited)
	tasks, _ := f.fired(t, org)
	require.Zero(t, tasks, "nothing fires into a database behind the required schema")
	var later bool
	require.NoError(t, cat.QueryRow(ctx(t), `SELECT next_due > now() + $2::interval FROM schedule_due WHERE organization_id = $1`,
		org, s.Lease).Scan(&later))
	require.True(t, later, "the visit is rescheduled, past the claim's lease")

	setVersion(latest)
	_, err = cat.Exec(ctx(t), `UPDATE schedule_due SET next_due = now() WHERE organization_id = $1`, org)
	require.NoError(t, err)
	visited, err = s.step(ctx(t))
	require.NoError(t, err)
	require.Equal(t, org, visited)
	tasks, _ = f.fired(t, org)
	require.Equal(t, 1, tasks, "at the required version the schedule fires")
}
