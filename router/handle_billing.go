package router

import (
	"github.com/gofiber/fiber/v2"
)

// handleBillingWebhook passes a Stripe delivery to the service, which
// verifies its signature and applies it.
func (s *server) handleBillingWebhook(c *fiber.Ctx) error {
	res, err := s.Service.ApplyStripeEvent(c.UserContext(), c.Body(), c.Get("Stripe-Signature"))
	if err != nil {
		return err
	}
	return c.JSON(res)
}
