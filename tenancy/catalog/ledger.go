package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/tenancy"
)

// Ledger statuses of a migration run and of one database within it.
const (
	LedgerRunning     = "running"
	LedgerSucceeded   = "succeeded"
	LedgerFailed      = "failed"
	LedgerInterrupted = "interrupted"
	LedgerRepaired    = "repaired" // results only: an operator forced the version
)

// MigrationRun is one fan-out of the tenant schema (or one repair).
type MigrationRun struct {
	ID     string
	Target uint
	Scope  string // organization slug the run was narrowed to; "" for all
	// Resumed is true when the run was interrupted before and this call
	// took it up again.
	Resumed bool
}

// MigrationResult is the ledger entry of one database in one run.
type MigrationResult struct {
	RunID      string
	DatabaseID string
	From, To   uint
	Status     string
	Error      string
	Attempts   int
	Duration   time.Duration
	StartedAt  time.Time
	FinishedAt *time.Time
}

// MigrationOutcome is how a database's migration ended: the ledger's
// status and error, and what the catalog should now say of the database.
type MigrationOutcome struct {
	Status   string
	Error    string
	Duration time.Duration
	// Version and Dirty become the database's schema_version and dirty flag.
	// KnownVersion false keeps the recorded version (nothing could be read).
	Version      uint
	KnownVersion bool
	Dirty        bool
}

// migrationRunLock is the catalog advisory lock one fan-out holds while it
// runs: two would fight over the same ledger rows.
const migrationRunLock = int64(0x74676d6967726174) // "tgmigrat"

// LockMigrationRuns takes the catalog-wide fan-out lock on a connection of
// its own, or answers conflict if another run holds it. The lock lives as
// long as that session, so a killed run frees it, and any run still marked
// running in the ledger is then known to be abandoned.
func (s *Store) LockMigrationRuns(ctx context.Context) (unlock func(), err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, interpret(err, "migration lock")
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, migrationRunLock).Scan(&got); err != nil || !got {
		conn.Release()
		if err != nil {
			return nil, interpret(err, "migration lock")
		}
		return nil, tenancy.Errorf(tenancy.CodeConflict, "another tenant migration run is in progress")
	}
	return func() { releaseSessionLock(conn) }, nil
}

// releaseSessionLock unlocks before the connection goes back to the pool;
// if it cannot, the connection is closed rather than returned still
// holding the lock.
func releaseSessionLock(conn *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, migrationRunLock); err != nil {
		conn.Conn().Close(ctx)
	}
	conn.Release()
}

// StartMigrationRun resumes the newest unfinished run with the same target
// and scope, or starts a new one. It returns the ledger entries the run
// already has (empty for a new run). Call it under LockMigrationRuns: any
// other run still marked running was abandoned, and is marked interrupted.
func (s *Store) StartMigrationRun(ctx context.Context, target uint, scope string) (MigrationRun, map[string]MigrationResult, error) {
	run := MigrationRun{Target: target, Scope: scope}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			UPDATE migration_runs SET status = 'running', updated_at = now()
			WHERE id = (SELECT id FROM migration_runs
				WHERE kind = 'migrate' AND status IN ('running', 'interrupted') AND target = $1 AND scope = $2
				ORDER BY started_at DESC LIMIT 1)
			RETURNING id::text`, int64(target), scope).Scan(&run.ID)
		run.Resumed = err == nil
		if errors.Is(err, pgx.ErrNoRows) {
			err = tx.QueryRow(ctx, `INSERT INTO migration_runs (target, scope) VALUES ($1, $2) RETURNING id::text`,
				int64(target), scope).Scan(&run.ID)
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE migration_runs SET status = 'interrupted', updated_at = now()
			WHERE status = 'running' AND id <> $1`, run.ID)
		return err
	})
	if err != nil {
		return MigrationRun{}, nil, interpret(err, "migration run")
	}
	results, err := s.MigrationResults(ctx, run.ID)
	return run, results, err
}

const resultColumns = `run_id::text, database_id::text, version_from, version_to, status, error, attempts,
	duration_ms, started_at, finished_at`

func scanResult(row pgx.Row) (MigrationResult, error) {
	var r MigrationResult
	var from, to, ms int64
	err := row.Scan(&r.RunID, &r.DatabaseID, &from, &to, &r.Status, &r.Error, &r.Attempts, &ms, &r.StartedAt, &r.FinishedAt)
	r.From, r.To, r.Duration = uint(from), uint(to), time.Duration(ms)*time.Millisecond
	return r, err
}

// MigrationResults returns the ledger entries of a run, by database id.
func (s *Store) MigrationResults(ctx context.Context, runID string) (map[string]MigrationResult, error) {
	return s.collectResults(ctx, `SELECT `+resultColumns+` FROM migration_results WHERE run_id = $1`, runID)
}

// LastMigrationResults returns each database's newest ledger entry, by
// database id; databases no run has touched are absent.
func (s *Store) LastMigrationResults(ctx context.Context) (map[string]MigrationResult, error) {
	return s.collectResults(ctx, `SELECT DISTINCT ON (database_id) `+resultColumns+`
		FROM migration_results ORDER BY database_id, started_at DESC`)
}

func (s *Store) collectResults(ctx context.Context, sql string, args ...any) (map[string]MigrationResult, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, interpret(err, "migration results")
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (MigrationResult, error) { return scanResult(row) })
	if err != nil {
		return nil, interpret(err, "migration results")
	}
	out := make(map[string]MigrationResult, len(list))
	for _, r := range list {
		out[r.DatabaseID] = r
	}
	return out, nil
}

// BeginMigration records that run starts (or retries) migrating a database
// from one version to another, and marks the database dirty in the same
// transaction: from then on its tenants are refused (Tenant reports the
// database not ready) until FinishMigration says otherwise. It returns the
// attempt number within the run.
func (s *Store) BeginMigration(ctx context.Context, runID, databaseID string, from, to uint) (int, error) {
	var attempts int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `
			INSERT INTO migration_results (run_id, database_id, version_from, version_to, attempts)
			VALUES ($1, $2, $3, $4, 1)
			ON CONFLICT (run_id, database_id) DO UPDATE SET status = 'running', error = '',
				attempts = migration_results.attempts + 1, finished_at = NULL,
				version_to = EXCLUDED.version_to
			RETURNING attempts`, runID, databaseID, int64(from), int64(to)).Scan(&attempts)
		if err != nil {
			return err
		}
		return markDirty(ctx, tx, databaseID)
	})
	return attempts, interpret(err, "migration result")
}

func markDirty(ctx context.Context, tx pgx.Tx, databaseID string) error {
	tag, err := tx.Exec(ctx, `UPDATE databases SET dirty = true, updated_at = now() WHERE id = $1`, databaseID)
	if err == nil && tag.RowsAffected() == 0 {
		return pgx.ErrNoRows
	}
	return err
}

// FinishMigration records how a database's migration ended, in the ledger
// and in the database's catalog row, in one transaction: the two never
// disagree, which is what lets a resumed run trust the catalog's version.
func (s *Store) FinishMigration(ctx context.Context, runID, databaseID string, o MigrationOutcome) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `
			UPDATE migration_results SET status = $3, error = $4, duration_ms = duration_ms + $5, finished_at = now()
			WHERE run_id = $1 AND database_id = $2`,
			runID, databaseID, o.Status, o.Error, o.Duration.Milliseconds())
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `
			UPDATE databases SET schema_version = CASE WHEN $2 THEN $3 ELSE schema_version END,
				dirty = $4, updated_at = now()
			WHERE id = $1`, databaseID, o.KnownVersion, int64(o.Version), o.Dirty)
		return err
	})
	return interpret(err, "migration result")
}

// FinishMigrationRun closes a run with status (succeeded, failed or
// interrupted); an interrupted run is resumed by the next with its target.
func (s *Store) FinishMigrationRun(ctx context.Context, runID, status string) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE migration_runs SET status = $2, updated_at = now(),
			finished_at = CASE WHEN $2 = 'interrupted' THEN NULL ELSE now() END
		WHERE id = $1`, runID, status)
	return interpret(err, "migration run")
}

// RecordRepair records that an operator forced a database to version
// after fixing it by hand, and lets its tenants back in: a one-database
// run of kind repair in the ledger, the version and a clean flag in the
// catalog, in one transaction. It returns the repair's run id.
func (s *Store) RecordRepair(ctx context.Context, databaseID string, from, version uint) (string, error) {
	var runID string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE databases SET schema_version = $2, dirty = false, updated_at = now() WHERE id = $1`,
			databaseID, int64(version))
		if err == nil && tag.RowsAffected() == 0 {
			return pgx.ErrNoRows
		}
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO migration_runs (kind, target, status, finished_at)
			VALUES ('repair', $1, 'succeeded', now()) RETURNING id::text`, int64(version)).Scan(&runID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO migration_results (run_id, database_id, version_from, version_to, status, attempts, finished_at)
			VALUES ($1, $2, $3, $4, 'repaired', 1, now())`, runID, databaseID, int64(from), int64(version))
		return err
	})
	return runID, interpret(err, "database")
}

// CatalogVersion returns the catalog database's own name and migration
// state, so `migrate status` can list it beside the tenant databases.
func (s *Store) CatalogVersion(ctx context.Context) (name string, version uint, dirty bool, err error) {
	var v int64
	err = s.pool.QueryRow(ctx, `SELECT current_database(), m.version, m.dirty
		FROM schema_migrations m LIMIT 1`).Scan(&name, &v, &dirty)
	var pgErr *pgconn.PgError
	if errors.Is(err, pgx.ErrNoRows) || (errors.As(err, &pgErr) && pgErr.Code == "42P01") {
		// No migration has run: version 0, as golang-migrate's nil version.
		err = s.pool.QueryRow(ctx, `SELECT current_database()`).Scan(&name)
		return name, 0, false, interpret(err, "catalog")
	}
	if err != nil {
		return "", 0, false, fmt.Errorf("catalog: version: %w", err)
	}
	return name, uint(v), dirty, nil
}
