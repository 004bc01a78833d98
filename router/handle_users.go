package router

import (
	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy/service"
)

func (s *server) handleUserList(c *fiber.Ctx) error {
	p, err := page(c)
	if err != nil {
		return err
	}
	data, next, err := s.Service.ListUsers(c.UserContext(), call(c), p)
	return listed(c, data, next, err)
}

func (s *server) handleUserCreate(c *fiber.Ctx) error {
	var in service.UserInput
	if err := decode(c, &in); err != nil {
		return err
	}
	cl := call(c)
	u, err := s.Service.CreateUser(c.UserContext(), cl, in)
	return answer(c, cl, fiber.StatusCreated, u, err)
}

func (s *server) handleUserUpdate(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	var in service.UserPatch
	if err := decode(c, &in); err != nil {
		return err
	}
	cl := call(c)
	u, err := s.Service.UpdateUserRole(c.UserContext(), cl, id, in)
	return answer(c, cl, fiber.StatusOK, u, err)
}

func (s *server) handleUserDelete(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	return noContent(c, s.Service.DeleteUser(c.UserContext(), call(c), id))
}
