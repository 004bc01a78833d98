package metering_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/metering"
)

// TestTracerMetersTenantCalls: statements made with a tenant in their
// context are charged to it as database time and rows from their command
// tags (Exec, Query, batches, transactions, CopyFrom); the organization
// setting is not counted as a row read; statements without a tenant are
// not metered.
func TestTracerMetersTenantCalls(t *testing.T) {
	t.Parallel()
	f := setup(t)
	m := f.meter(metering.Config{})
	cfg, err := pgxpool.ParseConfig(f.env.CatalogURL)
	require.NoError(t, err)
	cfg.ConnConfig.Tracer = m.Tracer()
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)

	bg := context.Background()
	_, err = pool.Exec(bg, `CREATE TABLE items (x int)`)
	require.NoError(t, err)
	o := org()
	ctx := tenancy.WithTenant(bg, tenancy.Tenant{Organization: tenancy.Organization{ID: o}})
	const setting = `SELECT set_config('app.organization_id', $1, true)`

	_, err = pool.Exec(ctx, `INSERT INTO items SELECT generate_series(1, 3)`) // 3 written
	require.NoError(t, err)

	b := &pgx.Batch{}
	b.Queue(setting, o)
	b.Queue(`SELECT x FROM items`)                     // 3 read
	b.Queue(`UPDATE items SET x = x + 10 WHERE x < 3`) // 2 written
	require.NoError(t, pool.SendBatch(ctx, b).Close())

	rows, err := pool.Query(ctx, `SELECT x FROM items ORDER BY x`) // 3 read
	require.NoError(t, err)
	xs, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	require.Equal(t, []int32{3, 11, 12}, xs)

	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, setting, o); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM items WHERE x = 3`) // 1 written
		return err
	}))

	n, err := pool.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"x"},
		pgx.CopyFromRows([][]any{{int32(1)}, {int32(2)}})) // 2 written
	require.NoError(t, err)
	require.Equal(t, int64(2), n)

	_, err = pool.Exec(bg, `DELETE FROM items`) // no tenant: not metered
	require.NoError(t, err)

	f.flush(t, m)
	got := f.totals(t, o)
	require.Positive(t, got.DBTime)
	got.DBTime = 0
	require.Equal(t, metering.Usage{RowsRead: 6, RowsWritten: 8}, got)
	require.Equal(t, int64(1), f.count(t, `SELECT count(DISTINCT organization_id) FROM usage_minutes`),
		"only the tenant's statements are metered")
}
