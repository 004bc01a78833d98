package router

import (
	"github.com/tenantgate/tenantgate/tenancy"
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
}

// Apply makes the caches follow one change of the feed.
func (c Caches) Apply(ch tenancy.Change) {
	switch ch.Kind {
	case tenancy.ChangeOrganization:
		c.Placements.Invalidate(ch.Subject)
	case tenancy.ChangeUser:
		c.Principals.Forget(ch.Subject)
	case tenancy.ChangeToken:
		c.Revocations.Add(ch.Subject, ch.Until)
	case tenancy.ChangeKey:
		c.Keys.Forget(ch.Subject)
	}
}
