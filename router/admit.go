package router

import (
	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/ratelimit"
)

// rateLimit holds each organization to its plan's requests per second
// (service.RateLimit) and tells the client where it stands.
func (s *server) rateLimit(c *fiber.Ctx) error {
	t, _ := tenancy.TenantFrom(c.UserContext())
	d, err := s.Service.RateLimit(c.UserContext(), t)
	if d.Limit > 0 {
		for k, v := range ratelimit.Headers(d) {
			c.Set(k, v)
		}
	}
	if err != nil {
		if tenancy.ErrorCode(err) == tenancy.CodeRateLimited {
			s.Metrics.rateLimited.WithLabelValues(string(t.Organization.Plan)).Inc()
		}
		return err
	}
	return c.Next()
}
