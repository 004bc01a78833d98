package router

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/service"
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

// listed answers one page of a list.
func listed[T any](c *fiber.Ctx, data []T, next string, err error) error {
	if err != nil {
		return err
	}
	r := listResponse[T]{Data: data}
	if next != "" {
		r.NextCursor = &next
	}
	return c.JSON(r)
}

func (s *server) handleAgentList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	data, next, err := s.Service.ListAgents(c.UserContext(), call(c), p)
	return listed(c, data, next, err)
}

func (s *server) handleAgentCreate(c *fiber.Ctx) error {
	var in service.AgentInput
	if err := decode(c, &in); err != nil {
		return err
	}
	cl := call(c)
	a, err := s.Service.CreateAgent(c.UserContext(), cl, in)
	return answer(c, cl, fiber.StatusCreated, a, err)
}

func (s *server) handleAgentGet(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	cl := call(c)
	a, err := s.Service.GetAgent(c.UserContext(), cl, id)
	return answer(c, cl, fiber.StatusOK, a, err)
}

func (s *server) handleAgentUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in service.AgentPatch
	if err := decode(c, &in, "status"); err != nil {
		return err
	}
	cl := call(c)
	a, err := s.Service.UpdateAgent(c.UserContext(), cl, id, in)
	return answer(c, cl, fiber.StatusOK, a, err)
}

func (s *server) handleAgentDelete(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	return noContent(c, s.Service.DeleteAgent(c.UserContext(), call(c), id))
}
