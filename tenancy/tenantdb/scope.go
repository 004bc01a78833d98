// Package tenantdb is the only way to reach tenant data. A Scope runs each
// unit of work in one transaction whose first statement sets
// app.organization_id transaction-locally, so row-level security admits the
// tenant's rows and no others; every query also filters by organization
// explicitly. Stores for each resource sit on top of the Scope.
package tenantdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/tenancy"
)

// LeaseFunc borrows the pool of a database; release must be called with the
// outcome of the work so the pool cache's breaker learns of failures.
type LeaseFunc func(ctx context.Context, databaseID string) (pool *pgxpool.Pool, release func(error), err error)

// Scope runs tenant-scoped units of work.
type Scope struct {
	lease LeaseFunc
}

// NewScope returns a Scope borrowing pools through lease.
func NewScope(lease LeaseFunc) *Scope { return &Scope{lease: lease} }

// The setting is transaction-local (third argument true): a pooled
// connection never carries one tenant's setting into another's request.
const setOrg = `SELECT set_config('app.organization_id', $1, true)`

// moveRetryAfter is what a write during a tier move is told to wait.
const moveRetryAfter = 5 * time.Second

// connectRetryAfter is what a request is told to wait when the tenant's
// database cannot be reached or cannot serve.
const connectRetryAfter = 2 * time.Second

// Read runs the statements queue adds to a batch, after the organization
// setting, in one implicit transaction and one network round trip.
func (s *Scope) Read(ctx context.Context, t tenancy.Tenant, queue func(b *pgx.Batch)) error {
	return s.run(ctx, t, func(pool *pgxpool.Pool) error {
		b := &pgx.Batch{}
		b.Queue(setOrg, t.Organization.ID)
		queue(b)
		return pool.SendBatch(ctx, b).Close()
	})
}

// Write is Read for statements that change data: refused with 503 while the
// tenant is being moved.
func (s *Scope) Write(ctx context.Context, t tenancy.Tenant, queue func(b *pgx.Batch)) error {
	if err := writable(t); err != nil {
		return err
	}
	return s.Read(ctx, t, queue)
}

// Tx runs fn in an explicit transaction that starts with the organization
// setting, for work that must decide between statements.
func (s *Scope) Tx(ctx context.Context, t tenancy.Tenant, fn func(tx pgx.Tx) error) error {
	if err := writable(t); err != nil {
		return err
	}
	return s.run(ctx, t, func(pool *pgxpool.Pool) error {
		return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, setOrg, t.Organization.ID); err != nil {
				return err
			}
			return fn(tx)
		})
	})
}

// Conn lends fn a connection of the tenant's pool, as the application role,
// for work that runs its own transaction over many statements (an export
// reading every table in one snapshot). fn must set app.organization_id
// transaction-locally and filter by organization itself, as the archive
// package does; nothing it sets may outlive its transaction, since the
// connection returns to the pool.
func (s *Scope) Conn(ctx context.Context, t tenancy.Tenant, fn func(conn *pgx.Conn) error) error {
	return s.run(ctx, t, func(pool *pgxpool.Pool) error {
		return pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error { return fn(c.Conn()) })
	})
}

func writable(t tenancy.Tenant) error {
	if t.Placement.State == tenancy.PlacementMoving {
		return tenancy.Unavailable(errors.New("tenant is being moved"), moveRetryAfter)
	}
	return nil
}

func (s *Scope) run(ctx context.Context, t tenancy.Tenant, fn func(*pgxpool.Pool) error) (err error) {
	if t.Organization.ID == "" || t.Placement.DatabaseID == "" {
		return fmt.Errorf("tenantdb: unresolved tenant %v", t)
	}
	pool, release, err := s.lease(ctx, t.Placement.DatabaseID)
	if err != nil {
		return interpret(err)
	}
	// Deferred so a panicking callback still returns its lease: a lease
	// never returned keeps an evicted pool, and its connections, forever.
	defer func() { release(err) }()
	err = fn(pool)
	return interpret(err)
}

// interpret turns driver errors into tenancy errors once, here. Messages are
// generic: a constraint error must not reveal another tenant's rows.
func interpret(err error) error {
	if err == nil {
		return nil
	}
	var te *tenancy.Error
	if errors.As(err, &te) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return tenancy.ErrNotFound
	}
	if errors.Is(err, context.DeadlineExceeded) {
		// The request's deadline passed, most often waiting for a busy pool.
		return tenancy.Unavailable(err, time.Second)
	}
	if isConnectError(err) {
		// Before the SQLSTATE switch: whatever refused the connection (the
		// database not accepting connections 55000, CONNECT revoked 42501,
		// authentication 28xxx, a missing database 3D000, a server
		// starting up 57P03, a refused dial, a connect timeout), it is the
		// tenant's database that cannot serve, never a fault of the
		// request. The same codes on a statement are other matters.
		return tenancy.Unavailable(err, connectRetryAfter)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505":
			return tenancy.Wrap(err, tenancy.CodeConflict, "an object with this name already exists")
		case "23503":
			return tenancy.Wrap(err, tenancy.CodeNotFound, "a referenced object was not found")
		case "22001":
			return tenancy.Wrap(err, tenancy.CodeInvalid, "a value is too long")
		case "22021", "22P05":
			return tenancy.Wrap(err, tenancy.CodeInvalid, "a value is not valid text")
		case "57014":
			return tenancy.Unavailable(err, time.Second)
		}
		if pgErr.Code[:2] == "TG" {
			// The tenant is fenced in this database: it is being moved.
			return tenancy.Unavailable(err, moveRetryAfter)
		}
		// Connection exceptions, resources, operator intervention, and a
		// database that is gone: the tenant's database cannot serve now.
		if class := pgErr.Code[:2]; class == "08" || class == "53" || class == "57" || pgErr.Code == "3D000" {
			return tenancy.Unavailable(err, connectRetryAfter)
		}
		return fmt.Errorf("tenantdb: %w", err)
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return tenancy.Unavailable(err, connectRetryAfter)
	}
	return fmt.Errorf("tenantdb: %w", err)
}

func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}
