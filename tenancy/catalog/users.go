package catalog

import (
	"context"

	"github.com/tenantgate/tenantgate/tenancy"
)

// Credentials are a user and the hash its password is checked against.
type Credentials struct {
	User         tenancy.User
	PasswordHash string
}

// UserByEmail returns the user with email (compared without case).
func (s *Store) UserByEmail(ctx context.Context, email string) (Credentials, error) {
	var c Credentials
	u := &c.User
	err := s.pool.QueryRow(ctx, `
		SELECT id::text, organization_id::text, email, role, created_at, password_hash
		FROM users WHERE lower(email) = $1`, NormalizeEmail(email)).
		Scan(&u.ID, &u.OrganizationID, &u.Email, &u.Role, &u.CreatedAt, &c.PasswordHash)
	return c, interpret(err, "user")
}

// User returns the user with id.
func (s *Store) User(ctx context.Context, id string) (tenancy.User, error) {
	var u tenancy.User
	err := s.pool.QueryRow(ctx, `
		SELECT id::text, organization_id::text, email, role, created_at FROM users WHERE id = $1`, id).
		Scan(&u.ID, &u.OrganizationID, &u.Email, &u.Role, &u.CreatedAt)
	return u, interpret(err, "user")
}
