// Package service is tenantgate's application layer: one method per
// operation (CreateAgent, CreateAPIKey, CompleteTask, ChangePlan, Signup…),
// called alike by the HTTP router, the CLI, the Stripe webhook and the
// provisioner's jobs, so that every rule of an operation is written once.
//
// Each method that acts for a caller takes a *Call (who asks, for which
// tenant, under which Idempotency-Key) and does, in this order:
//
//  1. authorization: the role the operation needs, from the caller's
//     current identity; nothing, a replay included, runs before it;
//  2. idempotency: a claim keyed by (organization, principal, key), made
//     only after authorization; the stored answer holds no secret and the
//     request is fingerprinted with an HMAC under a server key, never an
//     unsalted hash;
//  3. plan limits;
//  4. the writes: tenant data only through tenantdb's scope; where an
//     operation also writes the catalog, the rule that keeps the two
//     consistent is stated next to the sequence;
//  5. after the commit, the events.
//
// Methods return *tenancy.Error values (or errors wrapping them); the router
// turns codes into statuses in one place.
package service
