package tenantdb

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/robfig/cron/v3"
	"github.com/tenantgate/tenantgate/tenancy"
)

// TaskTemplate is the task a schedule creates each time it fires.
type TaskTemplate struct {
	Title       string `json:"title"`
	Description string `json:"description"`
}

// Schedule fires an agent's task on a cron expression.
type Schedule struct {
	ID           string       `json:"id"`
	AgentID      string       `json:"agentId"`
	Cron         string       `json:"cron"`
	TaskTemplate TaskTemplate `json:"taskTemplate"`
	Enabled      bool         `json:"enabled"`
	NextRunAt    *time.Time   `json:"nextRunAt"`
	CreatedAt    time.Time    `json:"createdAt"`
	UpdatedAt    time.Time    `json:"updatedAt"`
}

const scheduleColumns = `id::text, agent_id::text, cron, task_template, enabled, next_run_at, created_at, updated_at`

func scanSchedule(row pgx.Row, s *Schedule) error {
	var tmpl []byte
	err := row.Scan(&s.ID, &s.AgentID, &s.Cron, &tmpl, &s.Enabled, &s.NextRunAt, &s.CreatedAt, &s.UpdatedAt)
	if err == nil {
		err = json.Unmarshal(tmpl, &s.TaskTemplate)
	}
	return err
}

// SchedulePatch changes the fields that are not nil. NextRunAt is always
// written: the caller computes it from the resulting cron and enabled.
type SchedulePatch struct {
	AgentID, Cron *string
	TaskTemplate  *TaskTemplate
	Enabled       *bool
	NextRunAt     *time.Time
}

// Schedules stores schedules.
type Schedules struct{ scope *Scope }

// NewSchedules returns the schedule store over scope.
func NewSchedules(scope *Scope) *Schedules { return &Schedules{scope: scope} }

// List returns one page of live schedules, oldest first.
func (s *Schedules) List(ctx context.Context, t tenancy.Tenant, p tenancy.Page) ([]Schedule, string, error) {
	return list(ctx, s.scope, t, p, listSpec[Schedule]{
		query:   `SELECT ` + scheduleColumns + ` FROM schedules WHERE organization_id = $1 AND deleted_at IS NULL`,
		args:    []any{t.Organization.ID},
		orderBy: "created_at",
		scan:    scanSchedule,
		key:     func(x Schedule) (time.Time, string) { return x.CreatedAt, x.ID },
	})
}

// Get returns one live schedule of the tenant.
func (s *Schedules) Get(ctx context.Context, t tenancy.Tenant, id string) (Schedule, error) {
	return one(ctx, s.scope.Read, t, scanSchedule, `SELECT `+scheduleColumns+` FROM schedules
		WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL`, t.Organization.ID, id)
}

// Create adds a schedule for a live agent of the tenant.
func (s *Schedules) Create(ctx context.Context, t tenancy.Tenant, actor string, n Schedule, max int) (Schedule, error) {
	tmpl, _ := json.Marshal(n.TaskTemplate)
	var out Schedule
	found, full := false, false
	// Creators of one tenant are serialized by a transaction-scoped lock,
	// so concurrent creates cannot all pass the count.
	err := s.scope.Write(ctx, t, func(b *pgx.Batch) {
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "schedules:"+t.Organization.ID)
		b.Queue(`SELECT count(*) >= $2 FROM schedules WHERE organization_id = $1 AND deleted_at IS NULL`,
			t.Organization.ID, max).QueryRow(func(row pgx.Row) error { return row.Scan(&full) })
		b.Queue(`WITH x AS (
			INSERT INTO schedules (organization_id, agent_id, cron, task_template, enabled, next_run_at)
			SELECT $1, $2::uuid, $3, $4, $5, $6 WHERE `+liveAgent+`
			  AND (SELECT count(*) FROM schedules WHERE organization_id = $1 AND deleted_at IS NULL) < $8
			RETURNING *
		), `+logActivity("x", "schedule.created", "schedule", "$7")+`
		SELECT `+scheduleColumns+` FROM x`, t.Organization.ID, n.AgentID, n.Cron, tmpl, n.Enabled, n.NextRunAt, nullUUID(actor), max).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					found = true
					if err := scanSchedule(rows, &out); err != nil {
						return err
					}
				}
				return rows.Err()
			})
	})
	switch {
	case err != nil:
		return out, err
	case full:
		return out, tenancy.Errorf(tenancy.CodePlanLimit,
			"the plan allows %d schedules and all are in use; delete a schedule or upgrade the plan to lift the limit", max)
	case !found:
		return out, errNoSuchAgent
	}
	return out, nil
}

// Update changes a live schedule; a new agent must be a live agent of the
// tenant.
func (s *Schedules) Update(ctx context.Context, t tenancy.Tenant, actor, id string, p SchedulePatch) (Schedule, error) {
	var tmpl []byte
	if p.TaskTemplate != nil {
		tmpl, _ = json.Marshal(p.TaskTemplate)
	}
	return one(ctx, s.scope.Write, t, scanSchedule, `WITH x AS (
			UPDATE schedules SET agent_id = coalesce($3::uuid, agent_id), cron = coalesce($4, cron),
				task_template = coalesce($5, task_template), enabled = coalesce($6, enabled),
				next_run_at = $7, updated_at = now()
			WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL
			  AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM agents g
				WHERE g.organization_id = $1 AND g.id = $3::uuid AND g.deleted_at IS NULL))
			RETURNING *
		), `+logActivity("x", "schedule.updated", "schedule", "$8")+`
		SELECT `+scheduleColumns+` FROM x`, t.Organization.ID, id, p.AgentID, p.Cron, tmpl, p.Enabled, p.NextRunAt, nullUUID(actor))
}

// Delete soft-deletes a live schedule.
func (s *Schedules) Delete(ctx context.Context, t tenancy.Tenant, actor, id string) error {
	_, err := one(ctx, s.scope.Write, t, scanID, `WITH x AS (
			UPDATE schedules SET deleted_at = now(), updated_at = now(), enabled = false
			WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING organization_id, id
		), `+logActivity("x", "schedule.deleted", "schedule", "$3")+`
		SELECT id::text FROM x`, t.Organization.ID, id, nullUUID(actor))
	return err
}

// cronParser takes the standard five fields and descriptors like @hourly.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// NextRun returns when expr next fires after after (in UTC), or an error
// naming what is wrong with it.
func NextRun(expr string, after time.Time) (time.Time, error) {
	sched, err := cronParser.Parse(expr)
	if err != nil {
		return time.Time{}, err
	}
	return sched.Next(after.UTC()), nil
}
