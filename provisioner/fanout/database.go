package fanout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-migrate/migrate/v4/database"
	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// inspect reports whether a database would be migrated, from its own
// record of its version (the catalog's may lag behind a crash).
func inspect(ctx context.Context, d catalog.DatabaseInfo, target uint) Result {
	res := baseResult(d, target)
	v, err := schema.CurrentVersion(ctx, d.DSN)
	switch {
	case err != nil:
		res.Status, res.Err = StatusFailed, err.Error()
	case v.Dirty:
		res.From = v.Version
		res.Status, res.Err = StatusFailed, fmt.Sprintf("dirty at version %d: fix it, then `migrate repair`", v.Version)
	case v.Version == target:
		res.From, res.Status = v.Version, StatusSkipped
	default:
		res.From, res.Status = v.Version, StatusPending
	}
	return res
}

// migrateOne migrates one database under the ledger: marked dirty in the
// catalog first (its tenants are refused from then on), migrated with a
// few tries if the connection fails, granted, and recorded.
func (r *Runner) migrateOne(ctx context.Context, run catalog.MigrationRun, d catalog.DatabaseInfo) Result {
	if ctx.Err() != nil { // ended while this one waited for its turn
		return notStartedResult(d, run.Target, interrupted)
	}
	res := baseResult(d, run.Target)
	start := time.Now()
	v, err := r.tryMigrate(ctx, run, d, &res)
	if res.Attempts == 0 { // BeginMigration failed: nothing was marked or run
		if ctx.Err() != nil {
			return notStartedResult(d, run.Target, interrupted)
		}
		res.Status, res.Err = StatusFailed, err.Error()
		return res
	}
	o := r.conclude(ctx, d, run.Target, v, err)
	o.Duration = time.Since(start)
	// The ledger and the report spell succeeded, failed and interrupted alike.
	res.Status, res.Err, res.Duration = o.Status, o.Error, o.Duration
	// Recorded even when ctx has ended: the catalog must not keep a
	// database marked dirty that golang-migrate left clean.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if ferr := r.store.FinishMigration(bg, run.ID, d.ID, o); ferr != nil {
		res.Status, res.Err = StatusFailed, errors.Join(errors.New(res.Err), ferr).Error()
	}
	r.log.Info("tenant database migrated", "run", run.ID, "database", d.Name, "from", res.From, "to", run.Target,
		"status", res.Status, "error", res.Err, "attempts", res.Attempts, "duration", res.Duration)
	if res.Status == StatusFailed {
		r.publishTenants(bg, d.ID)
	}
	return res
}

// publishTenants tells the gateways to re-read the tenants of a database
// whose state changed. A failure to tell is logged: caches expire anyway.
func (r *Runner) publishTenants(ctx context.Context, databaseID string) {
	if r.Publish == nil {
		return
	}
	orgs, err := r.store.OrganizationsOn(ctx, databaseID)
	for _, id := range orgs {
		err = errors.Join(err, r.Publish(ctx, id))
	}
	if err != nil {
		r.log.Warn("telling gateways of a database's state failed", "database", databaseID, "err", err)
	}
}

// tryMigrate runs golang-migrate, again after a pause when it failed
// before touching the schema (a refused connection, a lock timeout); a
// failure that left the database dirty is never retried.
func (r *Runner) tryMigrate(ctx context.Context, run catalog.MigrationRun, d catalog.DatabaseInfo, res *Result) (schema.Version, error) {
	pause := r.backoff
	for try := 1; ; try++ {
		attempts, err := r.store.BeginMigration(ctx, run.ID, d.ID, res.From, run.Target)
		if err != nil {
			return schema.Version{}, err
		}
		res.Attempts = attempts
		v, err := r.migrate(ctx, d.DSN, r.migrations, r.dir, run.Target)
		if err == nil || v.Dirty || errors.Is(err, schema.ErrDirty) || try >= r.maxAttempts || !sleep(ctx, pause) {
			return v, err
		}
		r.log.Warn("tenant database migration failed; retrying", "database", d.Name, "error", err, "attempt", attempts)
		pause *= 2
	}
}

// conclude turns golang-migrate's answer into the ledger outcome and the
// catalog's new version and dirty flag.
func (r *Runner) conclude(ctx context.Context, d catalog.DatabaseInfo, target uint, v schema.Version, err error) catalog.MigrationOutcome {
	switch {
	case err == nil:
		return r.concludeClean(ctx, d, target, v)
	case v.Dirty:
		return catalog.MigrationOutcome{Status: catalog.LedgerFailed, Error: describe(err, v.Version),
			Version: v.Version, KnownVersion: true, Dirty: true}
	}
	// It failed (or was interrupted) before changing the schema; read the
	// version it left so the catalog does not keep it marked dirty.
	o := catalog.MigrationOutcome{Status: catalog.LedgerFailed, Error: err.Error(), Dirty: d.Dirty}
	if ctx.Err() != nil {
		o.Status = catalog.LedgerInterrupted
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if now, rerr := schema.CurrentVersion(bg, d.DSN); rerr == nil {
		o.Version, o.KnownVersion, o.Dirty = now.Version, true, now.Dirty
	}
	return o
}

// concludeClean grants the application role what the migrations created.
// A database golang-migrate stopped early (the run's context ended between
// two migrations) is clean at a lower version and recorded as interrupted.
func (r *Runner) concludeClean(ctx context.Context, d catalog.DatabaseInfo, target uint, v schema.Version) catalog.MigrationOutcome {
	o := catalog.MigrationOutcome{Status: catalog.LedgerSucceeded, Version: v.Version, KnownVersion: true}
	if v.Version != target {
		o.Status, o.Error = catalog.LedgerInterrupted, fmt.Sprintf("stopped at version %d of %d", v.Version, target)
		if ctx.Err() == nil {
			o.Status = catalog.LedgerFailed
		}
	}
	if err := r.grant(ctx, d.DSN); err != nil {
		// The schema is right but its tenants could not reach the new
		// tables: keep them out until a rerun grants again (a dirty
		// database is never skipped as done).
		o.Status, o.Error, o.Dirty = catalog.LedgerFailed, err.Error(), true
	}
	return o
}

// describe is err for the ledger and the report. golang-migrate's error
// for a failed statement carries the whole migration's SQL; the operator
// needs the version, Postgres' message and the line.
func describe(err error, version uint) string {
	var failed database.Error
	if errors.Is(err, schema.ErrDirty) {
		return fmt.Sprintf("dirty at version %d since an earlier failure: fix it by hand, then `tenantgate migrate repair`", version)
	}
	if !errors.As(err, &failed) {
		return err.Error()
	}
	msg := failed.Err
	if msg == "" {
		msg = failed.OrigErr.Error()
	}
	return fmt.Sprintf("migration %d: %s (line %d); the database is dirty until repaired", version, msg, failed.Line)
}

// grant renews the application role's grants. It runs to the end even
// when ctx has ended, so a migrated database is never left ungranted.
func (r *Runner) grant(ctx context.Context, dsn string) error {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(bg, dsn)
	if err != nil {
		return fmt.Errorf("grant: connect to %s: %w", schema.Redact(dsn), err)
	}
	defer conn.Close(bg)
	return schema.GrantApp(bg, conn, r.appRole)
}

// sleep waits d, or reports false when ctx ends first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
