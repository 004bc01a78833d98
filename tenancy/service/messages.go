package service

import (
	"context"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// MessageInput is the body of a message.
type MessageInput struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	AgentID *string `json:"agentId"`
	TaskID  *string `json:"taskId"`
}

// ListMessages returns one page of the tenant's messages, optionally of one
// task or agent.
func (s *Service) ListMessages(ctx context.Context, c *Call, p tenancy.Page, taskID, agentID string) ([]tenantdb.Message, string, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return nil, "", err
	}
	taskID, err := OptionalUUID("taskId", taskID)
	if err != nil {
		return nil, "", err
	}
	if agentID, err = OptionalUUID("agentId", agentID); err != nil {
		return nil, "", err
	}
	return s.Data.Messages.List(ctx, c.Tenant, p, taskID, agentID)
}

// CreateMessage posts a message.
func (s *Service) CreateMessage(ctx context.Context, c *Call, in MessageInput) (tenantdb.Message, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Message{}, err
	}
	err := firstError(oneOf("role", &in.Role, "user", "agent", "system"), tenancy.CheckText("content", in.Content, true, 100_000),
		uuidField("agentId", in.AgentID), uuidField("taskId", in.TaskID))
	if err != nil {
		return tenantdb.Message{}, err
	}
	m, err := once(ctx, s, c, "CreateMessage", in, func() (tenantdb.Message, error) {
		return s.Data.Messages.Create(ctx, c.Tenant, c.Identity.UserID, tenantdb.NewMessage(in))
	}, nil)
	if err == nil && !c.Replayed {
		s.emit(ctx, c, "message.created", m)
	}
	return m, err
}

// ListActivity returns one page of the tenant's activity log.
func (s *Service) ListActivity(ctx context.Context, c *Call, p tenancy.Page) ([]tenantdb.Activity, string, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return nil, "", err
	}
	return s.Data.Activity.List(ctx, c.Tenant, p)
}

// ListSessions returns one page of the tenant's agent sessions.
func (s *Service) ListSessions(ctx context.Context, c *Call, p tenancy.Page) ([]tenantdb.Session, string, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return nil, "", err
	}
	return s.Data.Sessions.List(ctx, c.Tenant, p)
}

// SessionInput is the body of a session's creation.
type SessionInput struct {
	AgentID string `json:"agentId"`
}

// CreateSession opens an agent session.
func (s *Service) CreateSession(ctx context.Context, c *Call, in SessionInput) (tenantdb.Session, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Session{}, err
	}
	if err := uuidField("agentId", &in.AgentID); err != nil {
		return tenantdb.Session{}, err
	}
	return once(ctx, s, c, "CreateSession", in, func() (tenantdb.Session, error) {
		return s.Data.Sessions.Create(ctx, c.Tenant, c.Identity.UserID, in.AgentID)
	}, nil)
}

// SessionPatch is the body of a session's update.
type SessionPatch struct {
	Status     *string    `json:"status"`
	TokensUsed *int64     `json:"tokensUsed"`
	EndedAt    *time.Time `json:"endedAt"`
}

// UpdateSession changes an agent session.
func (s *Service) UpdateSession(ctx context.Context, c *Call, id string, in SessionPatch) (tenantdb.Session, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Session{}, err
	}
	if err := oneOf("status", in.Status, "active", "completed", "failed"); err != nil {
		return tenantdb.Session{}, err
	}
	if in.TokensUsed != nil && *in.TokensUsed < 0 {
		return tenantdb.Session{}, tenancy.Errorf(tenancy.CodeInvalid, "tokensUsed: must not be negative")
	}
	return s.Data.Sessions.Update(ctx, c.Tenant, c.Identity.UserID, id, tenantdb.SessionPatch(in))
}
