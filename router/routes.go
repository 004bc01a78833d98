package router

import "github.com/gofiber/fiber/v2"

// routes lists the whole public API.
func routes(app *fiber.App, s *server) {
	app.Use(s.observe, s.recover, s.deadline)

	api := app.Group("/api")
	api.Post("/auth/login", s.handleLogin)

	authed := api.Group("", s.authenticate)
	authed.Get("/auth/me", s.handleMe)

	tenant := authed.Group("", s.resolveTenant)
	tenant.Get("/agents", s.handleAgentList)
	tenant.Post("/agents", s.handleAgentCreate)
	tenant.Get("/agents/:id", s.handleAgentGet)
	tenant.Patch("/agents/:id", s.handleAgentUpdate)
	tenant.Delete("/agents/:id", s.handleAgentDelete)
}
