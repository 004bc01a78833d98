package provisioner

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// maintenance keeps, per PostgreSQL server, a few connections to its
// maintenance database for creating databases. A new connection is a new
// backend, and a new backend's first CREATE DATABASE loads the catalogs it
// reads: on the benchmark machine the two cost about 16 ms and 20 ms of a
// creation that otherwise takes about 60 ms.
type maintenance struct {
	mu     sync.Mutex
	pools  map[string]*pgxpool.Pool // by maintenance DSN
	closed bool
}

// maxMaintenanceConns bounds each server's pool: the worker's default
// concurrency, so parallel jobs do not queue for a connection.
const maxMaintenanceConns = 4

var errClosed = errors.New("provisioner: closed")

// pool returns the pool of serverDSN's server, opening it on first use
// (without connecting: connections are made as they are needed).
func (m *maintenance) pool(serverDSN string) (*pgxpool.Pool, error) {
	dsn, err := schema.WithDatabase(serverDSN, "postgres")
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errClosed
	}
	if p, ok := m.pools[dsn]; ok {
		return p, nil
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("maintenance connection to %s: %w", schema.Redact(dsn), err)
	}
	cfg.MaxConns = maxMaintenanceConns
	// An idle provisioner gives its connections back to the server.
	cfg.MaxConnIdleTime = time.Minute
	cfg.ConnConfig.RuntimeParams["application_name"] = "tenantgate-provisioner"
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("maintenance connection to %s: %w", schema.Redact(dsn), err)
	}
	if m.pools == nil {
		m.pools = map[string]*pgxpool.Pool{}
	}
	m.pools[dsn] = p
	return p, nil
}

// close closes every pool; later provisionings fail with errClosed.
func (m *maintenance) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for _, p := range m.pools {
		p.Close()
	}
	m.pools = nil
}

// withTemplateLock runs fn on a maintenance connection to serverDSN's
// server holding the server's template lock: shared to copy the template
// (copies run side by side), exclusive to make or migrate it (nothing
// copies a template while it changes).
func (m *maintenance) withTemplateLock(ctx context.Context, serverDSN string, exclusive bool, fn func(*pgx.Conn) error) error {
	pool, err := m.pool(serverDSN)
	if err != nil {
		return err
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("maintenance connection to %s: %w", schema.Redact(serverDSN), err)
	}
	defer conn.Release()
	lock, unlock := "pg_advisory_lock_shared", "pg_advisory_unlock_shared"
	if exclusive {
		lock, unlock = "pg_advisory_lock", "pg_advisory_unlock"
	}
	id := schema.LockID(templateLock)
	if _, err := conn.Exec(ctx, "SELECT "+lock+"($1)", id); err != nil {
		return fmt.Errorf("template lock: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT "+unlock+"($1)", id); err != nil {
			// A session lock lives as long as its session: end it rather
			// than give the pool a connection that still holds the lock.
			_ = conn.Hijack().Close(context.WithoutCancel(ctx))
		}
	}()
	return fn(conn.Conn())
}

// templateLock is the name of a server's template lock (see
// schema.LockID).
const templateLock = "tenantgate.template"
