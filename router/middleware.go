package router

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/metering"
)

const requestIDKey = "requestId"

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Request ids are a random per-process prefix and a counter: unique across
// replicas and restarts without reading crypto/rand on every request. They
// identify, they do not authorize, so they need not be unguessable.
var (
	requestIDPrefix = uuid.NewString()[:8]
	requestCounter  atomic.Uint64
)

func newRequestID() string {
	return requestIDPrefix + "-" + strconv.FormatUint(requestCounter.Add(1), 36)
}

// requestID returns the request's id, making one if no middleware has (an
// error raised by fasthttp before the chain runs still gets one).
func requestID(c *fiber.Ctx) string {
	if id, ok := c.Locals(requestIDKey).(string); ok {
		return id
	}
	// The incoming header is cloned: fasthttp reuses its buffer.
	id := strings.Clone(c.Get(fiber.HeaderXRequestID))
	if !requestIDPattern.MatchString(id) {
		id = newRequestID()
	}
	c.Locals(requestIDKey, id)
	c.Set(fiber.HeaderXRequestID, id)
	return id
}

// observe is the outermost middleware: it gives the request its id, renders
// any error itself (so the status is known here), then logs and counts the
// request once.
func (s *server) observe(c *fiber.Ctx) error {
	start := time.Now()
	id := requestID(c)
	ctx, req := metering.WithRequest(c.UserContext())
	c.SetUserContext(ctx)
	render(c, c.Next())
	status := c.Response().StatusCode()
	route := c.Route().Path
	t, _ := tenancy.TenantFrom(c.UserContext())
	plan, slug := string(t.Organization.Plan), t.Organization.Slug
	elapsed := time.Since(start)
	// The method is cloned: it is a view of fasthttp's reused buffer, and
	// Prometheus keeps label values.
	s.Metrics.observe(strings.Clone(c.Method()), route, status, plan, slug, elapsed, req.DBTime())
	if s.Usage != nil && t.Organization.ID != "" {
		s.Usage.Record(t.Organization.ID, metering.Usage{Requests: 1, BytesSent: int64(len(c.Response().Body()))})
	}
	if status == fiber.StatusTooManyRequests && s.refusalLogs != nil && !s.refusalLogs.Allow() {
		// A client flooding past its rate limit would otherwise write a
		// log line per refusal, on the cores its neighbours share; the
		// refusals are all counted in tenantgate_rate_limited_total.
		return nil
	}
	// LogAttrs with typed attributes: the access log runs on every request
	// and is the largest cost the gateway adds to one.
	s.Log.LogAttrs(c.UserContext(), slog.LevelInfo, "request", slog.String("requestId", id),
		slog.String("method", c.Method()), slog.String("path", c.Path()), slog.String("route", route),
		slog.Int("status", status), slog.Float64("durationMs", float64(elapsed.Microseconds())/1000),
		slog.String("organizationId", t.Organization.ID))
	return nil
}

// render answers err, if any, through the app's one error handler, so
// that the middleware calling it knows the status.
func render(c *fiber.Ctx, err error) {
	if err == nil {
		return
	}
	if herr := c.App().ErrorHandler(c, err); herr != nil {
		c.Status(fiber.StatusInternalServerError)
	}
}

// recover turns a panic into a 500 with the contract's shape and logs it.
func (s *server) recover(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.Log.Error("panic", "requestId", requestID(c), "panic", fmt.Sprint(r))
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	return c.Next()
}

// deadline bounds the request's work: everything below uses c.UserContext().
func (s *server) deadline(c *fiber.Ctx) error {
	// From the user context, which carries the request's span.
	ctx, cancel := context.WithTimeout(c.UserContext(), s.RequestTimeout)
	defer cancel()
	c.SetUserContext(ctx)
	return c.Next()
}

// authenticate proves who is calling (service.Authenticate).
func (s *server) authenticate(c *fiber.Ctx) error {
	id, err := s.Service.Authenticate(c.UserContext(), c.Get(fiber.HeaderAuthorization))
	if err != nil {
		return err
	}
	c.SetUserContext(tenancy.WithIdentity(c.UserContext(), id))
	return c.Next()
}

// resolveTenant finds the caller's organization and where its data lives,
// and admits it (service.Admit).
func (s *server) resolveTenant(c *fiber.Ctx) error {
	ctx := c.UserContext()
	id, _ := tenancy.IdentityFrom(ctx)
	t, err := s.Service.Admit(ctx, id, s.tenantHint(c), c.Method() != fiber.MethodGet)
	if err != nil {
		return err
	}
	c.SetUserContext(tenancy.WithTenant(ctx, t))
	traceTenant(c, t)
	return c.Next()
}

// tenantHint is the slug a request names by X-Tenant or subdomain.
func (s *server) tenantHint(c *fiber.Ctx) string {
	if h := c.Get("X-Tenant"); h != "" {
		return strings.ToLower(h)
	}
	if s.BaseDomain == "" {
		return ""
	}
	host := strings.ToLower(c.Hostname())
	if slug, ok := strings.CutSuffix(host, "."+strings.ToLower(s.BaseDomain)); ok && !strings.Contains(slug, ".") {
		return slug
	}
	return ""
}

// tenantOf returns the request's resolved tenant and identity.
func tenantOf(c *fiber.Ctx) (tenancy.Tenant, tenancy.Identity) {
	ctx := c.UserContext()
	t, _ := tenancy.TenantFrom(ctx)
	id, _ := tenancy.IdentityFrom(ctx)
	return t, id
}

// pathID returns the :id parameter, which must be a UUID, in canonical
// form (uuid.Parse also takes urn:uuid: and braces, which Postgres does
// not); the result is a fresh string, safe to keep.
func pathID(c *fiber.Ctx) (string, error) {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return "", tenancy.Errorf(tenancy.CodeInvalid, "id: must be a UUID")
	}
	return id.String(), nil
}
