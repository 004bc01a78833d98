package router

import (
	"context"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/events"
	"github.com/tenantgate/tenantgate/tenancy/identity"
	"github.com/tenantgate/tenantgate/tenancy/placement"
)

// Caches are a gateway's in-process views of the catalog; the change feed
// tells them what to forget.
type Caches struct {
	Placements  *placement.Cache
	Keys        *identity.Keys
	Principals  *identity.Principals
	Revocations *identity.Revocations
	// Events, when set, has its sockets closed when their credential ends.
	Events *events.Hub
}

// Apply makes the caches follow one change of the feed, and closes the
// event sockets of credentials that ended.
func (c Caches) Apply(ch tenancy.Change) {
	var closes func(events.Principal) bool
	switch ch.Kind {
	case tenancy.ChangeOrganization:
		c.Placements.Invalidate(ch.Subject)
		if c.Events != nil && !c.active(ch.Subject) {
			closes = func(p events.Principal) bool { return p.OrganizationID == ch.Subject }
		}
	case tenancy.ChangeUser:
		c.Principals.Forget(ch.Subject)
		// Its keys' roles may have been lowered with it.
		c.Keys.ForgetCreatedBy(ch.Subject)
		closes = func(p events.Principal) bool { return p.UserID == ch.Subject && p.KeyPrefix == "" }
	case tenancy.ChangeToken:
		c.Revocations.Add(ch.Subject, ch.Until)
		closes = func(p events.Principal) bool { return p.TokenID == ch.Subject }
	case tenancy.ChangeKey:
		c.Keys.Forget(ch.Subject)
		closes = func(p events.Principal) bool { return p.KeyPrefix == ch.Subject }
	}
	if c.Events != nil && closes != nil {
		c.Events.Disconnect(closes)
	}
}

// active reports whether an organization still exists and is active.
func (c Caches) active(orgID string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t, err := c.Placements.Lookup(ctx, orgID)
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		return false
	}
	return err != nil || t.Organization.Status == tenancy.StatusActive
}
