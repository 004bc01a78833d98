package tenantdb

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// Agent is an AI agent of a tenant.
type Agent struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Model       string    `json:"model"`
	Status      string    `json:"status"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// NewAgent is what creating an agent takes.
type NewAgent struct {
	Name, Description, Model string
}

// AgentPatch changes the fields that are not nil.
type AgentPatch struct {
	Name, Description, Model, Status *string
}

// Agents stores agents.
type Agents struct {
	scope *Scope
}

// NewAgents returns the agent store over scope.
func NewAgents(scope *Scope) *Agents { return &Agents{scope: scope} }

const agentColumns = `id::text, name, description, model, status, created_at, updated_at`

func scanAgent(row pgx.Row, a *Agent) error {
	return row.Scan(&a.ID, &a.Name, &a.Description, &a.Model, &a.Status, &a.CreatedAt, &a.UpdatedAt)
}

// List returns one page of the tenant's agents, oldest first, and the cursor
// of the next page ("" on the last).
func (s *Agents) List(ctx context.Context, t tenancy.Tenant, p tenancy.Page) ([]Agent, string, error) {
	after, limit, err := p.Bounds()
	if err != nil {
		return nil, "", err
	}
	out := make([]Agent, 0, limit)
	err = s.scope.Read(ctx, t, func(b *pgx.Batch) {
		b.Queue(`SELECT `+agentColumns+` FROM agents
			WHERE organization_id = $1 AND deleted_at IS NULL AND (created_at, id) > ($2, $3)
			ORDER BY created_at, id LIMIT $4`, t.Organization.ID, after.At, after.ID, limit+1).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var a Agent
					if err := scanAgent(rows, &a); err != nil {
						return err
					}
					out = append(out, a)
				}
				return rows.Err()
			})
	})
	if err != nil {
		return nil, "", err
	}
	out, next := tenancy.PageOf(out, limit, func(a Agent) (time.Time, string) { return a.CreatedAt, a.ID })
	return out, next, nil
}

// Get returns one agent; another tenant's agent is not found.
func (s *Agents) Get(ctx context.Context, t tenancy.Tenant, id string) (Agent, error) {
	var a Agent
	err := s.scope.Read(ctx, t, func(b *pgx.Batch) {
		b.Queue(`SELECT `+agentColumns+` FROM agents
			WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL`, t.Organization.ID, id).
			QueryRow(func(row pgx.Row) error { return scanAgent(row, &a) })
	})
	return a, err
}

// Create adds an agent and its activity record in one statement.
func (s *Agents) Create(ctx context.Context, t tenancy.Tenant, actor string, n NewAgent) (Agent, error) {
	var a Agent
	err := s.scope.Write(ctx, t, func(b *pgx.Batch) {
		b.Queue(`WITH a AS (
				INSERT INTO agents (organization_id, name, description, model)
				VALUES ($1, $2, $3, $4) RETURNING *
			), log AS (
				INSERT INTO activity_logs (organization_id, actor_id, action, object_type, object_id)
				SELECT organization_id, $5, 'agent.created', 'agent', id FROM a
			)
			SELECT `+agentColumns+` FROM a`, t.Organization.ID, n.Name, n.Description, n.Model, nullUUID(actor)).
			QueryRow(func(row pgx.Row) error { return scanAgent(row, &a) })
	})
	return a, err
}

// Update changes the patch's fields of a live agent.
func (s *Agents) Update(ctx context.Context, t tenancy.Tenant, actor, id string, p AgentPatch) (Agent, error) {
	var a Agent
	err := s.scope.Write(ctx, t, func(b *pgx.Batch) {
		b.Queue(`WITH a AS (
				UPDATE agents SET name = coalesce($3, name), description = coalesce($4, description),
					model = coalesce($5, model), status = coalesce($6, status), updated_at = now()
				WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING *
			), log AS (
				INSERT INTO activity_logs (organization_id, actor_id, action, object_type, object_id)
				SELECT organization_id, $7, 'agent.updated', 'agent', id FROM a
			)
			SELECT `+agentColumns+` FROM a`, t.Organization.ID, id, p.Name, p.Description, p.Model, p.Status, nullUUID(actor)).
			QueryRow(func(row pgx.Row) error { return scanAgent(row, &a) })
	})
	return a, err
}

// Delete soft-deletes a live agent; its name becomes free again.
func (s *Agents) Delete(ctx context.Context, t tenancy.Tenant, actor, id string) error {
	return s.scope.Write(ctx, t, func(b *pgx.Batch) {
		b.Queue(`WITH a AS (
				UPDATE agents SET deleted_at = now(), updated_at = now()
				WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING organization_id, id
			), log AS (
				INSERT INTO activity_logs (organization_id, actor_id, action, object_type, object_id)
				SELECT organization_id, $3, 'agent.deleted', 'agent', id FROM a
			)
			SELECT id::text FROM a`, t.Organization.ID, id, nullUUID(actor)).
			QueryRow(func(row pgx.Row) error { var s string; return row.Scan(&s) })
	})
}

func nullUUID(s string) any {
	if s == "" {
		return nil
	}
	return s
}
