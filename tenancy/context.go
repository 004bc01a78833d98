package tenancy

import (
	"context"
	"time"
)

// Identity is who made a request, as proven by its credential.
type Identity struct {
	// UserID is the session's user, or the user who created an API key
	// (empty if that user is gone).
	UserID         string
	OrganizationID string
	Role           Role
	// TokenID is the JWT id of a session, empty for other credentials.
	TokenID string
	// ExpiresAt is when the session token, or the API key if it has an
	// expiry, stops working; zero for a key that never expires.
	ExpiresAt time.Time
	// KeyID and KeyPrefix name the API key of a program's request; empty
	// for sessions.
	KeyID, KeyPrefix string
}

type ctxKey int

const (
	identityKey ctxKey = iota
	tenantKey
)

// WithIdentity returns ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey, id)
}

// IdentityFrom returns the identity in ctx, if any.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey).(Identity)
	return id, ok
}

// WithTenant returns ctx carrying t.
func WithTenant(ctx context.Context, t Tenant) context.Context {
	return context.WithValue(ctx, tenantKey, t)
}

// TenantFrom returns the tenant in ctx, if any.
func TenantFrom(ctx context.Context) (Tenant, bool) {
	t, ok := ctx.Value(tenantKey).(Tenant)
	return t, ok
}
