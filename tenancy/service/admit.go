package service

import (
	"context"
	"fmt"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/ratelimit"
)

// Admit resolves the caller's tenant and decides whether it may be served:
// a tenant hint (X-Tenant or subdomain, "" for none) must name the caller's
// own organization (else 404: never confirm another exists), its database
// must be serving, writes of an organization past its payment grace period
// are refused, and so are waitlisted and suspended organizations.
func (s *Service) Admit(ctx context.Context, id tenancy.Identity, hint string, write bool) (tenancy.Tenant, error) {
	t, err := s.Tenants(ctx, id.OrganizationID)
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		return t, ErrUnauthorized // the organization was deleted under the credential
	}
	if err != nil {
		return t, err
	}
	if hint != "" && hint != t.Organization.Slug {
		return t, tenancy.ErrNotFound
	}
	if !t.Placement.DatabaseReady {
		return t, tenancy.Unavailable(fmt.Errorf("database %s is dirty or not ready", t.Placement.DatabaseID), 30*time.Second)
	}
	if since := t.Organization.PastDueSince; write && since != nil && time.Since(*since) >= s.Billing.GracePeriod {
		return t, tenancy.Errorf(tenancy.CodePaymentRequired,
			"the organization's payment is overdue; update the payment method to write again (reads still work)")
	}
	switch t.Organization.Status {
	case tenancy.StatusPending:
		return t, tenancy.Errorf(tenancy.CodePending, "the organization is on the waitlist and not yet approved")
	case tenancy.StatusSuspended:
		return t, tenancy.Errorf(tenancy.CodeSuspended, "the organization is suspended")
	}
	return t, nil
}

// RateLimit counts one request of the tenant against its plan's requests
// per second, across replicas when the limiter is Redis-backed. It returns
// the decision (for the rate-limit headers) and a 429 when refused. A
// limiter failure lets the request through: rate limits protect the
// service, they must not be the reason it is down.
func (s *Service) RateLimit(ctx context.Context, t tenancy.Tenant) (ratelimit.Decision, error) {
	rps := s.Limits(t).RPS
	d, err := s.RateLimiter.Allow(ctx, t.Organization.ID, ratelimit.Limit{RPS: rps})
	if err != nil {
		s.Log.Warn("rate limiter failed; request admitted", "err", err)
		return ratelimit.Decision{Allowed: true}, nil
	}
	if !d.Allowed {
		return d, RateLimited(fmt.Sprintf("the organization's rate limit is exceeded: its plan allows %d requests per second; an upgrade lifts it", rps), d.RetryAfter)
	}
	return d, nil
}
