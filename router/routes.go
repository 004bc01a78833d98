package router

import (
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
)

// routes lists the whole public API.
func routes(app *fiber.App, s *server) {
	app.Use(s.observe)
	if s.Tracer != nil {
		app.Use(tracing(s.Tracer))
	}
	app.Use(s.recover, s.deadline)
	app.Get("/openapi.json", s.handleOpenAPI)

	api := app.Group("/api")
	api.Post("/auth/signup", s.handleSignup)
	api.Post("/auth/login", s.handleLogin)
	api.Post("/billing/webhook", s.handleBillingWebhook)

	// Before the authenticated group: the credential may come as a query
	// parameter, which eventsToken turns into the header first.
	api.Get("/events", eventsToken, s.authenticate, s.resolveTenant, s.rateLimit, s.eventsUpgrade,
		websocket.New(s.handleEvents, websocket.Config{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 4096}))

	authed := api.Group("", s.authenticate)
	authed.Post("/auth/logout", s.handleLogout)
	authed.Get("/auth/me", s.handleMe)

	// Roles, limits and Idempotency-Key are the service's: each operation
	// authorizes first, so no path (a replay included) skips a role check.
	tenant := authed.Group("", s.resolveTenant, s.rateLimit)
	tenant.Get("/agents", s.handleAgentList)
	tenant.Post("/agents", s.handleAgentCreate)
	tenant.Get("/agents/:id", s.handleAgentGet)
	tenant.Patch("/agents/:id", s.handleAgentUpdate)
	tenant.Delete("/agents/:id", s.handleAgentDelete)
	tenant.Get("/tasks", s.handleTaskList)
	tenant.Post("/tasks", s.handleTaskCreate)
	tenant.Get("/tasks/:id", s.handleTaskGet)
	tenant.Patch("/tasks/:id", s.handleTaskUpdate)
	tenant.Delete("/tasks/:id", s.handleTaskDelete)
	tenant.Post("/tasks/:id/start", s.handleTaskStart)
	tenant.Post("/tasks/:id/complete", s.handleTaskComplete)
	tenant.Get("/messages", s.handleMessageList)
	tenant.Post("/messages", s.handleMessageCreate)
	tenant.Get("/activity", s.handleActivityList)
	tenant.Get("/sessions", s.handleSessionList)
	tenant.Post("/sessions", s.handleSessionCreate)
	tenant.Patch("/sessions/:id", s.handleSessionUpdate)
	tenant.Get("/schedules", s.handleScheduleList)
	tenant.Post("/schedules", s.handleScheduleCreate)
	tenant.Patch("/schedules/:id", s.handleScheduleUpdate)
	tenant.Delete("/schedules/:id", s.handleScheduleDelete)
	tenant.Get("/organization", s.handleOrganization)
	tenant.Get("/organization/export", s.handleExport)
	tenant.Get("/organization/usage", s.handleUsage)
	tenant.Get("/billing", s.handleBilling)
	tenant.Get("/api-keys", s.handleKeyList)
	tenant.Post("/api-keys", s.handleKeyCreate)
	tenant.Delete("/api-keys/:id", s.handleKeyRevoke)
	tenant.Get("/users", s.handleUserList)
	tenant.Post("/users", s.handleUserCreate)
	tenant.Patch("/users/:id", s.handleUserUpdate)
	tenant.Delete("/users/:id", s.handleUserDelete)
}
