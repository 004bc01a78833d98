package tenantdb

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// Task is a unit of work for an agent.
type Task struct {
	ID          string          `json:"id"`
	Title       string          `json:"title"`
	Description string          `json:"description"`
	Status      string          `json:"status"`
	AgentID     *string         `json:"agentId"`
	Priority    string          `json:"priority"`
	Result      json.RawMessage `json:"result"`
	StartedAt   *time.Time      `json:"startedAt"`
	CompletedAt *time.Time      `json:"completedAt"`
	CreatedAt   time.Time       `json:"createdAt"`
	UpdatedAt   time.Time       `json:"updatedAt"`
	// AgentMinutes is what a finished run used, rounded up.
	AgentMinutes *int `json:"-"`
}

const taskColumns = `id::text, title, description, status, agent_id::text, priority, result,
	started_at, completed_at, created_at, updated_at, agent_minutes`

func scanTask(row pgx.Row, t *Task) error {
	var result []byte
	err := row.Scan(&t.ID, &t.Title, &t.Description, &t.Status, &t.AgentID, &t.Priority, &result,
		&t.StartedAt, &t.CompletedAt, &t.CreatedAt, &t.UpdatedAt, &t.AgentMinutes)
	if result != nil {
		t.Result = result
	} else {
		t.Result = json.RawMessage("null")
	}
	return err
}

// NewTask is what creating a task takes.
type NewTask struct {
	Title, Description, Priority string
	AgentID                      *string
}

// TaskPatch changes the fields that are not nil. ClearAgent unassigns.
type TaskPatch struct {
	Title, Description, Priority, AgentID *string
	ClearAgent                            bool
	Cancel                                bool
}

// TaskFilter narrows a task list.
type TaskFilter struct {
	Status, AgentID string
}

// Tasks stores tasks.
type Tasks struct{ scope *Scope }

// NewTasks returns the task store over scope.
func NewTasks(scope *Scope) *Tasks { return &Tasks{scope: scope} }

// liveAgent is true when $2 is NULL or a live agent of organization $1: a
// reference to anything else, another tenant's agent included, is not found.
const liveAgent = `($2::uuid IS NULL OR EXISTS (SELECT 1 FROM agents g
	WHERE g.organization_id = $1 AND g.id = $2::uuid AND g.deleted_at IS NULL))`

// List returns one page of tasks, optionally by status and agent.
func (s *Tasks) List(ctx context.Context, t tenancy.Tenant, p tenancy.Page, f TaskFilter) ([]Task, string, error) {
	return list(ctx, s.scope, t, p, listSpec[Task]{
		query: `SELECT ` + taskColumns + ` FROM tasks WHERE organization_id = $1 AND deleted_at IS NULL
			AND ($2 = '' OR status = $2) AND ($3 = '' OR agent_id::text = $3)`,
		args:    []any{t.Organization.ID, f.Status, f.AgentID},
		orderBy: "created_at",
		scan:    scanTask,
		key:     func(x Task) (time.Time, string) { return x.CreatedAt, x.ID },
	})
}

// Get returns one live task of the tenant.
func (s *Tasks) Get(ctx context.Context, t tenancy.Tenant, id string) (Task, error) {
	return one(ctx, s.scope.Read, t, scanTask, `SELECT `+taskColumns+` FROM tasks
		WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL`, t.Organization.ID, id)
}

var errNoSuchAgent = tenancy.Errorf(tenancy.CodeNotFound, "agentId: no such agent")

// Create adds a task; its agent, if any, must be a live agent of the tenant.
func (s *Tasks) Create(ctx context.Context, t tenancy.Tenant, actor string, n NewTask) (Task, error) {
	task, err := one(ctx, s.scope.Write, t, scanTask, `WITH x AS (
			INSERT INTO tasks (organization_id, agent_id, title, description, priority)
			SELECT $1, $2::uuid, $3, $4, $5 WHERE `+liveAgent+` RETURNING *
		), `+logActivity("x", "task.created", "task", "$6")+`
		SELECT `+taskColumns+` FROM x`, t.Organization.ID, n.AgentID, n.Title, n.Description, n.Priority, nullUUID(actor))
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		return task, errNoSuchAgent
	}
	return task, err
}

// Update changes a live task's fields; cancelling is allowed only before
// the task has finished.
func (s *Tasks) Update(ctx context.Context, t tenancy.Tenant, actor, id string, p TaskPatch) (Task, error) {
	var out Task
	err := s.scope.Tx(ctx, t, func(tx pgx.Tx) error {
		cur, err := lockTask(ctx, tx, t, id)
		if err != nil {
			return err
		}
		if p.Cancel && cur.Status != "pending" && cur.Status != "running" {
			return tenancy.Errorf(tenancy.CodeConflict, "status: a %s task cannot be cancelled", cur.Status)
		}
		if p.AgentID != nil {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT `+liveAgent, t.Organization.ID, *p.AgentID).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return errNoSuchAgent
			}
		}
		status := cur.Status
		if p.Cancel {
			status = "cancelled"
		}
		return scanTask(tx.QueryRow(ctx, `WITH x AS (
				UPDATE tasks SET title = coalesce($3, title), description = coalesce($4, description),
					priority = coalesce($5, priority),
					agent_id = CASE WHEN $7 THEN NULL ELSE coalesce($6::uuid, agent_id) END,
					status = $8, updated_at = now()
				WHERE organization_id = $1 AND id = $2 RETURNING *
			), `+logActivity("x", "task.updated", "task", "$9")+`
			SELECT `+taskColumns+` FROM x`, t.Organization.ID, id, p.Title, p.Description, p.Priority, p.AgentID,
			p.ClearAgent, status, nullUUID(actor)), &out)
	})
	return out, err
}

// Delete soft-deletes a live task.
func (s *Tasks) Delete(ctx context.Context, t tenancy.Tenant, actor, id string) error {
	_, err := one(ctx, s.scope.Write, t, scanID, `WITH x AS (
			UPDATE tasks SET deleted_at = now(), updated_at = now()
			WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING organization_id, id
		), `+logActivity("x", "task.deleted", "task", "$3")+`
		SELECT id::text FROM x`, t.Organization.ID, id, nullUUID(actor))
	return err
}

// Start moves a pending task to running. Anything else is a conflict: a
// finished task cannot be started again.
func (s *Tasks) Start(ctx context.Context, t tenancy.Tenant, actor, id string) (Task, error) {
	var out Task
	err := s.scope.Tx(ctx, t, func(tx pgx.Tx) error {
		cur, err := lockTask(ctx, tx, t, id)
		if err != nil {
			return err
		}
		if cur.Status != "pending" {
			return tenancy.Errorf(tenancy.CodeConflict, "a %s task cannot be started", cur.Status)
		}
		return scanTask(tx.QueryRow(ctx, `WITH x AS (
				UPDATE tasks SET status = 'running', started_at = now(), updated_at = now()
				WHERE organization_id = $1 AND id = $2 RETURNING *
			), `+logActivity("x", "task.started", "task", "$3")+`
			SELECT `+taskColumns+` FROM x`, t.Organization.ID, id, nullUUID(actor)), &out)
	})
	return out, err
}

// Complete finishes a running task with status (completed or failed) and
// result, recording the run's agent-minutes rounded up. Completing a task
// that already finished returns it unchanged, so a retry is harmless.
func (s *Tasks) Complete(ctx context.Context, t tenancy.Tenant, actor, id, status string, result json.RawMessage) (Task, error) {
	var out Task
	err := s.scope.Tx(ctx, t, func(tx pgx.Tx) error {
		cur, err := lockTask(ctx, tx, t, id)
		if err != nil {
			return err
		}
		switch cur.Status {
		case "completed", "failed":
			out = cur
			return nil
		case "running":
		default:
			return tenancy.Errorf(tenancy.CodeConflict, "a %s task cannot be completed; start it first", cur.Status)
		}
		return scanTask(tx.QueryRow(ctx, `WITH x AS (
				UPDATE tasks SET status = $3, result = $4, completed_at = now(), updated_at = now(),
					agent_minutes = ceil(extract(epoch FROM now() - started_at) / 60)::int
				WHERE organization_id = $1 AND id = $2 RETURNING *
			), `+logActivity("x", "task.completed", "task", "$5")+`
			SELECT `+taskColumns+` FROM x`, t.Organization.ID, id, status, nullJSON(result), nullUUID(actor)), &out)
	})
	return out, err
}

func lockTask(ctx context.Context, tx pgx.Tx, t tenancy.Tenant, id string) (Task, error) {
	var cur Task
	err := scanTask(tx.QueryRow(ctx, `SELECT `+taskColumns+` FROM tasks
		WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE`, t.Organization.ID, id), &cur)
	return cur, orNotFound(err, tenancy.ErrNotFound)
}

// orNotFound turns "no row" into notFound and leaves other errors alone.
func orNotFound(err error, notFound error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound
	}
	return err
}

func nullJSON(raw json.RawMessage) any {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return []byte(raw)
}
