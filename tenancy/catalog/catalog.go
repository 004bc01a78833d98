// Package catalog is the control-plane store: organizations, users,
// placements and the databases and servers that hold tenant data. It talks
// to the catalog database (database_url) as its owner; tenant data never
// passes through it.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/tenantgate/tenantgate/tenancy"
)

// Store reads and writes the catalog.
type Store struct {
	pool *pgxpool.Pool
	// minTenantVersion is the tenant schema this binary's queries need: a
	// database below it is not ready for them (see RequireTenantVersion).
	minTenantVersion int64
}

// RequireTenantVersion makes tenants on databases whose schema is older
// than v read as not ready: after an upgrade, until `migrate tenants` has
// brought their database up, they get 503 rather than queries that fail.
func (s *Store) RequireTenantVersion(v uint) { s.minTenantVersion = int64(v) }

// New returns a Store over pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Ping reports whether the catalog answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// interpret turns driver errors into tenancy errors once, at the boundary:
// no row is not_found, a unique violation is a conflict whose message names
// what collided without echoing other tenants' data.
func interpret(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return tenancy.Wrap(err, tenancy.CodeNotFound, what+" not found")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return tenancy.Wrap(err, tenancy.CodeConflict, what+" already exists")
		case "22021", "22P05", "22P02":
			// Bad encoding, NUL, or text that is not the column's type.
			return tenancy.Wrap(err, tenancy.CodeInvalid, "a value is not valid for "+what)
		}
	}
	return fmt.Errorf("catalog: %s: %w", what, err)
}

// NormalizeEmail is how emails are compared and stored.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
