package fanout

import (
	"context"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// planned is one database of a run and its place in the report.
type planned struct {
	idx int
	db  catalog.DatabaseInfo
}

// resolveTarget turns Options.To into a version of the migration set, so
// a run's target is a number the ledger can match when it resumes.
func (r *Runner) resolveTarget(to uint) (uint, error) {
	versions, err := sourceVersions(r.migrations, r.dir)
	if err != nil {
		return 0, err
	}
	newest := versions[len(versions)-1]
	if to == 0 {
		return newest, nil
	}
	if !slices.Contains(versions, to) {
		return 0, tenancy.Errorf(tenancy.CodeInvalid, "version %d is not a migration of the set (newest is %d)", to, newest)
	}
	return to, nil
}

// sourceVersions lists the versions of the migration set in order, read
// by golang-migrate's own parser so we agree with it on what a file is.
func sourceVersions(fsys fs.FS, dir string) ([]uint, error) {
	return schema.Versions(fsys, dir)
}

// selectDatabases lists the catalog's tenant databases (shared first), or
// only the one holding the organization slug tenant.
func (r *Runner) selectDatabases(ctx context.Context, tenant string) ([]catalog.DatabaseInfo, error) {
	all, err := r.store.Databases(ctx)
	if err != nil || tenant == "" {
		return all, err
	}
	org, err := r.store.OrganizationBySlug(ctx, tenant)
	if err != nil {
		return nil, err
	}
	pl, err := r.store.Placement(ctx, org.ID)
	if err != nil {
		return nil, err
	}
	for _, d := range all {
		if d.ID == pl.DatabaseID {
			return []catalog.DatabaseInfo{d}, nil
		}
	}
	return nil, tenancy.Errorf(tenancy.CodeNotFound, "the database of organization %q is not registered", tenant)
}

// skipReason says why a database needs no migration: "" when it does,
// "at target" when the catalog already records the target on a clean
// database (the catalog and ledger are written together, so this is what
// a resumed run finished), or why it is out of service.
func skipReason(d catalog.DatabaseInfo, target uint) string {
	switch {
	case d.State != "ready":
		return fmt.Sprintf("the database is %s, not in service", d.State)
	case d.SchemaVersion == int64(target) && !d.Dirty:
		return atTarget
	}
	return ""
}

const atTarget = "at target"

// baseResult is a database's result before anything is done to it.
func baseResult(d catalog.DatabaseInfo, target uint) Result {
	return Result{DatabaseID: d.ID, Name: d.Name, Kind: d.Kind, From: uint(max(d.SchemaVersion, 0)), To: target}
}

// triage records the databases that need nothing as skipped and returns
// the others, split into shared and dedicated.
func triage(t *tally, dbs []catalog.DatabaseInfo, target uint, prior map[string]catalog.MigrationResult) (shared, dedicated []planned) {
	for i, d := range dbs {
		reason := skipReason(d, target)
		if reason == "" {
			if d.Kind == tenancy.KindShared {
				shared = append(shared, planned{i, d})
			} else {
				dedicated = append(dedicated, planned{i, d})
			}
			continue
		}
		res := baseResult(d, target)
		res.Status = StatusSkipped
		if reason != atTarget {
			res.Err = reason
		}
		// A database this run finished before it was interrupted keeps its
		// attempts in the report, so a reader sees it was not redone.
		res.Attempts = prior[d.ID].Attempts
		t.record(i, res, false)
	}
	return shared, dedicated
}

// tally gathers results from the runner's goroutines and decides when a
// run stops starting new databases.
type tally struct {
	mu       sync.Mutex
	rep      Report
	done     int
	opts     Options
	halt     string // why no new database starts; "" while they do
	progress func(done, total int, last Result)
}

func newTally(o Options, target uint, n int, progress func(done, total int, last Result)) *tally {
	return &tally{rep: Report{Target: target, Results: make([]Result, n)}, opts: o, progress: progress}
}

// record stores the result of planned database i and counts it. The
// progress callback runs under the lock, so it is never called twice at
// once and sees done counts in order.
func (t *tally) record(i int, res Result, canary bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.rep.Results[i] = res
	switch res.Status {
	case StatusSucceeded:
		t.rep.Succeeded++
	case StatusFailed:
		t.rep.Failed++
		if t.halt == "" {
			t.halt = stopReason(t.opts, t.rep.Failed, canary, res.Name)
		}
	case StatusSkipped:
		t.rep.Skipped++
		if res.notStarted {
			t.rep.NotStarted++
		}
	case StatusPending:
		t.rep.Pending++
	case StatusInterrupted:
		t.rep.Interrupted++
	}
	t.done++
	if t.progress != nil {
		t.progress(t.done, len(t.rep.Results), res)
	}
}

// stopReason is why a failure stops new databases from being started, or
// "" when the run goes on.
func stopReason(o Options, failed int, canary bool, name string) string {
	switch {
	case canary:
		return fmt.Sprintf("canary %s failed", name)
	case !o.ContinueOnError:
		return fmt.Sprintf("%s failed (use continue-on-error to go on)", name)
	case o.MaxFailures > 0 && failed >= o.MaxFailures:
		return fmt.Sprintf("%d databases failed", failed)
	}
	return ""
}

func (t *tally) halted() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.halt
}

// notStarted records the databases a stopped run never reached.
func (t *tally) notStarted(rest []planned, target uint, why string) {
	for _, p := range rest {
		t.record(p.idx, notStartedResult(p.db, target, why), false)
	}
}

func notStartedResult(d catalog.DatabaseInfo, target uint, why string) Result {
	res := baseResult(d, target)
	res.Status, res.Err, res.notStarted = StatusSkipped, "not started: "+why, true
	return res
}

func (t *tally) report() Report {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.rep
}

// stage runs work on items, at most limit at a time. It starts nothing
// once the tally halted or ctx ended, and returns only when every
// goroutine it started has finished. A slot is freed only after its
// result is recorded, so a failure is seen before the next start.
func stage(ctx context.Context, t *tally, items []planned, limit int, canary bool, work func(context.Context, planned) Result) {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	defer wg.Wait()
	for n, p := range items {
		if !acquire(ctx, sem) {
			t.notStarted(items[n:], t.rep.Target, interrupted)
			return
		}
		if why := t.halted(); why != "" {
			<-sem
			t.notStarted(items[n:], t.rep.Target, "the run stopped: "+why)
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			t.record(p.idx, work(ctx, p), canary)
		})
	}
}

const interrupted = "the run was interrupted"

// acquire takes a slot of sem, or reports false when ctx ended first (or
// meanwhile: a free slot does not outrank a cancellation).
func acquire(ctx context.Context, sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	if ctx.Err() != nil {
		<-sem
		return false
	}
	return true
}
