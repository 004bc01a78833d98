package fanout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// DefaultConcurrency is how many databases are migrated at once when
// Options.Concurrency is 0.
const DefaultConcurrency = 4

// Options narrow and pace a run.
type Options struct {
	// Concurrency is how many databases are migrated at once; default 4.
	Concurrency int
	// Tenant, an organization slug, limits the run to the database holding
	// that organization (for a shared tenant: the whole shared database).
	Tenant string
	// To is the target version; 0 means the newest migration of the set.
	// A target below a database's version migrates it down.
	To uint
	// DryRun reports what would run and changes nothing: no ledger entry,
	// no catalog change, no migration. It reads each database's version.
	DryRun bool
	// ContinueOnError keeps starting databases after one failed. Without
	// it, the first failure stops new databases from being started; those
	// already running finish.
	ContinueOnError bool
	// MaxFailures stops starting new databases once this many failed;
	// 0 means no cap beyond ContinueOnError's rule.
	MaxFailures int
	// Canary is how many dedicated databases are migrated one at a time,
	// after the shared ones and before the rest; if one fails the run
	// stops, whatever ContinueOnError says.
	Canary int
}

// Result statuses.
const (
	StatusSucceeded   = "succeeded"
	StatusFailed      = "failed"
	StatusSkipped     = "skipped"     // at the target already, not in service, or not started
	StatusPending     = "pending"     // dry run: would be migrated
	StatusInterrupted = "interrupted" // the run's context ended before it reached the target
)

// Result is what happened to one database.
type Result struct {
	DatabaseID string        `json:"databaseId"`
	Name       string        `json:"name"`
	Kind       string        `json:"kind"`
	From       uint          `json:"from"`
	To         uint          `json:"to"`
	Status     string        `json:"status"`
	Duration   time.Duration `json:"duration"`
	// Err is why it failed, or for a skipped database why it was not
	// migrated when that is not "already at the target".
	Err string `json:"error,omitempty"`
	// Attempts counts tries within the run, a resumed run's included.
	Attempts int `json:"attempts"`

	notStarted bool // skipped because the run stopped or ended first
}

// Report is the outcome of a run. Failed > 0 means the command should exit
// non-zero.
type Report struct {
	RunID       string   `json:"runId"` // empty for a dry run
	Target      uint     `json:"target"`
	Resumed     bool     `json:"resumed"` // an interrupted run was taken up again
	Results     []Result `json:"results"` // shared databases first, in the order they were planned
	Succeeded   int      `json:"succeeded"`
	Failed      int      `json:"failed"`
	Skipped     int      `json:"skipped"`
	Pending     int      `json:"pending"`     // dry run only
	Interrupted int      `json:"interrupted"` // cut short by the context
	// NotStarted counts the skipped databases the run never reached: it
	// stopped after a failure, or its context ended first.
	NotStarted int `json:"notStarted"`
}

// ErrInterrupted is returned (wrapped, with the context's error) by a Run
// whose context ended: the report is partial and the next Run with the
// same target resumes it.
var ErrInterrupted = errors.New("fanout: run interrupted")

// migrateFunc is schema.MigrateTo; tests wrap it to count calls.
type migrateFunc func(ctx context.Context, dsn string, migrations fs.FS, dir string, to uint) (schema.Version, error)

// Runner fans a migration set out over the catalog's tenant databases.
type Runner struct {
	store      *catalog.Store
	migrations fs.FS
	dir        string
	appRole    string
	log        *slog.Logger

	migrate     migrateFunc
	maxAttempts int
	backoff     time.Duration // before the second attempt; doubles after

	// Publish, when set, tells every gateway replica to re-read an
	// organization: after a database fails (its tenants must get 503 at
	// once, not when caches expire) and after a repair lets them back in.
	Publish func(ctx context.Context, orgID string) error
}

// New returns a Runner applying the migrations in dir of migrations (for
// production migrations.Tenant and "tenant") to the databases of store,
// and granting appRole the tables afterwards.
func New(store *catalog.Store, migrations fs.FS, dir string, appRole string, log *slog.Logger) *Runner {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Runner{
		store: store, migrations: migrations, dir: dir, appRole: appRole, log: log,
		migrate: schema.MigrateTo, maxAttempts: 3, backoff: 250 * time.Millisecond,
	}
}

// Run migrates the selected databases to the target and reports each
// one. progress, if not nil, is called after every database (skipped ones
// included), from the runner's goroutines but never two at once.
//
// The error is for what stops a run from starting (bad options, the
// catalog unreachable, another run in progress) and for an interrupted
// run (ErrInterrupted); a database that fails is a Result, not an error.
func (r *Runner) Run(ctx context.Context, o Options, progress func(done, total int, last Result)) (Report, error) {
	o, err := normalize(o)
	if err != nil {
		return Report{}, err
	}
	target, err := r.resolveTarget(o.To)
	if err != nil {
		return Report{}, err
	}
	dbs, err := r.selectDatabases(ctx, o.Tenant)
	if err != nil {
		return Report{}, err
	}
	if o.DryRun {
		return r.dryRun(ctx, o, target, dbs, progress), nil
	}
	unlock, err := r.store.LockMigrationRuns(ctx)
	if err != nil {
		return Report{}, err
	}
	defer unlock()
	run, prior, err := r.store.StartMigrationRun(ctx, target, o.Tenant)
	if err != nil {
		return Report{}, err
	}
	r.log.Info("tenant migration run", "run", run.ID, "target", target, "databases", len(dbs), "resumed", run.Resumed)
	rep := r.execute(ctx, o, run, prior, dbs, progress)
	return rep, r.finishRun(ctx, rep)
}

// execute runs the stages of a real run: shared databases, canaries one
// at a time, then the other dedicated ones.
func (r *Runner) execute(ctx context.Context, o Options, run catalog.MigrationRun, prior map[string]catalog.MigrationResult,
	dbs []catalog.DatabaseInfo, progress func(done, total int, last Result)) Report {
	t := newTally(o, run.Target, len(dbs), progress)
	shared, dedicated := triage(t, dbs, run.Target, prior)
	canaries := dedicated[:min(o.Canary, len(dedicated))]
	work := func(ctx context.Context, p planned) Result { return r.migrateOne(ctx, run, p.db) }
	stage(ctx, t, shared, o.Concurrency, false, work)
	stage(ctx, t, canaries, 1, true, work)
	stage(ctx, t, dedicated[len(canaries):], o.Concurrency, false, work)
	rep := t.report()
	rep.RunID, rep.Resumed = run.ID, run.Resumed
	return rep
}

// dryRun reads the version of every database that the catalog does not
// already show at the target, and reports what a run would do.
func (r *Runner) dryRun(ctx context.Context, o Options, target uint, dbs []catalog.DatabaseInfo,
	progress func(done, total int, last Result)) Report {
	o.ContinueOnError, o.MaxFailures = true, 0 // a dry run looks at every database
	t := newTally(o, target, len(dbs), progress)
	shared, dedicated := triage(t, dbs, target, nil)
	look := func(ctx context.Context, p planned) Result { return inspect(ctx, p.db, target) }
	stage(ctx, t, append(shared, dedicated...), o.Concurrency, false, look)
	return t.report()
}

// finishRun closes the run in the ledger even when ctx has ended: an
// interrupted run must say so to be resumed.
func (r *Runner) finishRun(ctx context.Context, rep Report) error {
	status := catalog.LedgerSucceeded
	switch {
	case ctx.Err() != nil && rep.unfinished():
		status = catalog.LedgerInterrupted
	case rep.Failed > 0 || rep.unfinished():
		status = catalog.LedgerFailed
	}
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.store.FinishMigrationRun(bg, rep.RunID, status); err != nil {
		return err
	}
	r.log.Info("tenant migration run ended", "run", rep.RunID, "status", status,
		"succeeded", rep.Succeeded, "failed", rep.Failed, "skipped", rep.Skipped, "interrupted", rep.Interrupted)
	if status == catalog.LedgerInterrupted {
		return fmt.Errorf("%w: run %s; run again with the same target to resume: %w", ErrInterrupted, rep.RunID, context.Cause(ctx))
	}
	return nil
}

// unfinished reports whether some database was cut short or never started.
func (rep Report) unfinished() bool { return rep.Interrupted > 0 || rep.NotStarted > 0 }

func normalize(o Options) (Options, error) {
	switch {
	case o.Concurrency < 0:
		return o, tenancy.Errorf(tenancy.CodeInvalid, "concurrency must be at least 1")
	case o.MaxFailures < 0:
		return o, tenancy.Errorf(tenancy.CodeInvalid, "max failures must not be negative")
	case o.Canary < 0:
		return o, tenancy.Errorf(tenancy.CodeInvalid, "canary must not be negative")
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	return o, nil
}
