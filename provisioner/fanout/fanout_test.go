package fanout

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestFailureRepairRerun: over twenty-one databases, step 2 fails on one.
// The others reach head; the failed one is dirty in the catalog and in
// golang-migrate, its tenant refused, its error in the ledger. A rerun
// touches only it; after a repair and a fixed migration set it converges.
func TestFailureRepairRerun(t *testing.T) {
	t.Parallel()
	f := setup(t, fixtureOpts{dedicated: span(0, 20), start: 1})
	ctx := testCtx(t)
	bad := f.db(t, 7)

	rep, err := f.runner(failSet).Run(ctx, Options{ContinueOnError: true}, nil)
	require.NoError(t, err)
	require.Equal(t, 20, rep.Succeeded)
	require.Equal(t, 1, rep.Failed, "exactly the d_07 database fails")
	require.Len(t, rep.Results, 21)
	require.Equal(t, tenancy.KindShared, rep.Results[0].Kind, "the shared database is reported (and run) first")
	failed := byName(rep)[bad.Name]
	require.Equal(t, StatusFailed, failed.Status)
	require.Contains(t, failed.Err, "boom")
	require.Contains(t, failed.Err, "migration 2")
	require.NotContains(t, failed.Err, "CREATE TABLE", "the migration's SQL is not repeated in the error")

	for _, d := range f.dbs {
		version, dirty := f.catalogRow(t, d.ID)
		if d.ID == bad.ID {
			require.Equal(t, int64(2), version, "the catalog records the version that failed")
			require.True(t, dirty, "and the database as dirty")
			v := realVersion(t, d.DSN)
			require.True(t, v.Dirty, "golang-migrate left it dirty too")
			require.Equal(t, uint(2), v.Version)
			continue
		}
		require.Equal(t, int64(head), version, d.Name)
		require.False(t, dirty, d.Name)
		require.Equal(t, uint(head), realVersion(t, d.DSN).Version, d.Name)
	}
	entry := f.ledgerRow(t, rep.RunID, bad.ID)
	require.Equal(t, catalog.LedgerFailed, entry.Status)
	require.Contains(t, entry.Error, "boom")
	require.Equal(t, uint(1), entry.From)
	require.Equal(t, uint(head), entry.To)
	require.Equal(t, 1, entry.Attempts, "a failure that left the database dirty is not retried")
	require.Equal(t, catalog.LedgerFailed, f.runStatus(t, rep.RunID))
	requireReady(t, f, "org-07", false)
	requireReady(t, f, "org-08", true)
	requireAppCanRead(t, f, f.db(t, 8).DSN, "sprockets")

	// A rerun before the repair: the clean databases are at the target in
	// the catalog and not touched; the dirty one fails again at once.
	before := f.calls.total()
	rep, err = f.runner(failSet).Run(ctx, Options{ContinueOnError: true}, nil)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Failed)
	require.Equal(t, 20, rep.Skipped)
	require.Equal(t, before+1, f.calls.total(), "only the dirty database is tried again")
	require.Contains(t, byName(rep)[bad.Name].Err, "dirty")

	// A person fixed it: repair forces the version before the failed step.
	runner := f.runner(fixedSet)
	require.NoError(t, runner.Repair(ctx, bad.Name, 1))
	version, dirty := f.catalogRow(t, bad.ID)
	require.Equal(t, int64(1), version)
	require.False(t, dirty)
	require.Equal(t, uint(1), realVersion(t, bad.DSN).Version)
	require.False(t, realVersion(t, bad.DSN).Dirty)
	requireReady(t, f, "org-07", true)
	status := statusOf(t, runner, bad.Name)
	require.Equal(t, catalog.LedgerRepaired, status.Last.Status)
	require.Equal(t, uint(2), status.Last.From, "the ledger records the dirty version it was forced from")
	require.Contains(t, status.LastSummary(), "repaired 2→1")

	rep, err = runner.Run(ctx, Options{}, nil)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Succeeded)
	require.Zero(t, rep.Failed)
	require.Equal(t, 20, rep.Skipped)
	all, err := runner.Status(ctx)
	require.NoError(t, err)
	require.Len(t, all, 22, "the catalog and the twenty-one tenant databases")
	require.Equal(t, KindCatalog, all[0].Kind)
	for _, s := range all[1:] {
		require.Equal(t, uint(head), s.Version, s.Name)
		require.False(t, s.Dirty, s.Name)
		require.Equal(t, 1, s.Tenants, s.Name)
		require.NotNil(t, s.Last, s.Name)
		require.Equal(t, catalog.LedgerSucceeded, s.Last.Status, s.Name)
	}
	requireAppCanRead(t, f, bad.DSN, "sprockets")
}

// TestStopsStartingAfterFirstFailure: without ContinueOnError, nothing new
// starts once a database failed; what did not start is left as it was.
func TestStopsStartingAfterFirstFailure(t *testing.T) {
	t.Parallel()
	f := setup(t, fixtureOpts{dedicated: span(0, 14), start: 1, skipOrgs: true})
	rep, err := f.runner(failSet).Run(testCtx(t), Options{Concurrency: 2}, nil)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Failed)
	require.Positive(t, rep.NotStarted, "databases after the failure were not started")
	require.Equal(t, catalog.LedgerFailed, f.runStatus(t, rep.RunID))
	for _, res := range rep.Results {
		if !strings.HasPrefix(res.Err, "not started") {
			continue
		}
		require.Equal(t, StatusSkipped, res.Status)
		require.Zero(t, f.calls.of(res.Name), "%s was not migrated", res.Name)
		version, dirty := f.catalogRow(t, res.DatabaseID)
		require.Equal(t, int64(1), version)
		require.False(t, dirty)
	}
	last := byName(rep)[f.db(t, 13).Name]
	require.Contains(t, last.Err, "not started", "the last database was never reached")
}

// TestCanaryFailureStopsRun: the first dedicated database is a canary that
// fails; the run stops there although ContinueOnError is set.
func TestCanaryFailureStopsRun(t *testing.T) {
	t.Parallel()
	f := setup(t, fixtureOpts{dedicated: span(7, 6), start: 1, skipOrgs: true})
	rep, err := f.runner(failSet).Run(testCtx(t), Options{Canary: 2, ContinueOnError: true}, nil)
	require.NoError(t, err)
	require.Equal(t, 1, rep.Succeeded, "the shared database went first")
	require.Equal(t, StatusSucceeded, rep.Results[0].Status)
	require.Equal(t, 1, rep.Failed)
	require.Equal(t, 5, rep.NotStarted, "no other dedicated database started, the second canary included")
	require.Equal(t, 2, f.calls.total())
	require.Contains(t, byName(rep)[f.db(t, 8).Name].Err, "canary")
}

// TestInterruptedRunResumes: a run cancelled after a few databases is
// resumed by the next one with the same target, which does not migrate
// again what the first finished.
func TestInterruptedRunResumes(t *testing.T) {
	t.Parallel()
	f := setup(t, fixtureOpts{dedicated: span(0, 20), skipOrgs: true})
	ctx, cancel := context.WithCancel(testCtx(t))
	var once sync.Once
	done := 0
	rep, err := f.runner(slowSet).Run(ctx, Options{Concurrency: 4}, func(_, _ int, last Result) {
		if last.Status == StatusSucceeded {
			if done++; done == 5 {
				once.Do(cancel)
			}
		}
	})
	require.ErrorIs(t, err, ErrInterrupted)
	require.ErrorIs(t, err, context.Canceled)
	t.Logf("cut: %d succeeded, %d interrupted, %d not started", rep.Succeeded, rep.Interrupted, rep.NotStarted)
	require.Equal(t, catalog.LedgerInterrupted, f.runStatus(t, rep.RunID))
	require.GreaterOrEqual(t, rep.Succeeded, 5)
	require.Positive(t, rep.NotStarted)
	require.Zero(t, rep.Failed)
	finished := map[string]catalog.MigrationResult{}
	for _, res := range rep.Results {
		if res.Status == StatusSucceeded {
			finished[res.DatabaseID] = f.ledgerRow(t, rep.RunID, res.DatabaseID)
		}
	}
	for _, res := range rep.Results {
		if res.Status == StatusInterrupted {
			// Stopped between two migrations: clean, at a lower version, and
			// not refused to its tenants.
			version, dirty := f.catalogRow(t, res.DatabaseID)
			require.False(t, dirty, res.Name)
			require.Less(t, version, int64(head), res.Name)
		}
	}

	resumed, err := f.runner(slowSet).Run(testCtx(t), Options{Concurrency: 4}, nil)
	require.NoError(t, err)
	require.Equal(t, rep.RunID, resumed.RunID, "the same run is resumed")
	require.True(t, resumed.Resumed)
	require.Zero(t, resumed.Failed)
	require.Equal(t, 21-len(finished), resumed.Succeeded)
	require.Equal(t, catalog.LedgerSucceeded, f.runStatus(t, rep.RunID))
	for id, was := range finished {
		now := f.ledgerRow(t, rep.RunID, id)
		require.Equal(t, catalog.LedgerSucceeded, now.Status)
		require.Equal(t, 1, now.Attempts, "finished databases are not attempted again")
		require.Equal(t, was.FinishedAt, now.FinishedAt, "nor their ledger entries rewritten")
	}
	first := byName(rep)
	for _, d := range f.dbs {
		want := 1 // once, in the run that finished it
		if first[d.Name].Status == StatusInterrupted {
			want = 2 // cut short, then finished by the resumed run
		}
		require.Equal(t, want, f.calls.of(d.Name), d.Name)
		require.Equal(t, uint(head), realVersion(t, d.DSN).Version, d.Name)
	}
}

// TestDryRunAndTenant: a dry run reports what would run and changes
// nothing; Tenant narrows a run to the database of one organization.
func TestDryRunAndTenant(t *testing.T) {
	t.Parallel()
	f := setup(t, fixtureOpts{dedicated: span(0, 5), start: 1})
	ctx := testCtx(t)
	r := f.runner(fixedSet)
	var seen int
	rep, err := r.Run(ctx, Options{DryRun: true}, func(done, total int, _ Result) { seen = done; require.Equal(t, 6, total) })
	require.NoError(t, err)
	require.Equal(t, 6, seen, "progress covers every database")
	require.Empty(t, rep.RunID)
	require.Equal(t, 6, rep.Pending)
	for _, res := range rep.Results {
		require.Equal(t, StatusPending, res.Status)
		require.Equal(t, uint(1), res.From)
		require.Equal(t, uint(head), res.To)
	}
	require.Zero(t, f.calls.total(), "nothing was migrated")
	var runs int
	require.NoError(t, f.pool.QueryRow(ctx, `SELECT count(*) FROM migration_runs`).Scan(&runs))
	require.Zero(t, runs, "nothing was written to the ledger")
	for _, d := range f.dbs {
		version, dirty := f.catalogRow(t, d.ID)
		require.Equal(t, int64(1), version)
		require.False(t, dirty)
		require.Equal(t, uint(1), realVersion(t, d.DSN).Version)
	}

	rep, err = r.Run(ctx, Options{Tenant: "org-03", To: 2}, nil)
	require.NoError(t, err)
	require.Len(t, rep.Results, 1)
	require.Equal(t, f.db(t, 3).Name, rep.Results[0].Name)
	require.Equal(t, StatusSucceeded, rep.Results[0].Status)
	require.Equal(t, uint(2), realVersion(t, f.db(t, 3).DSN).Version, "To stops at the version asked for")
	require.Equal(t, uint(1), realVersion(t, f.db(t, 4).DSN).Version, "other databases are left alone")
	require.Equal(t, 1, f.calls.total())

	_, err = r.Run(ctx, Options{Tenant: "no-such-org"}, nil)
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err))
	_, err = r.Run(ctx, Options{To: 9}, nil)
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(r.Repair(ctx, "no-such-db", 1)))
}

// TestUnreachableDatabase: a database that cannot be connected to is tried
// a few times, reported failed, and not left marked dirty: nothing of its
// schema changed.
func TestUnreachableDatabase(t *testing.T) {
	t.Parallel()
	f := setup(t, fixtureOpts{dedicated: span(0, 2), start: 1, skipOrgs: true, extra: "d_99_missing"})
	rep, err := f.runner(fixedSet).Run(testCtx(t), Options{ContinueOnError: true}, nil)
	require.NoError(t, err)
	require.Equal(t, 3, rep.Succeeded)
	require.Equal(t, 1, rep.Failed)
	res := byName(rep)[f.env.Prefix+"d_99_missing"]
	require.Equal(t, StatusFailed, res.Status)
	require.Equal(t, 3, res.Attempts)
	require.Equal(t, 3, f.ledgerRow(t, rep.RunID, res.DatabaseID).Attempts)
	version, dirty := f.catalogRow(t, res.DatabaseID)
	require.Equal(t, int64(1), version, "the version it could not read is kept")
	require.False(t, dirty)
}

// TestOneRunAtATime: a second run while one holds the catalog lock is
// refused rather than fighting over the ledger.
func TestOneRunAtATime(t *testing.T) {
	t.Parallel()
	f := setup(t, fixtureOpts{skipOrgs: true})
	unlock, err := f.store.LockMigrationRuns(testCtx(t))
	require.NoError(t, err)
	_, err = f.runner(fixedSet).Run(testCtx(t), Options{}, nil)
	require.Equal(t, tenancy.CodeConflict, tenancy.ErrorCode(err))
	unlock()
	_, err = f.runner(fixedSet).Run(testCtx(t), Options{}, nil)
	require.NoError(t, err)
}

func TestStopReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		o      Options
		failed int
		canary bool
		stops  bool
	}{
		{"first failure stops by default", Options{}, 1, false, true},
		{"continue on error goes on", Options{ContinueOnError: true}, 5, false, false},
		{"max failures caps it", Options{ContinueOnError: true, MaxFailures: 3}, 3, false, true},
		{"below the cap goes on", Options{ContinueOnError: true, MaxFailures: 3}, 2, false, false},
		{"a canary always stops", Options{ContinueOnError: true}, 1, true, true},
	} {
		require.Equal(t, tc.stops, stopReason(tc.o, tc.failed, tc.canary, "db") != "", tc.name)
	}
	_, err := normalize(Options{Concurrency: -1})
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
	o, err := normalize(Options{})
	require.NoError(t, err)
	require.Equal(t, DefaultConcurrency, o.Concurrency)
}

func statusOf(t *testing.T, r *Runner, name string) DatabaseStatus {
	t.Helper()
	all, err := r.Status(testCtx(t))
	require.NoError(t, err)
	for _, s := range all {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no status for %s", name)
	return DatabaseStatus{}
}

// requireReady checks what the gateway would see: a tenant is served only
// while its database is clean and ready.
func requireReady(t *testing.T, f *fixture, slug string, ready bool) {
	t.Helper()
	org, err := f.store.OrganizationBySlug(testCtx(t), slug)
	require.NoError(t, err)
	tn, err := f.store.Tenant(testCtx(t), org.ID)
	require.NoError(t, err)
	require.Equal(t, ready, tn.Placement.DatabaseReady, slug)
}

// requireAppCanRead checks that the application role was granted the
// tables the migrations created.
func requireAppCanRead(t *testing.T, f *fixture, dsn, table string) {
	t.Helper()
	conn := tenancytest.Connect(t, f.env.AppURL(t, dsn))
	var n int
	err := conn.QueryRow(testCtx(t), "SELECT count(*) FROM "+table).Scan(&n)
	require.NoError(t, err, "the application role reads %s", table)
}
