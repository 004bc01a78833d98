package tenantdb

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// Due is a schedule that has come due.
type Due struct {
	ID, Cron string
	At       time.Time
}

// Fire creates, in one transaction of the tenant's scope, one task for
// each of the tenant's due schedules, at most limit of them, the longest
// due first, and moves each schedule's nextRunAt to what next(schedule)
// says. A schedule is claimed with FOR UPDATE SKIP LOCKED and only fires
// while its nextRunAt is still the due time it read, so concurrent
// schedulers create one task per due time. It returns the tasks created
// and the tenant's earliest next run (nil when none): a time already past
// when due schedules were left for another call.
func (s *Schedules) Fire(ctx context.Context, t tenancy.Tenant, limit int, next func(Due) (*time.Time, error)) ([]Task, *time.Time, error) {
	var created []Task
	var earliest *time.Time
	err := s.scope.Tx(ctx, t, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT id::text, cron, next_run_at FROM schedules
			WHERE organization_id = $1 AND enabled AND deleted_at IS NULL AND next_run_at <= now()
			ORDER BY next_run_at, id LIMIT $2
			FOR UPDATE SKIP LOCKED`, t.Organization.ID, limit)
		if err != nil {
			return err
		}
		due, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Due])
		if err != nil {
			return err
		}
		for _, d := range due {
			task, err := fireOne(ctx, tx, t, d, next)
			if err != nil {
				return err
			}
			created = append(created, task)
		}
		return tx.QueryRow(ctx, `SELECT min(next_run_at) FROM schedules
			WHERE organization_id = $1 AND enabled AND deleted_at IS NULL`, t.Organization.ID).Scan(&earliest)
	})
	return created, earliest, err
}

// fireOne creates the task of one due schedule and advances it. After an
// outage nextRunAt jumps past every missed time: one catch-up task, not
// one per missed minute.
func fireOne(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, d Due, next func(Due) (*time.Time, error)) (Task, error) {
	at, err := next(d)
	if err != nil {
		return Task{}, err
	}
	var task Task
	err = scanTask(tx.QueryRow(ctx, `WITH s AS (
			UPDATE schedules SET next_run_at = $4, updated_at = now()
			WHERE organization_id = $1 AND id = $2 AND next_run_at = $3 RETURNING *
		), x AS (
			INSERT INTO tasks (organization_id, agent_id, title, description)
			SELECT s.organization_id,
				(SELECT g.id FROM agents g WHERE g.organization_id = s.organization_id AND g.id = s.agent_id AND g.deleted_at IS NULL),
				s.task_template->>'title', coalesce(s.task_template->>'description', '')
			FROM s RETURNING *
		), log AS (
			INSERT INTO activity_logs (organization_id, actor_id, action, object_type, object_id, details)
			SELECT organization_id, NULL, 'task.created', 'task', id, $5::jsonb FROM x
		)
		SELECT `+taskColumns+` FROM x`, t.Organization.ID, d.ID, d.At, at, scheduleDetails(d.ID)), &task)
	return task, err
}

func scheduleDetails(id string) []byte {
	b, _ := json.Marshal(map[string]string{"scheduleId": id})
	return b
}
