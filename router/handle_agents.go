package router

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

type listResponse[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"nextCursor"`
}

func page(c *fiber.Ctx) (tenancy.Page, error) {
	p := tenancy.Page{Cursor: strings.Clone(c.Query("cursor"))}
	if raw := c.Query("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > tenancy.MaxLimit {
			return p, tenancy.Errorf(tenancy.CodeInvalid, "limit: must be an integer between 1 and %d", tenancy.MaxLimit)
		}
		p.Limit = n
	}
	return p, nil
}

func list[T any](data []T, next string) listResponse[T] {
	r := listResponse[T]{Data: data}
	if next != "" {
		r.NextCursor = &next
	}
	return r
}

func (s *server) handleAgentList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	t, _ := tenantOf(c)
	agents, next, err := s.Data.Agents.List(c.UserContext(), t, p)
	if err != nil {
		return err
	}
	return c.JSON(list(agents, next))
}

type agentCreate struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Model       string `json:"model"`
}

func (r agentCreate) validate() error {
	if err := text("name", r.Name, true, 200); err != nil {
		return err
	}
	if err := text("description", r.Description, false, 4000); err != nil {
		return err
	}
	return text("model", r.Model, false, 200)
}

func (s *server) handleAgentCreate(c *fiber.Ctx) error {
	var req agentCreate
	if err := decode(c, &req); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	t, id := tenantOf(c)
	a, err := s.Data.Agents.Create(c.UserContext(), t, id.UserID, tenantdb.NewAgent(req), s.limits(t).MaxAgents)
	if err != nil {
		return err
	}
	s.emit(c, "agent.created", a)
	return c.Status(fiber.StatusCreated).JSON(a)
}

func (s *server) handleAgentGet(c *fiber.Ctx) error {
	agentID, err := pathID(c)
	if err != nil {
		return err
	}
	t, _ := tenantOf(c)
	a, err := s.Data.Agents.Get(c.UserContext(), t, agentID)
	if err != nil {
		return err
	}
	return c.JSON(a)
}

type agentPatch struct {
	Name        *string `json:"name"`
	Description *string `json:"description"`
	Model       *string `json:"model"`
	Status      *string `json:"status"`
}

func (r agentPatch) validate() error {
	if r.Name != nil {
		if err := text("name", *r.Name, true, 200); err != nil {
			return err
		}
	}
	if err := optionalText("description", r.Description, 4000); err != nil {
		return err
	}
	if err := optionalText("model", r.Model, 200); err != nil {
		return err
	}
	return oneOf("status", r.Status, "active", "paused")
}

func (s *server) handleAgentUpdate(c *fiber.Ctx) error {
	agentID, err := pathID(c)
	if err != nil {
		return err
	}
	var req agentPatch
	if err := decode(c, &req, "status"); err != nil {
		return err
	}
	if err := req.validate(); err != nil {
		return err
	}
	t, id := tenantOf(c)
	a, err := s.Data.Agents.Update(c.UserContext(), t, id.UserID, agentID, tenantdb.AgentPatch(req))
	if err != nil {
		return err
	}
	s.emit(c, "agent.updated", a)
	return c.JSON(a)
}

func (s *server) handleAgentDelete(c *fiber.Ctx) error {
	agentID, err := pathID(c)
	if err != nil {
		return err
	}
	t, id := tenantOf(c)
	if err := s.Data.Agents.Delete(c.UserContext(), t, id.UserID, agentID); err != nil {
		return err
	}
	s.emit(c, "agent.deleted", fiber.Map{"id": agentID})
	return c.SendStatus(fiber.StatusNoContent)
}
