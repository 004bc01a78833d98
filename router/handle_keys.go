package router

import (
	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy/service"
)

func (s *server) handleKeyCreate(c *fiber.Ctx) error {
	var in service.KeyInput
	if err := decode(c, &in); err != nil {
		return err
	}
	cl := call(c)
	k, err := s.Service.CreateAPIKey(c.UserContext(), cl, in)
	return answer(c, cl, fiber.StatusCreated, k, err)
}

func (s *server) handleKeyList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	data, next, err := s.Service.ListAPIKeys(c.UserContext(), call(c), p)
	return listed(c, data, next, err)
}

func (s *server) handleKeyRevoke(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	return noContent(c, s.Service.RevokeAPIKey(c.UserContext(), call(c), id))
}
