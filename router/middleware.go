package router

import (
	"context"
	"errors"
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
	"github.com/tenantgate/tenantgate/tenancy/identity"
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
	render(c, c.Next())
	status := c.Response().StatusCode()
	route := c.Route().Path
	t, _ := tenancy.TenantFrom(c.UserContext())
	plan, slug := string(t.Organization.Plan), t.Organization.Slug
	elapsed := time.Since(start)
	// The method is cloned: it is a view of fasthttp's reused buffer, and
	// Prometheus keeps label values.
	s.Metrics.observe(strings.Clone(c.Method()), route, status, plan, slug, elapsed)
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

var errUnauthorized = tenancy.Errorf(tenancy.CodeUnauthorized, "missing, malformed, expired or revoked credentials")

// maxCredential bounds the Authorization value we parse: a real token or
// key is a few hundred bytes.
const maxCredential = 4096

// authenticate proves who is calling: a session (Bearer JWT, not revoked,
// its user still there, with the user's current role) or a program (Key).
func (s *server) authenticate(c *fiber.Ctx) error {
	scheme, cred, _ := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	if cred == "" || len(cred) > maxCredential {
		return errUnauthorized
	}
	var id tenancy.Identity
	var err error
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		id, err = s.session(c.UserContext(), cred)
	case strings.EqualFold(scheme, "Key"):
		id, err = s.program(c.UserContext(), cred)
	default:
		err = errUnauthorized
	}
	if err != nil {
		return err
	}
	c.SetUserContext(tenancy.WithIdentity(c.UserContext(), id))
	return c.Next()
}

func (s *server) session(ctx context.Context, token string) (tenancy.Identity, error) {
	id, err := s.Tokens.Verify(token)
	if err != nil {
		return id, tenancy.Wrap(err, errUnauthorized.Code, errUnauthorized.Message)
	}
	if s.Revocations.Revoked(id.TokenID) {
		return id, errUnauthorized
	}
	// The user as it is now: deleted users are refused and a changed role
	// applies to tokens issued before the change.
	u, err := s.Principals.User(ctx, id.UserID)
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound || (err == nil && u.OrganizationID != id.OrganizationID) {
		return id, errUnauthorized
	}
	if err != nil {
		return id, err
	}
	id.Role = u.Role
	return id, nil
}

func (s *server) program(ctx context.Context, key string) (tenancy.Identity, error) {
	rec, err := s.Keys.Verify(ctx, key)
	if errors.Is(err, identity.ErrInvalidKey) {
		return tenancy.Identity{}, tenancy.Wrap(err, errUnauthorized.Code, errUnauthorized.Message)
	}
	if err != nil {
		return tenancy.Identity{}, err
	}
	role, err := s.keyRole(ctx, rec)
	if err != nil {
		return tenancy.Identity{}, err
	}
	s.KeyUsed(rec.ID)
	return tenancy.Identity{UserID: rec.CreatedBy, OrganizationID: rec.OrganizationID, Role: role, KeyID: rec.ID, KeyPrefix: rec.Prefix}, nil
}

// keyRole is the role a key acts with: the one its creator had when making
// it, lowered to the creator's current role if that is lower. A key
// belongs to its organization and outlives its creator.
func (s *server) keyRole(ctx context.Context, rec identity.KeyRecord) (tenancy.Role, error) {
	if rec.CreatedBy == "" {
		return rec.Role, nil
	}
	u, err := s.Principals.User(ctx, rec.CreatedBy)
	switch {
	case tenancy.ErrorCode(err) == tenancy.CodeNotFound:
		return rec.Role, nil
	case err != nil:
		return "", err
	case !u.Role.AtLeast(rec.Role):
		return u.Role, nil
	}
	return rec.Role, nil
}

// requireRole refuses callers below min with 403.
func requireRole(min tenancy.Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, _ := tenancy.IdentityFrom(c.UserContext())
		if !id.Role.AtLeast(min) {
			return tenancy.Errorf(tenancy.CodeForbidden, "this needs the %s role or higher", min)
		}
		return c.Next()
	}
}

// resolveTenant finds the caller's organization and where its data lives,
// checks a tenant hint agrees, and admits the organization by status.
func (s *server) resolveTenant(c *fiber.Ctx) error {
	ctx := c.UserContext()
	id, _ := tenancy.IdentityFrom(ctx)
	t, err := s.Tenants(ctx, id.OrganizationID)
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		return errUnauthorized // the organization was deleted under the token
	}
	if err != nil {
		return err
	}
	if hint := s.tenantHint(c); hint != "" && hint != t.Organization.Slug {
		// Never confirm that the hinted organization exists.
		return tenancy.ErrNotFound
	}
	if !t.Placement.DatabaseReady {
		return tenancy.Unavailable(fmt.Errorf("database %s is dirty or not ready", t.Placement.DatabaseID), 30*time.Second)
	}
	if err := s.overdue(c, t); err != nil {
		return err
	}
	switch t.Organization.Status {
	case tenancy.StatusPending:
		return tenancy.Errorf(tenancy.CodePending, "the organization is on the waitlist and not yet approved")
	case tenancy.StatusSuspended:
		return tenancy.Errorf(tenancy.CodeSuspended, "the organization is suspended")
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
