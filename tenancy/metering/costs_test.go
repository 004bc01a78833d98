package metering_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/metering"
)

// TestCosts: Costs ranks the catalog's organizations by any measure,
// storage and tokens included, with all their figures; CostOf gives one.
func TestCosts(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	var shared string
	require.NoError(t, f.pool.QueryRow(ctx, `INSERT INTO databases (name, kind, dsn) VALUES ('shared', 'shared', 'postgres://s') RETURNING id::text`).Scan(&shared))
	place := func(slug string) string {
		var id string
		require.NoError(t, f.pool.QueryRow(ctx, `INSERT INTO organizations (slug, name, plan) VALUES ($1, $1, 'pro') RETURNING id::text`, slug).Scan(&id))
		_, err := f.pool.Exec(ctx, `INSERT INTO placements (organization_id, database_id) VALUES ($1, $2)`, id, shared)
		require.NoError(t, err)
		return id
	}
	charge := func(org string, tokens int64, at time.Time) {
		_, err := f.pool.Exec(ctx, `INSERT INTO usage_charges (organization_id, task_id, minutes, tokens, period_start, charged_at)
			VALUES ($1, $2, 1, $3, $4, $4)`, org, uuid.NewString(), tokens, at)
		require.NoError(t, err)
	}
	busy, heavy, chatty, idle := place("busy"), place("heavy"), place("chatty"), place("idle")

	old := f.clock.Now()
	m := f.meter(metering.Config{})
	for range 50 {
		m.Record(idle, req(time.Second, 1, 0)) // before since
	}
	f.flush(t, m)
	charge(chatty, 1_000_000, old)
	f.clock.Advance(time.Hour)
	since := f.clock.Now()
	for range 10 {
		m.Record(busy, req(time.Second, 1, 0))
	}
	for range 20 {
		m.Record(chatty, req(time.Millisecond, 1, 0))
	}
	f.flush(t, m)
	m.Record(uuid.NewString(), req(time.Hour, 1, 0)) // an organization the catalog does not hold
	f.flush(t, m)
	require.NoError(t, f.store.RecordStorages(ctx, map[string]int64{heavy: 5000, busy: 100}, since))
	charge(chatty, 300, since)
	charge(chatty, 200, since.Add(time.Minute))
	charge(heavy, 100, since)

	ranked := func(by metering.Measure, n int) []string {
		costs, err := f.store.Costs(ctx, since, by, n)
		require.NoError(t, err)
		var slugs []string
		for _, c := range costs {
			slugs = append(slugs, c.Slug)
		}
		return slugs
	}
	require.Equal(t, []string{"busy", "chatty", "heavy", "idle"}, ranked(metering.ByDBTime, 10), "deleted organizations are not listed")
	require.Equal(t, []string{"chatty", "busy"}, ranked(metering.ByRequests, 2))
	require.Equal(t, []string{"heavy", "busy"}, ranked(metering.ByStorage, 2))
	require.Equal(t, []string{"chatty", "heavy"}, ranked(metering.ByTokens, 2), "only tokens charged since count")
	require.Empty(t, ranked(metering.ByTokens, 0))

	c, err := f.store.CostOf(ctx, chatty, since)
	require.NoError(t, err)
	require.Equal(t, metering.Cost{OrganizationID: chatty, Slug: "chatty", Plan: "pro", Kind: tenancy.KindShared, DatabaseName: "shared",
		Usage: times(req(time.Millisecond, 1, 0), 20), Tokens: 500}, c)
	c, err = f.store.CostOf(ctx, heavy, since)
	require.NoError(t, err)
	require.Equal(t, metering.StorageFigure{Bytes: 5000, MeasuredAt: since}, c.Storage)
	require.Equal(t, int64(100), c.Tokens)
	c, err = f.store.CostOf(ctx, idle, old)
	require.NoError(t, err)
	require.Equal(t, int64(50), c.Usage.Requests, "since an older time")

	_, err = f.store.CostOf(ctx, uuid.NewString(), since)
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err))
	_, err = f.store.CostOf(ctx, "nope", since)
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
	_, err = f.store.Costs(ctx, since, "weight", 1)
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
}

// TestRecordStorages: one statement records many figures; older ones lose,
// as with RecordStorage, and an id given twice is refused.
func TestRecordStorages(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	a, b := org(), org()
	t0 := f.clock.Now()
	require.NoError(t, f.store.RecordStorage(ctx, a, 100, t0.Add(time.Hour)))
	before := f.statements.Load()
	require.NoError(t, f.store.RecordStorages(ctx, map[string]int64{a: 50, b: 70}, t0))
	require.Equal(t, int64(1), f.statements.Load()-before, "one statement")
	st, err := f.store.Storage(ctx, a)
	require.NoError(t, err)
	require.Equal(t, int64(100), st.Bytes, "an older figure is ignored")
	st, err = f.store.Storage(ctx, b)
	require.NoError(t, err)
	require.Equal(t, metering.StorageFigure{Bytes: 70, MeasuredAt: t0}, st)

	require.NoError(t, f.store.RecordStorages(ctx, nil, t0))
	upper := uuid.MustParse(a).String()
	err = f.store.RecordStorages(ctx, map[string]int64{a: 1, "{" + upper + "}": 2}, t0)
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(f.store.RecordStorages(ctx, map[string]int64{a: -1}, t0)))
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(f.store.RecordStorages(ctx, map[string]int64{"x": 1}, t0)))
}
