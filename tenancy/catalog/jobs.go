package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// Job is a unit of provisioner work.
type Job struct {
	ID             string          `json:"id"`
	Kind           string          `json:"kind"`
	OrganizationID *string         `json:"organizationId"`
	Payload        json.RawMessage `json:"payload"`
	State          string          `json:"state"`
	Step           string          `json:"step"`
	Attempts       int             `json:"attempts"`
	MaxAttempts    int             `json:"maxAttempts"`
	Error          string          `json:"error"`
	CreatedAt      time.Time       `json:"createdAt"`
	UpdatedAt      time.Time       `json:"updatedAt"`
	FinishedAt     *time.Time      `json:"finishedAt"`
}

// Job kinds and states.
const (
	JobProvision = "provision"
	JobMove      = "move"
	JobDelete    = "delete"

	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
)

const jobColumns = `id::text, kind, organization_id::text, payload, state, step, attempts, max_attempts, error,
	created_at, updated_at, finished_at`

func scanJob(row pgx.Row) (Job, error) {
	var j Job
	err := row.Scan(&j.ID, &j.Kind, &j.OrganizationID, &j.Payload, &j.State, &j.Step, &j.Attempts, &j.MaxAttempts,
		&j.Error, &j.CreatedAt, &j.UpdatedAt, &j.FinishedAt)
	return j, err
}

// JobsChannel is the notification channel on which the catalog announces,
// as "kind:id", each job that becomes queued (migration 000010): a new
// job, or one queued again for a retry.
const JobsChannel = "tenantgate_jobs"

// JobChannel is the notification channel on which the catalog announces
// each change of job id's state or step (the payload is the state).
func JobChannel(id string) string { return "tenantgate_job_" + id }

// EnqueueJob adds a job. An organization has at most one live job: a
// second one while the first is queued or running is a conflict. The job
// is announced on JobsChannel when the insert commits (a trigger, in the
// same transaction).
func (s *Store) EnqueueJob(ctx context.Context, kind, orgID string, payload any) (Job, error) {
	return insertJob(ctx, s.pool, kind, orgID, payload)
}

// insertJob is EnqueueJob on q, a pool or a transaction.
func insertJob(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, kind, orgID string, payload any) (Job, error) {
	raw, err := json.Marshal(payload)
	if err != nil {
		return Job{}, fmt.Errorf("catalog: job payload: %w", err)
	}
	j, err := scanJob(q.QueryRow(ctx, `INSERT INTO jobs (kind, organization_id, payload) VALUES ($1, $2, $3)
		RETURNING `+jobColumns, kind, nullIfEmpty(orgID), raw))
	if tenancy.ErrorCode(interpret(err, "job")) == tenancy.CodeConflict {
		return j, tenancy.Errorf(tenancy.CodeConflict, "the organization already has a job queued or running")
	}
	return j, interpret(err, "job")
}

// Job returns the job with id.
func (s *Store) Job(ctx context.Context, id string) (Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, id))
	return j, interpret(err, "job")
}

// ClaimJob takes the oldest job that is due, or whose runner's lease ran
// out (a killed provisioner), for worker until lease from now. It returns
// not_found when there is none.
func (s *Store) ClaimJob(ctx context.Context, worker string, lease time.Duration) (Job, error) {
	j, err := scanJob(s.pool.QueryRow(ctx, `
		UPDATE jobs SET state = 'running', locked_by = $1, locked_until = now() + $2::interval,
			attempts = attempts + 1, updated_at = now()
		WHERE id = (
			SELECT id FROM jobs
			WHERE (state = 'queued' AND run_after <= now()) OR (state = 'running' AND locked_until < now())
			ORDER BY run_after, created_at FOR UPDATE SKIP LOCKED LIMIT 1)
		RETURNING `+jobColumns, worker, lease))
	return j, interpret(err, "job")
}

// NextJobDue says how long until a job becomes claimable that is not
// claimable now: a queued one waiting out its retry backoff, or a running
// one whose lease runs out (its worker may be dead). ok is false when
// there is none. A worker that found nothing to claim sleeps no longer than
// this: such jobs send no notification when they become due.
func (s *Store) NextJobDue(ctx context.Context) (wait time.Duration, ok bool, err error) {
	var secs *float64
	err = s.pool.QueryRow(ctx, `
		SELECT extract(epoch FROM min(CASE WHEN state = 'queued' THEN run_after ELSE locked_until END) - now())::float8
		FROM jobs WHERE state IN ('queued', 'running')`).Scan(&secs)
	if err != nil || secs == nil {
		return 0, false, interpret(err, "job")
	}
	return max(time.Duration(*secs*float64(time.Second)), 0), true, nil
}

// ListenConn opens a connection of its own to the catalog, outside the
// pool, named appName in pg_stat_activity: a LISTEN belongs to a session,
// so the listener must keep one connection, which a pool would lend to
// others. The caller closes it. (It does not take an idle connection out
// of the pool: a follower reads the job through the pool right after it
// listens, and would only have to connect again for it.)
func (s *Store) ListenConn(ctx context.Context, appName string) (*pgx.Conn, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = appName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	return conn, interpret(err, "catalog connection")
}

// ExtendJob renews a running job's lease and records its step. A change of
// step is announced on JobChannel (see EnqueueJob).
func (s *Store) ExtendJob(ctx context.Context, id, worker, step string, lease time.Duration) error {
	tag, err := s.pool.Exec(ctx, `UPDATE jobs SET locked_until = now() + $3::interval, step = coalesce(nullif($4, ''), step),
		updated_at = now() WHERE id = $1 AND locked_by = $2 AND state = 'running'`, id, worker, lease, step)
	if err == nil && tag.RowsAffected() == 0 {
		return tenancy.Errorf(tenancy.CodeConflict, "job %s is no longer held by this worker", id)
	}
	return interpret(err, "job")
}

// FinishJob records a job's end, at step: succeeded, or failed for good,
// or (retry > 0) queued again after retry. A worker that no longer holds
// the job (its lease ran out and another took it) changes nothing. The
// new state is announced on JobChannel, and on JobsChannel when queued.
func (s *Store) FinishJob(ctx context.Context, id, worker, step string, jobErr error, retry time.Duration) error {
	state, msg := JobSucceeded, ""
	if jobErr != nil {
		state, msg = JobFailed, jobErr.Error()
		if retry > 0 {
			state = JobQueued
		}
	}
	tag, err := s.pool.Exec(ctx, `UPDATE jobs SET state = $3, error = $4, locked_by = NULL, locked_until = NULL,
		run_after = now() + $5::interval, updated_at = now(), step = coalesce(nullif($6, ''), step),
		finished_at = CASE WHEN $3 IN ('succeeded', 'failed') THEN now() END
		WHERE id = $1 AND locked_by = $2`, id, worker, state, msg, retry, step)
	if err == nil && tag.RowsAffected() == 0 {
		return tenancy.Errorf(tenancy.CodeConflict, "job %s is no longer held by this worker", id)
	}
	return interpret(err, "job")
}

// DeletePayload is what a delete job carries: the organization's id, which
// outlives the job's organization_id (nulled when the records go).
type DeletePayload struct {
	OrganizationID string `json:"organizationId"`
}

// MovePayload is what a move job carries: where to, and the plan to set
// once there (empty: unchanged).
type MovePayload struct {
	To   string       `json:"to"`
	Plan tenancy.Plan `json:"plan,omitempty"`
}
