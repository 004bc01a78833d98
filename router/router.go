// Package router is tenantgate's HTTP face: the public API on Fiber (routes.go
// lists all of it), its middleware chain (request id, recover, deadline,
// access log, authentication, tenant resolution) and the ops listener. It
// turns errors into HTTP answers in one place, errors.go.
package router

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/events"
	"github.com/tenantgate/tenantgate/tenancy/metering"
	"github.com/tenantgate/tenantgate/tenancy/service"
)

// BodyLimit is the largest request body accepted (CONTRACT §3).
const BodyLimit = 1 << 20

// Deps is what the public API needs: the application layer, and what is
// HTTP's alone.
type Deps struct {
	// Service runs every operation; handlers decode, call it once, encode.
	Service *service.Service
	// Events holds the WebSocket clients (nil: no event stream).
	Events *events.Hub
	// AllowedOrigins may open event streams from a browser.
	AllowedOrigins []string
	// Usage meters each tenant's requests, bytes and socket use (nil:
	// none).
	Usage   UsageRecorder
	Log     *slog.Logger
	Metrics *Metrics
	// Tracer, when set, traces each request (OpenTelemetry).
	Tracer trace.TracerProvider
	// RequestTimeout bounds each request's work; default 10s.
	RequestTimeout time.Duration
	// BaseDomain enables <slug>.<BaseDomain> tenant hints when set.
	BaseDomain string
	// ProxyHeader names the header holding the client's address (e.g.
	// X-Forwarded-For); it is believed only from TrustedProxies. Throttles
	// key on the address (see clientAddr).
	ProxyHeader    string
	TrustedProxies []netip.Prefix
}

// UsageRecorder adds to an organization's metered usage (the replica's
// metering.Meter).
type UsageRecorder interface {
	Record(orgID string, u metering.Usage)
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
	app := newApp(d.Log)
	s := &server{Deps: d, refusalLogs: rate.NewLimiter(refusalLogsPerSecond, refusalLogsPerSecond)}
	routes(app, s)
	return app
}

// newApp is a Fiber app with timeouts (Fiber's defaults are unlimited, an
// invitation to slowloris), the body limit and the one error handler.
func newApp(log *slog.Logger) *fiber.App {
	app := fiber.New(fiber.Config{
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
	// refusalLogs bounds the access log lines of 429 answers.
	refusalLogs *rate.Limiter
}

// clientIP is the request's client address (see clientAddr).
func (s *server) clientIP(c *fiber.Ctx) string {
	return clientAddr(c, s.ProxyHeader, s.TrustedProxies)
}
