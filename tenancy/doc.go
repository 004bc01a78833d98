// Package tenancy holds tenantgate's domain: organizations, plans, placements,
// roles, the one error type and the context helpers that carry a resolved
// tenant through a request. It imports only the standard library; every
// adapter (catalog store, pool cache, identity, …) lives in a subpackage and
// imports this one, never the other way round.
package tenancy
