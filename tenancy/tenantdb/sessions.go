package tenantdb

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// Session is an agent's working session.
type Session struct {
	ID         string     `json:"id"`
	AgentID    string     `json:"agentId"`
	Status     string     `json:"status"`
	StartedAt  time.Time  `json:"startedAt"`
	EndedAt    *time.Time `json:"endedAt"`
	TokensUsed int64      `json:"tokensUsed"`
}

const sessionColumns = `id::text, agent_id::text, status, started_at, ended_at, tokens_used`

func scanSession(row pgx.Row, s *Session) error {
	return row.Scan(&s.ID, &s.AgentID, &s.Status, &s.StartedAt, &s.EndedAt, &s.TokensUsed)
}

// SessionPatch changes the fields that are not nil.
type SessionPatch struct {
	Status     *string
	TokensUsed *int64
	EndedAt    *time.Time
}

// Sessions stores agent sessions.
type Sessions struct{ scope *Scope }

// NewSessions returns the session store over scope.
func NewSessions(scope *Scope) *Sessions { return &Sessions{scope: scope} }

// List returns one page of sessions, oldest first.
func (s *Sessions) List(ctx context.Context, t tenancy.Tenant, p tenancy.Page) ([]Session, string, error) {
	return list(ctx, s.scope, t, p, listSpec[Session]{
		query:   `SELECT ` + sessionColumns + ` FROM agent_sessions WHERE organization_id = $1`,
		args:    []any{t.Organization.ID},
		orderBy: "started_at",
		scan:    scanSession,
		key:     func(x Session) (time.Time, string) { return x.StartedAt, x.ID },
	})
}

// Create starts a session of a live agent of the tenant.
func (s *Sessions) Create(ctx context.Context, t tenancy.Tenant, actor, agentID string) (Session, error) {
	out, err := one(ctx, s.scope.Write, t, scanSession, `WITH x AS (
			INSERT INTO agent_sessions (organization_id, agent_id)
			SELECT $1, $2::uuid WHERE `+liveAgent+` RETURNING *
		), `+logActivity("x", "session.created", "session", "$3")+`
		SELECT `+sessionColumns+` FROM x`, t.Organization.ID, agentID, nullUUID(actor))
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		return out, errNoSuchAgent
	}
	return out, err
}

// Update changes a session; an end before its start is invalid.
func (s *Sessions) Update(ctx context.Context, t tenancy.Tenant, actor, id string, p SessionPatch) (Session, error) {
	out, err := one(ctx, s.scope.Write, t, scanSession, `WITH x AS (
			UPDATE agent_sessions SET status = coalesce($3, status), tokens_used = coalesce($4, tokens_used),
				ended_at = coalesce($5, ended_at)
			WHERE organization_id = $1 AND id = $2 AND ($5::timestamptz IS NULL OR $5 >= started_at) RETURNING *
		), `+logActivity("x", "session.updated", "session", "$6")+`
		SELECT `+sessionColumns+` FROM x`, t.Organization.ID, id, p.Status, p.TokensUsed, p.EndedAt, nullUUID(actor))
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound && p.EndedAt != nil {
		// Either no such session, or an end before its start: tell which
		// only for the tenant's own session.
		if _, gerr := one(ctx, s.scope.Read, t, scanSession, `SELECT `+sessionColumns+` FROM agent_sessions
			WHERE organization_id = $1 AND id = $2`, t.Organization.ID, id); gerr == nil {
			return out, tenancy.Errorf(tenancy.CodeInvalid, "endedAt: must not be before startedAt")
		}
	}
	return out, err
}
