package router

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/service"
)

const idempotencyHeader = "Idempotency-Key"

// call is the request as the application layer takes it: the caller's
// identity, its tenant and, on a POST, its Idempotency-Key (cloned: the
// service stores it).
func call(c *fiber.Ctx) *service.Call {
	ctx := c.UserContext()
	cl := &service.Call{}
	cl.Identity, _ = tenancy.IdentityFrom(ctx)
	cl.Tenant, _ = tenancy.TenantFrom(ctx)
	if c.Method() == fiber.MethodPost {
		cl.IdempotencyKey = strings.Clone(c.Get(idempotencyHeader))
	}
	return cl
}

// answer encodes an operation's result with status, or returns its error
// to the error handler. A replayed answer says so in a header.
func answer(c *fiber.Ctx, cl *service.Call, status int, v any, err error) error {
	if cl.Replayed {
		c.Set("Idempotent-Replayed", "true")
	}
	if err != nil {
		return err
	}
	return c.Status(status).JSON(v)
}

// noContent answers 204, or returns the error to the error handler.
func noContent(c *fiber.Ctx, err error) error {
	if err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}
