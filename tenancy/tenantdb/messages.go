package tenantdb

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/tenantgate/tenantgate/tenancy"
)

// Message is one turn of a conversation with an agent.
type Message struct {
	ID        string    `json:"id"`
	AgentID   *string   `json:"agentId"`
	TaskID    *string   `json:"taskId"`
	Role      string    `json:"role"`
	Content   string    `json:"content"`
	CreatedAt time.Time `json:"createdAt"`
}

const messageColumns = `id::text, agent_id::text, task_id::text, role, content, created_at`

func scanMessage(row pgx.Row, m *Message) error {
	return row.Scan(&m.ID, &m.AgentID, &m.TaskID, &m.Role, &m.Content, &m.CreatedAt)
}

// NewMessage is what posting a message takes.
type NewMessage struct {
	Role, Content   string
	AgentID, TaskID *string
}

// Messages stores messages.
type Messages struct{ scope *Scope }

// NewMessages returns the message store over scope.
func NewMessages(scope *Scope) *Messages { return &Messages{scope: scope} }

// List returns one page of messages, optionally of one task or agent.
func (s *Messages) List(ctx context.Context, t tenancy.Tenant, p tenancy.Page, taskID, agentID string) ([]Message, string, error) {
	return list(ctx, s.scope, t, p, listSpec[Message]{
		query: `SELECT ` + messageColumns + ` FROM messages WHERE organization_id = $1
			AND ($2 = '' OR task_id::text = $2) AND ($3 = '' OR agent_id::text = $3)`,
		args:    []any{t.Organization.ID, taskID, agentID},
		orderBy: "created_at",
		scan:    scanMessage,
		key:     func(m Message) (time.Time, string) { return m.CreatedAt, m.ID },
	})
}

// Create posts a message; its agent and task, if given, must be live
// objects of the tenant, else not found.
func (s *Messages) Create(ctx context.Context, t tenancy.Tenant, actor string, n NewMessage) (Message, error) {
	m, err := one(ctx, s.scope.Write, t, scanMessage, `WITH x AS (
			INSERT INTO messages (organization_id, agent_id, task_id, role, content)
			SELECT $1, $2::uuid, $3::uuid, $4, $5
			WHERE `+liveAgent+` AND ($3::uuid IS NULL OR EXISTS (SELECT 1 FROM tasks k
				WHERE k.organization_id = $1 AND k.id = $3::uuid AND k.deleted_at IS NULL))
			RETURNING *
		), `+logActivity("x", "message.created", "message", "$6")+`
		SELECT `+messageColumns+` FROM x`, t.Organization.ID, n.AgentID, n.TaskID, n.Role, n.Content, nullUUID(actor))
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		return m, tenancy.Errorf(tenancy.CodeNotFound, "agentId or taskId: no such agent or task")
	}
	return m, err
}

// Activity is one entry of the tenant's activity log.
type Activity struct {
	ID         string         `json:"id"`
	ActorID    *string        `json:"actorId"`
	Action     string         `json:"action"`
	ObjectType string         `json:"objectType"`
	ObjectID   *string        `json:"objectId"`
	Details    map[string]any `json:"details"`
	CreatedAt  time.Time      `json:"createdAt"`
}

// ActivityLog reads the activity the stores write.
type ActivityLog struct{ scope *Scope }

// NewActivityLog returns the activity log over scope.
func NewActivityLog(scope *Scope) *ActivityLog { return &ActivityLog{scope: scope} }

// List returns one page of the tenant's activity, oldest first.
func (s *ActivityLog) List(ctx context.Context, t tenancy.Tenant, p tenancy.Page) ([]Activity, string, error) {
	return list(ctx, s.scope, t, p, listSpec[Activity]{
		query: `SELECT id::text, actor_id::text, action, object_type, object_id::text, details, created_at
			FROM activity_logs WHERE organization_id = $1`,
		args:    []any{t.Organization.ID},
		orderBy: "created_at",
		scan: func(row pgx.Row, a *Activity) error {
			return row.Scan(&a.ID, &a.ActorID, &a.Action, &a.ObjectType, &a.ObjectID, &a.Details, &a.CreatedAt)
		},
		key: func(a Activity) (time.Time, string) { return a.CreatedAt, a.ID },
	})
}
