package router

import (
	_ "embed" // for openAPIDocument

	"github.com/gofiber/fiber/v2"
)

// openAPIDocument is the OpenAPI 3 description of the public API (CONTRACT
// §3). It is written by hand next to routes.go; openapi_test.go fails when
// the two name different routes.
//
//go:embed openapi.json
var openAPIDocument []byte

// handleOpenAPI serves the document. It needs no credentials: it describes
// the API, not any organization's data.
func (s *server) handleOpenAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(openAPIDocument)
}
