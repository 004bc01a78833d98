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
type Worker struct {
	store    *catalog.Store
	log      *slog.Logger
	handlers map[string]Handler
	id       string
	// Lease is how long a claim lasts without renewal; Poll how long an
	// idle worker waits before looking again.
	Lease, Poll time.Duration
	// Metrics counts and times job runs; nil counts nothing.
	Metrics *Metrics
}

// NewWorker returns a worker running handlers by job kind.
func NewWorker(store *catalog.Store, log *slog.Logger, handlers map[string]Handler) *Worker {
	host, _ := os.Hostname()
	return &Worker{store: store, log: log, handlers: handlers, Lease: 30 * time.Second, Poll: 500 * time.Millisecond,
		id: fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano())}
}

// Run works until ctx ends; the job in hand is given up (its lease runs
// out and another worker resumes it).
func (w *Worker) Run(ctx context.Context) {
	for ctx.Err() == nil {
		job, err := w.store.ClaimJob(ctx, w.id, w.Lease)
		switch {
		case err == nil:
			w.run(ctx, job)
			continue
		case tenancy.ErrorCode(err) != tenancy.CodeNotFound && ctx.Err() == nil:
			w.log.Warn("claiming a job failed", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(w.Poll):
		}
	}
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
	err := handler(jobCtx, job, hb.step)
	hb.stop()
	if ctx.Err() != nil {
		return // shutting down: leave the job to its lease
	}
	retry := w.finish(ctx, job, hb.last(), err)
	w.Metrics.jobEnded(job.Kind, err, retry, time.Since(start))
	if err != nil {
		log.Warn("job failed", "err", err)
	} else {
		log.Info("job succeeded")
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
	cancel  context.CancelFunc
	done    chan struct{}
}

func (b *beat) step(s string) {
	b.mu.Lock()
	b.current = s
	b.mu.Unlock()
}

func (b *beat) last() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.current
}

func (b *beat) stop() {
	b.cancel()
	<-b.done
}

// heartbeat starts renewing job's lease every third of it, recording the
// latest step, and returns a context that ends if the lease is lost
// (another worker took the job).
func (w *Worker) heartbeat(ctx context.Context, job catalog.Job) (context.Context, *beat) {
	jobCtx, cancel := context.WithCancel(ctx)
	b := &beat{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		tick := time.NewTicker(w.Lease / 3)
		defer tick.Stop()
		for {
			b.mu.Lock()
			step := b.current
			b.mu.Unlock()
			if err := w.store.ExtendJob(jobCtx, job.ID, w.id, step, w.Lease); err != nil && jobCtx.Err() == nil {
				w.log.Warn("job lease lost", "job", job.ID, "err", err)
				cancel()
				return
			}
			select {
			case <-jobCtx.Done():
				return
			case <-tick.C:
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
