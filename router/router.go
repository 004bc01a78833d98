// Package router is tenantgate's HTTP face: the public API on Fiber (routes.go
// lists all of it), its middleware chain (request id, recover, deadline,
// access log, authentication, tenant resolution) and the ops listener. It
// turns errors into HTTP answers in one place, errors.go.
package router

import (
	"context"
	"encoding/json"
	"log/slog"
	"runtime"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/identity"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// BodyLimit is the largest request body accepted (CONTRACT §3).
const BodyLimit = 1 << 20

// TenantLookup resolves an organization and its placement (the placement
// cache, in production).
type TenantLookup func(ctx context.Context, orgID string) (tenancy.Tenant, error)

// Deps is what the public API needs.
type Deps struct {
	Catalog *catalog.Store
	Tenants TenantLookup
	Agents  *tenantdb.Agents
	Tokens  *identity.Tokens
	Log     *slog.Logger
	Metrics *Metrics
	// RequestTimeout bounds each request's work; default 10s.
	RequestTimeout time.Duration
	// BaseDomain enables <slug>.<BaseDomain> tenant hints when set.
	BaseDomain string
	// PasswordParams are the argon2id costs of new hashes.
	PasswordParams identity.PasswordParams
}

// New returns the public API app.
func New(d Deps) *fiber.App {
	if d.RequestTimeout == 0 {
		d.RequestTimeout = 10 * time.Second
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil)
	}
	app := newApp(d.Log)
	s := &server{Deps: d, dummyHash: identity.DummyHash(d.PasswordParams),
		hashSlots: make(chan struct{}, 2*runtime.GOMAXPROCS(0))}
	routes(app, s)
	return app
}

// newApp is a Fiber app with timeouts (Fiber's defaults are unlimited, an
// invitation to slowloris), the body limit and the one error handler.
func newApp(log *slog.Logger) *fiber.App {
	app := fiber.New(fiber.Config{
		AppName:               "tenantgate",
		BodyLimit:             BodyLimit,
		ReadTimeout:           15 * time.Second,
		WriteTimeout:          30 * time.Second,
		IdleTimeout:           90 * time.Second,
		ReadBufferSize:        16 << 10,
		DisableStartupMessage: true,
		ErrorHandler:          errorHandler(log),
	})
	refuseUnknownMethods(app)
	return app
}

// refuseUnknownMethods answers a request with a method Fiber does not know
// in the contract's error shape; Fiber itself would answer in plain text
// before any middleware runs.
func refuseUnknownMethods(app *fiber.App) {
	known := map[string]bool{}
	for _, m := range app.Config().RequestMethods {
		known[m] = true
	}
	srv := app.Server()
	next := srv.Handler
	srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if known[string(ctx.Method())] {
			next(ctx)
			return
		}
		var body errorBody
		body.Error.Code, body.Error.Message = tenancy.CodeInvalid, "unsupported HTTP method"
		body.RequestID = newRequestID()
		raw, _ := json.Marshal(body)
		ctx.Response.Header.Set(fiber.HeaderXRequestID, body.RequestID)
		ctx.SetContentType(fiber.MIMEApplicationJSON)
		ctx.SetStatusCode(fiber.StatusBadRequest)
		ctx.SetBody(raw)
	}
}

// server holds the handlers' dependencies.
type server struct {
	Deps
	dummyHash string
	hashSlots chan struct{} // see hashSlot
}
