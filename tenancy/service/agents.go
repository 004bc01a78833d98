package service

import (
	"context"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// AgentInput is the body of an agent's creation.
type AgentInput struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Model       string `json:"model"`
}

func (in AgentInput) validate() error {
	return firstError(tenancy.CheckName("name", in.Name, true, 200), tenancy.CheckText("description", in.Description, false, 4000),
		tenancy.CheckName("model", in.Model, false, 200))
}

// AgentPatch is the body of an agent's update.
type AgentPatch struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Model       *string `json:"model"`
	Status      *string `json:"status"`
}

func (p AgentPatch) validate() error {
	if p.Name != nil {
		if err := tenancy.CheckName("name", *p.Name, true, 200); err != nil {
			return err
		}
	}
	return firstError(optionalText("description", p.Description, 4000), optionalName("model", p.Model, 200),
		oneOf("status", p.Status, "active", "paused"))
}

// ListAgents returns one page of the tenant's agents.
func (s *Service) ListAgents(ctx context.Context, c *Call, p tenancy.Page) ([]tenantdb.Agent, string, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return nil, "", err
	}
	return s.Data.Agents.List(ctx, c.Tenant, p)
}

// GetAgent returns one agent of the tenant.
func (s *Service) GetAgent(ctx context.Context, c *Call, id string) (tenantdb.Agent, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Agent{}, err
	}
	return s.Data.Agents.Get(ctx, c.Tenant, id)
}

// CreateAgent adds an agent within the plan's max_agents (the store counts
// and inserts under one lock, so concurrent creates cannot pass together).
func (s *Service) CreateAgent(ctx context.Context, c *Call, in AgentInput) (tenantdb.Agent, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Agent{}, err
	}
	if err := in.validate(); err != nil {
		return tenantdb.Agent{}, err
	}
	a, err := once(ctx, s, c, "CreateAgent", in, func() (tenantdb.Agent, error) {
		return s.Data.Agents.Create(ctx, c.Tenant, c.Identity.UserID, tenantdb.NewAgent(in), s.Limits(c.Tenant).MaxAgents)
	}, nil)
	if err == nil && !c.Replayed {
		s.emit(ctx, c, "agent.created", a)
	}
	return a, err
}

// UpdateAgent changes an agent of the tenant.
func (s *Service) UpdateAgent(ctx context.Context, c *Call, id string, p AgentPatch) (tenantdb.Agent, error) {
	if err := require(c, tenancy.RoleMember); err != nil {
		return tenantdb.Agent{}, err
	}
	if err := p.validate(); err != nil {
		return tenantdb.Agent{}, err
	}
	a, err := s.Data.Agents.Update(ctx, c.Tenant, c.Identity.UserID, id, tenantdb.AgentPatch(p))
	if err == nil {
		s.emit(ctx, c, "agent.updated", a)
	}
	return a, err
}

// DeleteAgent soft-deletes an agent of the tenant.
func (s *Service) DeleteAgent(ctx context.Context, c *Call, id string) error {
	if err := require(c, tenancy.RoleMember); err != nil {
		return err
	}
	if err := s.Data.Agents.Delete(ctx, c.Tenant, c.Identity.UserID, id); err != nil {
		return err
	}
	s.emit(ctx, c, "agent.deleted", map[string]string{"id": id})
	return nil
}
