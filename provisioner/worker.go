package provisioner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// Handler runs one kind of job; step reports progress (shown by --wait and
// /admin/jobs/{id}). Handlers must be idempotent: a job whose provisioner
// died is run again from the start by another.
type Handler func(ctx context.Context, job catalog.Job, step func(string)) error

// Worker takes jobs from the catalog and runs them. Several workers, in
// one process or many, share the queue: a job is claimed with FOR UPDATE
// SKIP LOCKED under a lease the worker renews while it runs.
//
// An idle worker waits for the catalog's notification of a new job (see
// catalog.JobsChannel) and claims at once; it also wakes when a retry or an
// expired lease comes due, and polls as a fallback for notifications lost
// while its listening connection was down.
type Worker struct {
	store    *catalog.Store
	log      *slog.Logger
	handlers map[string]Handler
	id       string
	// Lease is how long a claim lasts without renewal (default 30 s); Poll
	// how long an idle worker waits, when nothing notifies it and no job
	// comes due, before it looks again (default 5 s).
	Lease, Poll time.Duration
	// Concurrency is how many jobs the worker runs at once (default 4).
	// Provisionings overlap all but their copy of the template, which a
	// server lock serializes; an organization never has two live jobs.
	Concurrency int
	// Listen opens the connection the worker LISTENs on for new jobs
	// (default: a catalog connection of its own); nil only polls.
	Listen func(context.Context) (*pgx.Conn, error)
	// Metrics counts and times job runs; nil counts nothing.
	Metrics *Metrics
}

// ListenerName is the application_name of a worker's listening connection
// in pg_stat_activity.
const ListenerName = "tenantgate-jobs-listener"

// NewWorker returns a worker running handlers by job kind.
func NewWorker(store *catalog.Store, log *slog.Logger, handlers map[string]Handler) *Worker {
	host, _ := os.Hostname()
	return &Worker{store: store, log: log, handlers: handlers, Lease: 30 * time.Second, Poll: 5 * time.Second, Concurrency: 4,
		Listen: func(ctx context.Context) (*pgx.Conn, error) { return store.ListenConn(ctx, ListenerName) },
		id:     fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano())}
}

// Run works until ctx ends; the jobs in hand are given up (their leases
// run out and other workers resume them). It returns once they and its
// listener have stopped.
func (w *Worker) Run(ctx context.Context) {
	var wake <-chan struct{}
	if w.Listen != nil {
		l := catalog.NewListener(w.Listen, w.log, catalog.JobsChannel)
		listenCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); l.Run(listenCtx) }()
		defer func() { stop(); <-done }()
		wake = l.Wake()
	}
	var running sync.WaitGroup
	defer running.Wait()
	slots := make(chan struct{}, max(w.Concurrency, 1))
	for {
		// Claim only with a free slot: a job claimed and not run would
		// only wait for its lease to be taken over.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		job, err := w.store.ClaimJob(ctx, w.id, w.Lease)
		if err == nil {
			running.Go(func() {
				defer func() { <-slots }()
				w.run(ctx, job)
			})
			continue
		}
		<-slots
		if ctx.Err() != nil {
			return
		}
		if tenancy.ErrorCode(err) != tenancy.CodeNotFound {
			w.log.Warn("claiming a job failed", "err", err)
		}
		t := time.NewTimer(w.idle(ctx))
		select {
		case <-ctx.Done():
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// idle is how long a worker that found nothing to claim may wait: the
// poll, or less when a job comes due sooner (a retry's backoff, a dead
// worker's lease), which no notification announces.
func (w *Worker) idle(ctx context.Context) time.Duration {
	due, ok, err := w.store.NextJobDue(ctx)
	if err != nil || !ok {
		return w.Poll
	}
	// A little past due, on the catalog's clock; never zero, so a job that
	// is due but locked by a claim in flight does not make this spin.
	return min(w.Poll, due+10*time.Millisecond)
}

func (w *Worker) run(ctx context.Context, job catalog.Job) {
	handler, ok := w.handlers[job.Kind]
	if !ok {
		w.finish(ctx, job, "", fmt.Errorf("no handler for job kind %q", job.Kind))
		return
	}
	log := w.log.With("job", job.ID, "kind", job.Kind, "attempt", job.Attempts)
	log.Info("job started")
	start := time.Now()
	jobCtx, hb := w.heartbeat(ctx, job)
	err := handler(jobCtx, job, func(step string) {
		log.Debug("job step", "step", step, "ms", time.Since(start).Milliseconds())
		hb.step(step)
	})
	hb.stop()
	if ctx.Err() != nil {
		return // shutting down: leave the job to its lease
	}
	retry := w.finish(ctx, job, hb.last(), err)
	took := time.Since(start)
	w.Metrics.jobEnded(job.Kind, err, retry, took)
	if err != nil {
		log.Warn("job failed", "err", err, "ms", took.Milliseconds())
	} else {
		log.Info("job succeeded", "ms", took.Milliseconds())
	}
}

// finish records the outcome; a failure is retried with exponential
// backoff until the job's attempts are spent. It says whether the job will
// be retried.
func (w *Worker) finish(ctx context.Context, job catalog.Job, step string, err error) bool {
	var retry time.Duration
	if err != nil && job.Attempts < job.MaxAttempts && !permanent(err) {
		retry = time.Second << min(job.Attempts-1, 6)
	}
	if ferr := w.store.FinishJob(ctx, job.ID, w.id, step, err, retry); ferr != nil {
		w.log.Error("recording a job's end failed", "job", job.ID, "err", ferr)
	}
	return retry > 0
}

// permanent errors are the caller's (a bad request, a missing object):
// retrying cannot help.
func permanent(err error) bool {
	var te *tenancy.Error
	return errors.As(err, &te) && (te.Code == tenancy.CodeInvalid || te.Code == tenancy.CodeNotFound || te.Code == tenancy.CodeConflict)
}

// beat renews a job's lease and publishes its step until stopped.
type beat struct {
	mu      sync.Mutex
	current string
	poke    chan struct{} // a new step to record now
	quit    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
}

// step records s as the job's step: the heartbeat writes it at once, so
// followers (notified by the catalog) see each step as it starts, without
// the handler waiting for the write.
func (b *beat) step(s string) {
	b.mu.Lock()
	b.current = s
	b.mu.Unlock()
	select {
	case b.poke <- struct{}{}:
	default: // a write is pending: it takes the newest step
	}
}

func (b *beat) last() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.current
}

// stop ends the heartbeat after the write in flight, if any: cancelling a
// query would cost its pooled connection.
func (b *beat) stop() {
	close(b.quit)
	<-b.done
	b.cancel()
}

// heartbeat starts renewing job's lease every third of it, and recording
// each new step, and returns a context that ends if the lease is lost
// (another worker took the job, or the catalog could not renew it before
// it would run out).
func (w *Worker) heartbeat(ctx context.Context, job catalog.Job) (context.Context, *beat) {
	jobCtx, cancel := context.WithCancel(ctx)
	b := &beat{cancel: cancel, poke: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(b.done)
		tick := time.NewTicker(w.Lease / 3)
		defer tick.Stop()
		renewed := time.Now() // by the claim
		for {
			select {
			case <-b.quit:
				return
			case <-jobCtx.Done():
				return
			case <-tick.C:
			case <-b.poke:
			}
			err := w.store.ExtendJob(jobCtx, job.ID, w.id, b.last(), w.Lease)
			switch {
			case err == nil:
				renewed = time.Now()
			case jobCtx.Err() != nil:
				return
			case tenancy.ErrorCode(err) == tenancy.CodeConflict || time.Since(renewed) >= w.Lease*2/3:
				// Another worker has it, or may have it before the
				// next renewal: stop working on it.
				w.log.Warn("job lease lost", "job", job.ID, "err", err)
				cancel()
				return
			default:
				w.log.Warn("renewing a job's lease failed; trying again", "job", job.ID, "err", err)
			}
		}
	}()
	return jobCtx, b
}

// Handlers are the handlers of every job kind: provisioning, moving (see
// ChangePlan) and deleting.
func (p *Provisioner) Handlers() map[string]Handler {
	return map[string]Handler{
		catalog.JobMove: p.runMoveJob,
		catalog.JobProvision: func(ctx context.Context, job catalog.Job, step func(string)) error {
			var pl provisionPayload
			if err := decodePayload(job, &pl); err != nil {
				return err
			}
			return p.ProvisionDatabase(ctx, pl.DatabaseID, step)
		},
		catalog.JobDelete: func(ctx context.Context, job catalog.Job, step func(string)) error {
			// The job's organization_id is nulled with the records; the
			// payload keeps it, so a retry after the records went can
			// still tell the replicas.
			var pl catalog.DeletePayload
			_ = json.Unmarshal(job.Payload, &pl)
			if job.OrganizationID != nil {
				pl.OrganizationID = *job.OrganizationID
			}
			if pl.OrganizationID == "" {
				return nil
			}
			return p.DeleteOrganization(ctx, pl.OrganizationID, step)
		},
	}
}
