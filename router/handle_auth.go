package router

import (
	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/service"
)

// handleSignup: 201 with a session in open mode, 202 without one when the
// organization is waitlisted.
func (s *server) handleSignup(c *fiber.Ctx) error {
	var in service.SignupInput
	if err := decode(c, &in); err != nil {
		return err
	}
	out, err := s.Service.Signup(c.UserContext(), in, s.clientIP(c))
	if err != nil {
		return err
	}
	status := fiber.StatusCreated
	if out.Token == "" {
		status = fiber.StatusAccepted
	}
	return c.Status(status).JSON(out)
}

func (s *server) handleLogin(c *fiber.Ctx) error {
	var in service.LoginInput
	if err := decode(c, &in); err != nil {
		return err
	}
	out, err := s.Service.Login(c.UserContext(), in, s.clientIP(c))
	if err != nil {
		return err
	}
	return c.JSON(out)
}

func (s *server) handleLogout(c *fiber.Ctx) error {
	if err := noBody(c); err != nil {
		return err
	}
	id, _ := tenancy.IdentityFrom(c.UserContext())
	return noContent(c, s.Service.Logout(c.UserContext(), id))
}

func (s *server) handleMe(c *fiber.Ctx) error {
	id, _ := tenancy.IdentityFrom(c.UserContext())
	me, err := s.Service.WhoAmI(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(me)
}
