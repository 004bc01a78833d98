package service

import (
	"context"
	"crypto/rand"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/events"
	"github.com/tenantgate/tenantgate/tenancy/identity"
	"github.com/tenantgate/tenantgate/tenancy/metering"
	"github.com/tenantgate/tenantgate/tenancy/ratelimit"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
	"github.com/tenantgate/tenantgate/tenancy/throttle"
)

// TenantLookup resolves an organization and its placement (the placement
// cache, in a gateway).
type TenantLookup func(ctx context.Context, orgID string) (tenancy.Tenant, error)

// Publisher records a change every replica must apply (tenancy/changes).
type Publisher interface {
	Publish(ctx context.Context, kind, subject string, until time.Time) error
}

// EventPublisher sends tenant events to the organization's sockets.
type EventPublisher interface {
	Publish(ctx context.Context, e events.Event)
}

// OrganizationCreator places a new organization with its owner (the
// provisioner, in production).
type OrganizationCreator func(ctx context.Context, slug, name, ownerEmail, ownerPasswordHash string, status tenancy.Status) (tenancy.Organization, error)

// LoginPolicy throttles password guessing.
type LoginPolicy struct {
	MaxFailures      int // guesses per account and client address in a window
	MaxFailuresPerIP int // guesses per client address, any account
	Window           time.Duration
}

// Billing is how Stripe drives plans.
type Billing struct {
	// WebhookSecret verifies Stripe-Signature; empty: the webhook answers 503.
	WebhookSecret string
	// Prices maps a Stripe price id to the plan it sells.
	Prices map[string]tenancy.Plan
	// GracePeriod is how long a past-due organization keeps writing.
	GracePeriod time.Duration
}

// Deps is what the operations need. Catalog, Data, Plans, Changes are
// required; the rest have defaults or are optional.
type Deps struct {
	Catalog *catalog.Store
	Data    tenantdb.Stores
	// Tenants resolves organizations; default: the catalog, uncached.
	Tenants TenantLookup
	// Plans are each plan's limits; an organization's overrides apply on top.
	Plans       map[tenancy.Plan]tenancy.Limits
	Tokens      *identity.Tokens
	Keys        *identity.Keys
	Principals  *identity.Principals
	Revocations *identity.Revocations
	Changes     Publisher
	// Events fans tenant events out (nil: none).
	Events        EventPublisher
	Throttle      throttle.Counter
	RateLimiter   ratelimit.Limiter
	LoginThrottle LoginPolicy
	// SignupMode is "open" or "waitlist".
	SignupMode         string
	CreateOrganization OrganizationCreator
	Billing            Billing
	// KeyUsed records, in the background, that an API key was used.
	KeyUsed func(keyID string)
	// ExportsPerDay bounds owners' exports of their organization; default 4.
	ExportsPerDay int
	// Usage reads metered usage (nil: GET /api/organization/usage is 503).
	Usage *metering.Store
	// IdempotencySecret keys the HMAC that fingerprints requests under an
	// Idempotency-Key; every replica needs the same one (cmd derives it
	// from jwt_secret). Empty: a random key, for one process.
	IdempotencySecret []byte
	PasswordParams    identity.PasswordParams
	Log               *slog.Logger
}

// Service is the application layer.
type Service struct {
	Deps
	// dummyHash is checked for unknown emails, so they cost what a wrong
	// password does; made on first use (the CLI never needs it).
	dummyHash func() string
	hashSlots chan struct{} // see hashSlot
}

// New returns the application layer over d.
func New(d Deps) *Service {
	if d.LoginThrottle.Window == 0 {
		d.LoginThrottle = LoginPolicy{MaxFailures: 5, MaxFailuresPerIP: 30, Window: 15 * time.Minute}
	}
	if d.PasswordParams == (identity.PasswordParams{}) {
		d.PasswordParams = identity.DefaultPasswordParams
	}
	if d.ExportsPerDay == 0 {
		d.ExportsPerDay = 4
	}
	if d.KeyUsed == nil {
		d.KeyUsed = func(string) {}
	}
	if d.Tenants == nil {
		d.Tenants = d.Catalog.Tenant
	}
	if len(d.IdempotencySecret) == 0 {
		d.IdempotencySecret = make([]byte, 32)
		_, _ = rand.Read(d.IdempotencySecret)
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	params := d.PasswordParams
	return &Service{Deps: d, dummyHash: sync.OnceValue(func() string { return identity.DummyHash(params) }),
		hashSlots: make(chan struct{}, 2*runtime.GOMAXPROCS(0))}
}

// Call is one request for an operation: who asks, for which tenant, and
// the Idempotency-Key it carries, if any. The service sets Replayed when
// its answer is a stored one.
type Call struct {
	Identity       tenancy.Identity
	Tenant         tenancy.Tenant
	IdempotencyKey string
	Replayed       bool
}

// require refuses a caller below min with 403. It is the first thing every
// operation for a caller does.
func require(c *Call, min tenancy.Role) error {
	if !c.Identity.Role.AtLeast(min) {
		return tenancy.Errorf(tenancy.CodeForbidden, "this needs the %s role or higher", min)
	}
	return nil
}

// Limits are the tenant's effective limits: its plan's, with overrides.
func (s *Service) Limits(t tenancy.Tenant) tenancy.Limits {
	return t.Organization.Overrides.Apply(s.Plans[t.Organization.Plan])
}

// emit publishes an event of the call's organization; call it after the
// change committed.
func (s *Service) emit(ctx context.Context, c *Call, typ string, data any) {
	if s.Events == nil {
		return
	}
	s.Events.Publish(context.WithoutCancel(ctx), events.Event{Type: typ, OrganizationID: c.Tenant.Organization.ID, Data: data})
}

// hashSlot bounds how many password hashes run at once: each argon2id
// check takes 19 MiB and a core for tens of milliseconds, so an unbounded
// burst of logins could exhaust the gateway's memory. A request that cannot
// get a slot within a second is told to retry.
func (s *Service) hashSlot(ctx context.Context) (release func(), err error) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case s.hashSlots <- struct{}{}:
		return func() { <-s.hashSlots }, nil
	case <-t.C:
	case <-ctx.Done():
	}
	return nil, RateLimited("too many password checks at once; retry shortly", time.Second)
}

// hashPassword hashes a new password within a hash slot.
func (s *Service) hashPassword(ctx context.Context, password string) (string, error) {
	release, err := s.hashSlot(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return identity.HashPassword(password, s.PasswordParams)
}

// RateLimited is a 429 with a Retry-After of at least a second.
func RateLimited(message string, retry time.Duration) error {
	return &tenancy.Error{Code: tenancy.CodeRateLimited, Message: message, RetryAfter: max(retry, time.Second)}
}
