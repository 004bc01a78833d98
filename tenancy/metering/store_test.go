package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/metering"
)

// TestTotalsGranularity: Totals buckets by UTC hour or day, oldest first,
// over [from, to), and refuses anything else.
func TestTotalsGranularity(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	m := f.meter(metering.Config{})
	o := org()
	t0 := f.clock.Now()
	for _, at := range []time.Duration{0, 30 * time.Minute, 90 * time.Minute, 25 * time.Hour} {
		f.clock.Advance(at - f.clock.Now().Sub(t0))
		m.Record(o, req(time.Millisecond, 1, 0))
		f.flush(t, m)
	}
	one := req(time.Millisecond, 1, 0)

	hours, err := f.store.Totals(ctx, o, t0, t0.Add(48*time.Hour), metering.Hour)
	require.NoError(t, err)
	require.Equal(t, []metering.Point{
		{Start: t0, Usage: times(one, 2)},
		{Start: t0.Add(time.Hour), Usage: one},
		{Start: t0.Add(25 * time.Hour), Usage: one},
	}, hours)

	days, err := f.store.Totals(ctx, o, t0, t0.Add(48*time.Hour), metering.Day)
	require.NoError(t, err)
	require.Equal(t, []metering.Point{{Start: t0, Usage: times(one, 3)}, {Start: t0.Add(24 * time.Hour), Usage: one}}, days)

	part, err := f.store.Totals(ctx, o, t0.Add(30*time.Minute), t0.Add(90*time.Minute), metering.Day)
	require.NoError(t, err)
	require.Equal(t, []metering.Point{{Start: t0, Usage: one}}, part, "to is exclusive")

	_, err = f.store.Totals(ctx, o, t0, t0.Add(time.Hour), "week")
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
	_, err = f.store.Totals(ctx, "nope", t0, t0.Add(time.Hour), metering.Day)
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
}

// TestRollupKeepsTotals: minute rows older than the cutoff become hourly
// rows summed over replicas; Totals are the same before and after, and a
// second rollup moves nothing and changes nothing.
func TestRollupKeepsTotals(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	a, b := f.meter(metering.Config{}), f.meter(metering.Config{})
	o, other := org(), org()
	t0 := f.clock.Now()
	for _, at := range []time.Duration{0, time.Minute, 30 * time.Minute, 90 * time.Minute, 25*time.Hour + 30*time.Minute} {
		f.clock.Advance(at - f.clock.Now().Sub(t0))
		a.Record(o, req(time.Millisecond, 1, 1))
		b.Record(o, req(2*time.Millisecond, 2, 0))
		a.Record(other, req(time.Second, 10, 10))
		f.flush(t, a)
		f.flush(t, b)
	}
	f.clock.Advance(26*time.Hour - f.clock.Now().Sub(t0))
	totals := func(g metering.Granularity, org string) []metering.Point {
		p, err := f.store.Totals(ctx, org, t0, t0.Add(48*time.Hour), g)
		require.NoError(t, err)
		return p
	}
	hourly, daily, others := totals(metering.Hour, o), totals(metering.Day, o), totals(metering.Day, other)

	_, err := f.store.Rollup(ctx, time.Hour)
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err), "a minute a replica may still flush")

	moved, err := f.store.Rollup(ctx, metering.DefaultRollupAge)
	require.NoError(t, err)
	require.Equal(t, int64(12), moved, "4 minutes × (2 replicas of o + 1 of other)")
	require.Equal(t, int64(4), f.count(t, `SELECT count(*) FROM usage_hours`), "hours 0 and 1 of each organization")
	require.Equal(t, int64(3), f.count(t, `SELECT count(*) FROM usage_minutes`), "the last day's minutes stay")
	require.Equal(t, hourly, totals(metering.Hour, o))
	require.Equal(t, daily, totals(metering.Day, o))
	require.Equal(t, others, totals(metering.Day, other))

	moved, err = f.store.Rollup(ctx, metering.DefaultRollupAge)
	require.NoError(t, err)
	require.Zero(t, moved)
	require.Equal(t, hourly, totals(metering.Hour, o))
}

// TestPrune: rows older than the retention go, minute, hourly and storage
// alike; younger ones stay.
func TestPrune(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	m := f.meter(metering.Config{})
	o := org()
	t0 := f.clock.Now()
	m.Record(o, req(time.Millisecond, 1, 0))
	f.flush(t, m)
	require.NoError(t, f.store.RecordStorage(ctx, o, 1000, t0))
	f.clock.Advance(3 * time.Hour)
	_, err := f.store.Rollup(ctx, 2*time.Hour) // the first hour becomes an hourly row
	require.NoError(t, err)
	f.clock.Advance(time.Hour)
	m.Record(o, req(time.Millisecond, 1, 0))
	f.flush(t, m)

	_, err = f.store.Prune(ctx, 0)
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))

	n, err := f.store.Prune(ctx, metering.DefaultRetention)
	require.NoError(t, err)
	require.Zero(t, n)

	n, err = f.store.Prune(ctx, 2*time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(2), n, "the hourly row and the storage figure")
	require.Equal(t, req(time.Millisecond, 1, 0), f.totals(t, o))
	st, err := f.store.Storage(ctx, o)
	require.NoError(t, err)
	require.Zero(t, st)
}

// TestTopRanks: Top ranks organizations by a measure since a time, leaves
// out older usage and the overflow pseudo-organization.
func TestTopRanks(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	m := f.meter(metering.Config{MaxOrganizations: 3})
	a, b, c, d := org(), org(), org(), org()

	old := f.clock.Now()
	for range 100 {
		m.Record(c, req(time.Millisecond, 1, 0)) // before since
	}
	f.flush(t, m)
	f.clock.Advance(time.Hour)
	since := f.clock.Now()
	for range 10 {
		m.Record(a, req(time.Millisecond, 1, 0))
	}
	for range 5 {
		m.Record(b, req(10*time.Millisecond, 1, 0))
	}
	m.Record(c, req(time.Millisecond, 1, 0))
	for range 50 {
		m.Record(d, req(time.Millisecond, 1, 0)) // past the cap: overflow
	}
	f.flush(t, m)

	top, err := f.store.Top(ctx, since, metering.ByRequests, 2)
	require.NoError(t, err)
	require.Equal(t, []metering.OrgUsage{
		{OrganizationID: a, Usage: times(req(time.Millisecond, 1, 0), 10)},
		{OrganizationID: b, Usage: times(req(10*time.Millisecond, 1, 0), 5)},
	}, top)

	top, err = f.store.Top(ctx, since, metering.ByDBTime, 1)
	require.NoError(t, err)
	require.Equal(t, b, top[0].OrganizationID)

	top, err = f.store.Top(ctx, old, metering.ByRequests, 10)
	require.NoError(t, err)
	require.Len(t, top, 3)
	require.Equal(t, c, top[0].OrganizationID, "101 requests since the older time")

	_, err = f.store.Top(ctx, since, "tokens", 1)
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
}

// TestStorageLatestWins: the newest figure is kept, whatever the order
// they arrive in.
func TestStorageLatestWins(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	o := org()
	t0 := f.clock.Now()

	st, err := f.store.Storage(ctx, o)
	require.NoError(t, err)
	require.Zero(t, st, "never measured")

	require.NoError(t, f.store.RecordStorage(ctx, o, 100, t0.Add(time.Hour)))
	require.NoError(t, f.store.RecordStorage(ctx, o, 50, t0)) // late, older
	st, err = f.store.Storage(ctx, o)
	require.NoError(t, err)
	require.Equal(t, metering.StorageFigure{Bytes: 100, MeasuredAt: t0.Add(time.Hour)}, st)

	require.NoError(t, f.store.RecordStorage(ctx, o, 200, t0.Add(2*time.Hour)))
	st, err = f.store.Storage(ctx, o)
	require.NoError(t, err)
	require.Equal(t, int64(200), st.Bytes)

	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(f.store.RecordStorage(ctx, o, -1, t0)))
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(f.store.RecordStorage(ctx, "x", 1, t0)))
}

// TestShares: each placed organization's database time and storage beside
// its database's, idle organizations included: one tenant hammering the
// shared database shows as most of it.
func TestShares(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	var shared, dedicated string
	require.NoError(t, f.pool.QueryRow(ctx, `INSERT INTO databases (name, kind, dsn) VALUES ('shared', 'shared', 'postgres://s') RETURNING id::text`).Scan(&shared))
	require.NoError(t, f.pool.QueryRow(ctx, `INSERT INTO databases (name, kind, dsn) VALUES ('ded', 'dedicated', 'postgres://d') RETURNING id::text`).Scan(&dedicated))
	place := func(slug, plan, db string) string {
		var id string
		require.NoError(t, f.pool.QueryRow(ctx, `INSERT INTO organizations (slug, name, plan) VALUES ($1, $1, $2) RETURNING id::text`, slug, plan).Scan(&id))
		_, err := f.pool.Exec(ctx, `INSERT INTO placements (organization_id, database_id) VALUES ($1, $2)`, id, db)
		require.NoError(t, err)
		return id
	}
	noisy, quiet, idle := place("noisy", "pro", shared), place("quiet", "free", shared), place("idle", "enterprise", dedicated)

	since := f.clock.Now()
	m := f.meter(metering.Config{})
	for range 8 {
		m.Record(noisy, req(100*time.Millisecond, 10, 0))
	}
	for range 2 {
		m.Record(quiet, req(100*time.Millisecond, 1, 0))
	}
	f.flush(t, m)
	require.NoError(t, f.store.RecordStorage(ctx, noisy, 300, since))
	require.NoError(t, f.store.RecordStorage(ctx, quiet, 100, since))
	require.NoError(t, f.store.RecordStorage(ctx, idle, 5000, since))

	shares, err := f.store.Shares(ctx, since)
	require.NoError(t, err)
	require.Len(t, shares, 3)
	byOrg := map[string]metering.Share{}
	for _, s := range shares {
		byOrg[s.Slug] = s
	}
	require.Equal(t, metering.Share{OrganizationID: idle, Slug: "idle", Plan: "enterprise", DatabaseID: dedicated,
		DatabaseName: "ded", Kind: tenancy.KindDedicated, Storage: 5000, DatabaseStorage: 5000}, byOrg["idle"])
	n := byOrg["noisy"]
	require.Equal(t, tenancy.KindShared, n.Kind)
	require.Equal(t, times(req(100*time.Millisecond, 10, 0), 8), n.Usage)
	require.Equal(t, time.Second, n.DatabaseDBTime)
	require.InDelta(t, 0.8, n.DBTimeShare(), 1e-9)
	require.InDelta(t, 0.75, n.StorageShare(), 1e-9)
	require.InDelta(t, 0.2, byOrg["quiet"].DBTimeShare(), 1e-9)
	require.Zero(t, byOrg["idle"].DBTimeShare())
	require.Equal(t, "noisy", shares[1].Slug, "by database, busiest first")
}
