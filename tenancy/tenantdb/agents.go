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
	return list(ctx, s.scope, t, p, listSpec[Agent]{
		query:   `SELECT ` + agentColumns + ` FROM agents WHERE organization_id = $1 AND deleted_at IS NULL`,
		args:    []any{t.Organization.ID},
		orderBy: "created_at",
		scan:    scanAgent,
		key:     func(a Agent) (time.Time, string) { return a.CreatedAt, a.ID },
	})
}

// Get returns one agent; another tenant's agent is not found.
func (s *Agents) Get(ctx context.Context, t tenancy.Tenant, id string) (Agent, error) {
	return one(ctx, s.scope.Read, t, scanAgent, `SELECT `+agentColumns+` FROM agents
		WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL`, t.Organization.ID, id)
}

// ErrAgentLimit reports that creating an agent would exceed max.
func errAgentLimit(max int) error {
	return tenancy.Errorf(tenancy.CodePlanLimit,
		"the plan allows %d agents and all are in use; delete an agent or upgrade the plan to lift the limit", max)
}

// Create adds an agent and its activity record, unless the tenant already
// has max live agents. Creators of one tenant are serialized by a
// transaction-scoped advisory lock, so concurrent creates cannot all pass
// the count.
func (s *Agents) Create(ctx context.Context, t tenancy.Tenant, actor string, n NewAgent, max int) (Agent, error) {
	var a Agent
	created := false
	err := s.scope.Write(ctx, t, func(b *pgx.Batch) {
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "agents:"+t.Organization.ID)
		b.Queue(`WITH a AS (
				INSERT INTO agents (organization_id, name, description, model)
				SELECT $1, $2, $3, $4
				WHERE (SELECT count(*) FROM agents WHERE organization_id = $1 AND deleted_at IS NULL) < $6
				RETURNING *
			), `+logActivity("a", "agent.created", "agent", "$5")+`
			SELECT `+agentColumns+` FROM a`, t.Organization.ID, n.Name, n.Description, n.Model, nullUUID(actor), max).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					created = true
					if err := scanAgent(rows, &a); err != nil {
						return err
					}
				}
				return rows.Err()
			})
	})
	if err == nil && !created {
		err = errAgentLimit(max)
	}
	return a, err
}

// Update changes the patch's fields of a live agent.
func (s *Agents) Update(ctx context.Context, t tenancy.Tenant, actor, id string, p AgentPatch) (Agent, error) {
	return one(ctx, s.scope.Write, t, scanAgent, `WITH a AS (
			UPDATE agents SET name = coalesce($3, name), description = coalesce($4, description),
				model = coalesce($5, model), status = coalesce($6, status), updated_at = now()
			WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING *
		), `+logActivity("a", "agent.updated", "agent", "$7")+`
		SELECT `+agentColumns+` FROM a`, t.Organization.ID, id, p.Name, p.Description, p.Model, p.Status, nullUUID(actor))
}

// Delete soft-deletes a live agent; its name becomes free again.
func (s *Agents) Delete(ctx context.Context, t tenancy.Tenant, actor, id string) error {
	_, err := one(ctx, s.scope.Write, t, scanID, `WITH a AS (
			UPDATE agents SET deleted_at = now(), updated_at = now()
			WHERE organization_id = $1 AND id = $2 AND deleted_at IS NULL RETURNING organization_id, id
		), `+logActivity("a", "agent.deleted", "agent", "$3")+`
		SELECT id::text FROM a`, t.Organization.ID, id, nullUUID(actor))
	return err
}

// Count returns the tenant's live agents.
func (s *Agents) Count(ctx context.Context, t tenancy.Tenant) (int, error) {
	return one(ctx, s.scope.Read, t, func(row pgx.Row, n *int) error { return row.Scan(n) },
		`SELECT count(*) FROM agents WHERE organization_id = $1 AND deleted_at IS NULL`, t.Organization.ID)
}

func scanID(row pgx.Row, id *string) error { return row.Scan(id) }

func nullUUID(s string) any {
	if s == "" {
		return nil
	}
	return s
}
