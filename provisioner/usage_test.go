package provisioner

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/metering"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// usageFleet is an initialized deployment with a usage collector over it.
type usageFleet struct {
	env       *tenancytest.Env
	catalog   *pgxpool.Pool
	store     *catalog.Store
	usage     *metering.Store
	prov      *Provisioner
	collector *UsageCollector
}

func newUsageFleet(t *testing.T) *usageFleet {
	e := tenancytest.NewEnv(t)
	cfg := configFor(e)
	require.NoError(t, Init(ctx(t), cfg, quiet))
	pool, err := pgxpool.New(ctx(t), e.CatalogURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store := catalog.New(pool)
	usage := metering.NewStore(pool, nil)
	prov := New(cfg, store, quiet)
	t.Cleanup(prov.Close)
	return &usageFleet{env: e, catalog: pool, store: store, usage: usage, prov: prov,
		collector: NewUsageCollector(store, usage, metering.DefaultRetention, quiet)}
}

func (f *usageFleet) create(t *testing.T, slug string, plan tenancy.Plan) tenancy.Organization {
	org, err := f.prov.CreateOrganization(ctx(t), CreateOrganization{Slug: slug, Name: slug, Plan: plan})
	require.NoError(t, err)
	return org
}

func (f *usageFleet) storage(t *testing.T, org tenancy.Organization) metering.StorageFigure {
	st, err := f.usage.Storage(ctx(t), org.ID)
	require.NoError(t, err)
	return st
}

// addAgents inserts n agents of org into the shared database, as its
// owner.
func addAgents(t *testing.T, shared *pgx.Conn, org tenancy.Organization, n int) {
	_, err := shared.Exec(ctx(t), `INSERT INTO agents (organization_id, name, description)
		SELECT $1, 'agent-' || i, repeat('x', 200) FROM generate_series(1, $2) i`, org.ID, n)
	require.NoError(t, err)
}

// TestUsageStorageOfADedicatedTenant: a dedicated tenant's storage is its
// database's size, as pg_database_size reports it.
func TestUsageStorageOfADedicatedTenant(t *testing.T) {
	t.Parallel()
	f := newUsageFleet(t)
	ent := f.create(t, "big-corp", tenancy.PlanEnterprise)
	name := configFor(f.env).DedicatedName("big-corp")
	server := tenancytest.Connect(t, f.env.ServerURL)
	size := func() int64 {
		var n int64
		require.NoError(t, server.QueryRow(ctx(t), `SELECT pg_database_size($1)`, name).Scan(&n))
		return n
	}
	// The size is compared with one read before and after the collection:
	// should background work (autovacuum) change it in between, try again.
	for attempt := 0; ; attempt++ {
		before := size()
		require.NoError(t, f.collector.Collect(ctx(t)))
		if size() == before {
			st := f.storage(t, ent)
			require.Equal(t, before, st.Bytes, "pg_database_size of %s", name)
			require.False(t, st.MeasuredAt.IsZero())
			return
		}
		require.Less(t, attempt, 5, "the database's size kept changing")
	}
}

// TestUsageStorageOfSharedTenants: the tenants of the shared database get
// an estimate proportional to their rows — more rows, larger share, no
// rows, nothing — and the estimates add up to the tenant tables' size.
// Counting as a role under row-level security (not a superuser, as the
// test server's owner is) gives the same figures.
func TestUsageStorageOfSharedTenants(t *testing.T) {
	t.Parallel()
	f := newUsageFleet(t)
	big, small, empty := f.create(t, "big", tenancy.PlanPro), f.create(t, "small", tenancy.PlanFree), f.create(t, "empty", tenancy.PlanFree)
	shared := tenancytest.Connect(t, f.env.SharedURL)
	addAgents(t, shared, big, 300)
	addAgents(t, shared, small, 30)
	// Rows of an organization not placed here (one that moved away) are
	// not anyone's figure.
	_, err := shared.Exec(ctx(t), `INSERT INTO agents (organization_id, name) VALUES (gen_random_uuid(), 'left-behind')`)
	require.NoError(t, err)

	require.NoError(t, f.collector.Collect(ctx(t)))
	var agentsSize int64
	require.NoError(t, shared.QueryRow(ctx(t), `SELECT pg_total_relation_size('agents')`).Scan(&agentsSize))
	bigBytes, smallBytes := f.storage(t, big).Bytes, f.storage(t, small).Bytes
	require.Greater(t, bigBytes, smallBytes, "more rows, larger share")
	require.Positive(t, smallBytes)
	require.Equal(t, int64(math.Round(float64(agentsSize)*300/330)), bigBytes, "agents is the only table with rows: 300 of 330 placed rows")
	require.Equal(t, int64(math.Round(float64(agentsSize)*30/330)), smallBytes)
	st := f.storage(t, empty)
	require.Zero(t, st.Bytes, "no rows, no share")
	require.False(t, st.MeasuredAt.IsZero(), "measured all the same")

	// The same, counted as the application role: RLS is forced on tenant
	// tables, so the collector must set app.organization_id to see rows.
	var sharedID string
	require.NoError(t, f.catalog.QueryRow(ctx(t), `UPDATE databases SET dsn = $1 WHERE kind = 'shared' RETURNING id::text`,
		f.env.AppURL(t, f.env.SharedURL)).Scan(&sharedID))
	_, err = f.catalog.Exec(ctx(t), `DELETE FROM usage_storage`)
	require.NoError(t, err)
	require.NoError(t, f.collector.Collect(ctx(t)))
	require.Equal(t, bigBytes, f.storage(t, big).Bytes, "counted under row-level security")
	require.Equal(t, smallBytes, f.storage(t, small).Bytes)
}

// TestUsageCollectRollsUpAndPrunes: each collection rolls day-old minute
// rows into hourly rows and deletes what is past the retention.
func TestUsageCollectRollsUpAndPrunes(t *testing.T) {
	t.Parallel()
	f := newUsageFleet(t)
	org := f.create(t, "acme", tenancy.PlanPro)
	now := time.Now().UTC()
	dayOld := now.Add(-30 * time.Hour).Truncate(time.Minute)
	_, err := f.catalog.Exec(ctx(t), `
		INSERT INTO usage_minutes (replica_id, organization_id, minute, requests, db_time_us)
		VALUES (gen_random_uuid(), $1, $2, 7, 1000), (gen_random_uuid(), $1, $3, 1, 10)`,
		org.ID, dayOld, now.Add(-time.Minute).Truncate(time.Minute))
	require.NoError(t, err)
	_, err = f.catalog.Exec(ctx(t), `INSERT INTO usage_hours (organization_id, hour, requests) VALUES ($1, $2, 99)`,
		org.ID, now.Add(-100*24*time.Hour).Truncate(time.Hour))
	require.NoError(t, err)

	require.NoError(t, f.collector.Collect(ctx(t)))
	count := func(query string) (n int64) {
		require.NoError(t, f.catalog.QueryRow(ctx(t), query, org.ID).Scan(&n))
		return n
	}
	require.Equal(t, int64(1), count(`SELECT count(*) FROM usage_minutes WHERE organization_id = $1`), "the recent minute stays")
	require.Equal(t, int64(7), count(`SELECT coalesce(sum(requests), 0) FROM usage_hours WHERE organization_id = $1`),
		"the day-old minute is an hourly row; the one past 90 days is gone")
	c, err := f.usage.CostOf(ctx(t), org.ID, now.Add(-48*time.Hour))
	require.NoError(t, err)
	require.Equal(t, metering.Usage{Requests: 8, DBTime: 1010 * time.Microsecond}, c.Usage, "totals are unchanged by the rollup")
}

// TestUsageCollectorRun: Run collects at once, and stops when its context
// ends.
func TestUsageCollectorRun(t *testing.T) {
	t.Parallel()
	f := newUsageFleet(t)
	org := f.create(t, "acme", tenancy.PlanPro)
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.collector.Run(runCtx, time.Hour) }()
	require.Eventually(t, func() bool { return !f.storage(t, org).MeasuredAt.IsZero() }, 30*time.Second, 20*time.Millisecond,
		"the first collection runs at once")
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
}

// TestShareOut: each table's size is split by rows; a table without rows
// of the placed tenants is no one's.
func TestShareOut(t *testing.T) {
	t.Parallel()
	got := shareOut([]int64{1000, 90, 50}, []string{"a", "b", "c"}, map[string][]int64{
		"a": {3, 1, 0},
		"b": {1, 2, 0},
		"c": {0, 0, 0},
	})
	require.Equal(t, map[string]int64{"a": 750 + 30, "b": 250 + 60, "c": 0}, got)
	require.Equal(t, map[string]int64{"a": 0}, shareOut(nil, []string{"a"}, map[string][]int64{}), "no tenant tables")
	big := shareOut([]int64{math.MaxInt64 / 2}, []string{"a", "b"}, map[string][]int64{"a": {1 << 40}, "b": {1 << 40}})
	require.InDelta(t, float64(math.MaxInt64/4), float64(big["a"]), 1e6, "size × rows does not overflow")
}
