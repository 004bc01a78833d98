package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// ledgerStore is a migrated catalog in a database of the test's own, with
// two tenant databases registered (not created: the ledger never connects
// to them).
func ledgerStore(t *testing.T) (*catalog.Store, *pgxpool.Pool, []tenancy.Database) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	e := tenancytest.NewEnv(t)
	require.NoError(t, schema.CreateDatabase(ctx, e.ServerURL, e.Prefix+"catalog"))
	_, err := schema.Migrate(ctx, e.CatalogURL, migrations.Catalog, "catalog", 0)
	require.NoError(t, err)
	pool, err := pgxpool.New(ctx, e.CatalogURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store := catalog.New(pool)
	var dbs []tenancy.Database
	for _, name := range []string{"a", "b"} {
		d, err := store.RegisterDatabase(ctx, tenancy.Database{Name: e.Prefix + name, Kind: tenancy.KindDedicated,
			DSN: e.DatabaseURL(t, e.Prefix+name)})
		require.NoError(t, err)
		dbs = append(dbs, d)
	}
	return store, pool, dbs
}

func dbRow(t *testing.T, pool *pgxpool.Pool, id string) (version int64, dirty bool) {
	t.Helper()
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT schema_version, dirty FROM databases WHERE id = $1`, id).
		Scan(&version, &dirty))
	return version, dirty
}

// TestLedgerRunLifecycle: a run marks a database dirty while it works on
// it and records the outcome in the ledger and the catalog together; an
// interrupted run is resumed by the next with its target, not by another.
func TestLedgerRunLifecycle(t *testing.T) {
	t.Parallel()
	store, pool, dbs := ledgerStore(t)
	ctx := context.Background()
	a, b := dbs[0], dbs[1]

	run, prior, err := store.StartMigrationRun(ctx, 3, "")
	require.NoError(t, err)
	require.False(t, run.Resumed)
	require.Empty(t, prior)

	attempts, err := store.BeginMigration(ctx, run.ID, a.ID, 0, 3)
	require.NoError(t, err)
	require.Equal(t, 1, attempts)
	_, dirty := dbRow(t, pool, a.ID)
	require.True(t, dirty, "a database being migrated is refused to its tenants")
	require.NoError(t, store.FinishMigration(ctx, run.ID, a.ID, catalog.MigrationOutcome{
		Status: catalog.LedgerSucceeded, Duration: 1500 * time.Millisecond, Version: 3, KnownVersion: true}))
	version, dirty := dbRow(t, pool, a.ID)
	require.Equal(t, int64(3), version)
	require.False(t, dirty)

	_, err = store.BeginMigration(ctx, run.ID, b.ID, 0, 3)
	require.NoError(t, err)
	require.NoError(t, store.FinishMigrationRun(ctx, run.ID, catalog.LedgerInterrupted))

	other, _, err := store.StartMigrationRun(ctx, 2, "")
	require.NoError(t, err)
	require.NotEqual(t, run.ID, other.ID, "another target starts its own run")
	require.NoError(t, store.FinishMigrationRun(ctx, other.ID, catalog.LedgerSucceeded))

	again, prior, err := store.StartMigrationRun(ctx, 3, "")
	require.NoError(t, err)
	require.Equal(t, run.ID, again.ID, "the interrupted run with the same target is resumed")
	require.True(t, again.Resumed)
	require.Equal(t, catalog.LedgerSucceeded, prior[a.ID].Status)
	require.Equal(t, time.Second+500*time.Millisecond, prior[a.ID].Duration)
	require.Equal(t, catalog.LedgerRunning, prior[b.ID].Status, "the database cut short is still marked running")

	attempts, err = store.BeginMigration(ctx, run.ID, b.ID, 0, 3)
	require.NoError(t, err)
	require.Equal(t, 2, attempts, "resuming a started database is its second attempt")
	require.NoError(t, store.FinishMigration(ctx, run.ID, b.ID, catalog.MigrationOutcome{
		Status: catalog.LedgerFailed, Error: "boom", Version: 2, KnownVersion: true, Dirty: true}))
	last, err := store.LastMigrationResults(ctx)
	require.NoError(t, err)
	require.Equal(t, "boom", last[b.ID].Error)
	require.NotNil(t, last[b.ID].FinishedAt)

	repair, err := store.RecordRepair(ctx, b.ID, 2, 1)
	require.NoError(t, err)
	version, dirty = dbRow(t, pool, b.ID)
	require.Equal(t, int64(1), version)
	require.False(t, dirty, "a repair lets the tenants back in")
	last, err = store.LastMigrationResults(ctx)
	require.NoError(t, err)
	require.Equal(t, repair, last[b.ID].RunID)
	require.Equal(t, catalog.LedgerRepaired, last[b.ID].Status)

	_, err = store.RecordRepair(ctx, "00000000-0000-0000-0000-000000000000", 2, 1)
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err))
}

// TestLedgerFailureKeepsVersionWhenUnknown: an outcome that could not read
// the version keeps the recorded one.
func TestLedgerFailureKeepsVersionWhenUnknown(t *testing.T) {
	t.Parallel()
	store, pool, dbs := ledgerStore(t)
	ctx := context.Background()
	require.NoError(t, store.SetDatabaseVersion(ctx, dbs[0].ID, 2, false))
	run, _, err := store.StartMigrationRun(ctx, 3, "acme")
	require.NoError(t, err)
	_, err = store.BeginMigration(ctx, run.ID, dbs[0].ID, 2, 3)
	require.NoError(t, err)
	require.NoError(t, store.FinishMigration(ctx, run.ID, dbs[0].ID, catalog.MigrationOutcome{
		Status: catalog.LedgerFailed, Error: "connection refused"}))
	version, dirty := dbRow(t, pool, dbs[0].ID)
	require.Equal(t, int64(2), version)
	require.False(t, dirty)
}

// TestLedgerLockIsExclusive: one fan-out at a time per catalog; the lock
// is freed by unlock (and by the session ending).
func TestLedgerLockIsExclusive(t *testing.T) {
	t.Parallel()
	store, _, _ := ledgerStore(t)
	ctx := context.Background()
	unlock, err := store.LockMigrationRuns(ctx)
	require.NoError(t, err)
	_, err = store.LockMigrationRuns(ctx)
	require.Equal(t, tenancy.CodeConflict, tenancy.ErrorCode(err))
	unlock()
	unlock, err = store.LockMigrationRuns(ctx)
	require.NoError(t, err)
	unlock()

	name, version, dirty, err := store.CatalogVersion(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, name)
	require.Positive(t, version)
	require.False(t, dirty)
}
