// Package catalog is the control-plane store: organizations, users,
// placements and the databases and servers that hold tenant data. It talks
// to the catalog database (database_url) as its owner; tenant data never
// passes through it.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

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
// brought their database up, they get 503 rather than queries that fail,
// and the scheduler fires nothing into them. Every process that serves or
// writes tenant data must call it (with the newest tenant migration it
// embeds) before it reads a tenant.
func (s *Store) RequireTenantVersion(v uint) { s.minTenantVersion = int64(v) }

// databaseServes is the one rule for "this tenant's database may serve
// now", read as Placement.DatabaseReady by Tenant and Placement: in
// service, not left dirty by a failed migration, not quarantined by the
// isolation audit, and at least at the
// tenant schema this binary's queries need ($2: minTenantVersion). The
// gateway admits requests by it and the scheduler fires schedules by it,
// so neither writes where the other would refuse to.
const databaseServes = `(d.state = 'ready' AND NOT d.dirty AND NOT d.quarantined AND d.schema_version >= $2)`

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
	if unreachable(err) {
		// A 503 the client may retry, not a 500: logins and uncached
		// tenants wait for the catalog, the cached ones are served.
		return &tenancy.Error{Code: tenancy.CodeTenantUnavailable, Message: "the service cannot reach its catalog; retry shortly",
			RetryAfter: 2 * time.Second, Err: fmt.Errorf("catalog: %s: %w", what, err)}
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

// unreachable reports an error saying the catalog cannot be reached or
// cannot serve now (refused or failed connection, a server shutting down,
// no answer in time), as opposed to a statement that failed.
func unreachable(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var netErr net.Error // context.DeadlineExceeded is one too
	return errors.As(err, &netErr)
}

// NormalizeEmail is how emails are compared and stored.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
