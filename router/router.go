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
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/events"
	"github.com/tenantgate/tenantgate/tenancy/identity"
	"github.com/tenantgate/tenantgate/tenancy/ratelimit"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
	"github.com/tenantgate/tenantgate/tenancy/throttle"
)

// BodyLimit is the largest request body accepted (CONTRACT §3).
const BodyLimit = 1 << 20

// TenantLookup resolves an organization and its placement (the placement
// cache, in production).
type TenantLookup func(ctx context.Context, orgID string) (tenancy.Tenant, error)

// Publisher records a change every replica must apply (tenancy/changes).
type Publisher interface {
	Publish(ctx context.Context, kind, subject string, until time.Time) error
}

// OrganizationCreator places a new organization with its owner (the
// provisioner, in production).
type OrganizationCreator func(ctx context.Context, slug, name, ownerEmail, ownerPasswordHash string, status tenancy.Status) (tenancy.Organization, error)

// LoginPolicy throttles failed logins.
type LoginPolicy struct {
	MaxFailures      int // per account and client address in a window
	MaxFailuresPerIP int // per client address, any account
	Window           time.Duration
}

// Deps is what the public API needs.
type Deps struct {
	Catalog *catalog.Store
	Tenants TenantLookup
	Data    tenantdb.Stores
	// Plans are each plan's limits; an organization's overrides apply on top.
	Plans       map[tenancy.Plan]tenancy.Limits
	Tokens      *identity.Tokens
	Keys        *identity.Keys
	Principals  *identity.Principals
	Revocations *identity.Revocations
	Changes     Publisher
	Throttle    throttle.Counter
	RateLimiter ratelimit.Limiter
	Login       LoginPolicy
	// SignupMode is "open" or "waitlist".
	SignupMode string
	// CreateOrganization serves signups.
	CreateOrganization OrganizationCreator
	// Billing is how Stripe drives plans.
	Billing Billing
	// Events fans tenant events out to WebSocket clients (nil: none).
	Events *events.Hub
	// AllowedOrigins may open event streams from a browser.
	AllowedOrigins []string
	// ScheduleDue records when an organization next has a schedule due
	// (the scheduler's index in the catalog).
	ScheduleDue func(ctx context.Context, orgID string, at time.Time) error
	// KeyUsed records, in the background, that an API key was used.
	KeyUsed func(keyID string)
	Log     *slog.Logger
	Metrics *Metrics
	// Tracer, when set, traces each request (OpenTelemetry).
	Tracer trace.TracerProvider
	// RequestTimeout bounds each request's work; default 10s.
	RequestTimeout time.Duration
	// BaseDomain enables <slug>.<BaseDomain> tenant hints when set.
	BaseDomain string
	// ProxyHeader names the header holding the client's address (e.g.
	// X-Forwarded-For) when the gateway sits behind a trusted proxy; empty
	// uses the connection's address. Throttles key on it.
	ProxyHeader string
	// PasswordParams are the argon2id costs of new hashes.
	PasswordParams identity.PasswordParams
}

// refusalLogsPerSecond is how many 429 answers a second get an access log
// line, over all tenants.
const refusalLogsPerSecond = 20

// New returns the public API app.
func New(d Deps) *fiber.App {
	if d.RequestTimeout == 0 {
		d.RequestTimeout = 10 * time.Second
	}
	if d.Metrics == nil {
		d.Metrics = NewMetrics(nil, 0)
	}
	if d.Login.Window == 0 {
		d.Login = LoginPolicy{MaxFailures: 5, MaxFailuresPerIP: 30, Window: 15 * time.Minute}
	}
	if d.PasswordParams == (identity.PasswordParams{}) {
		d.PasswordParams = identity.DefaultPasswordParams
	}
	if d.KeyUsed == nil {
		d.KeyUsed = func(string) {}
	}
	app := newApp(d.Log, d.ProxyHeader)
	s := &server{Deps: d, dummyHash: identity.DummyHash(d.PasswordParams),
		hashSlots: make(chan struct{}, 2*runtime.GOMAXPROCS(0)), refusalLogs: rate.NewLimiter(refusalLogsPerSecond, refusalLogsPerSecond)}
	routes(app, s)
	return app
}

// newApp is a Fiber app with timeouts (Fiber's defaults are unlimited, an
// invitation to slowloris), the body limit and the one error handler.
func newApp(log *slog.Logger, proxyHeader string) *fiber.App {
	app := fiber.New(fiber.Config{
		ProxyHeader:  proxyHeader,
		AppName:      "tenantgate",
		BodyLimit:    BodyLimit,
		ReadTimeout:  15 * time.Second,
		WriteTimeout: 30 * time.Second,
		IdleTimeout:  90 * time.Second,
		// Headers up to 72 KiB: an oversized credential must still reach
		// authentication and get a 401, not a transport error.
		ReadBufferSize:        72 << 10,
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
	// refusalLogs bounds the access log lines of 429 answers.
	refusalLogs *rate.Limiter
}
