package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// TestLatestFanoutProgress: while a fan-out runs, databases below its
// target that it has not reached are pending; each one it reaches counts
// under its ledger status; once it ends nothing is pending.
func TestLatestFanoutProgress(t *testing.T) {
	t.Parallel()
	store, _, dbs := ledgerStore(t)
	ctx := context.Background()

	p, err := store.LatestFanout(ctx)
	require.NoError(t, err)
	require.Empty(t, p.RunID, "no fan-out yet")

	run, _, err := store.StartMigrationRun(ctx, 3, "")
	require.NoError(t, err)
	p, err = store.LatestFanout(ctx)
	require.NoError(t, err)
	require.True(t, p.Running)
	require.Equal(t, 2, p.Pending)

	_, err = store.BeginMigration(ctx, run.ID, dbs[0].ID, 0, 3)
	require.NoError(t, err)
	p, err = store.LatestFanout(ctx)
	require.NoError(t, err)
	require.Equal(t, 1, p.Pending)
	require.Equal(t, map[string]int{catalog.LedgerRunning: 1}, p.ByStatus)

	require.NoError(t, store.FinishMigration(ctx, run.ID, dbs[0].ID, catalog.MigrationOutcome{
		Status: catalog.LedgerSucceeded, Duration: time.Second, Version: 3, KnownVersion: true}))
	require.NoError(t, store.FinishMigrationRun(ctx, run.ID, catalog.LedgerInterrupted))
	p, err = store.LatestFanout(ctx)
	require.NoError(t, err)
	require.False(t, p.Running)
	require.Zero(t, p.Pending, "an ended run has nothing pending")
	require.Equal(t, map[string]int{catalog.LedgerSucceeded: 1}, p.ByStatus)

	counts, err := store.JobCounts(ctx)
	require.NoError(t, err)
	require.Empty(t, counts)
	_, err = store.EnqueueJob(ctx, catalog.JobProvision, "", map[string]string{})
	require.NoError(t, err)
	counts, err = store.JobCounts(ctx)
	require.NoError(t, err)
	require.Equal(t, []catalog.JobCount{{Kind: catalog.JobProvision, State: catalog.JobQueued, Count: 1}}, counts)
}
