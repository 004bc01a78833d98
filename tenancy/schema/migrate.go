package schema

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"time"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// Version is a database's migration state.
type Version struct {
	Version uint
	Dirty   bool
}

// ErrDirty reports a database left dirty by a failed migration: a person
// must fix it and force its version before it is used again.
var ErrDirty = errors.New("schema: database is dirty")

// Migrate brings the database at dsn to the newest migration in dir of
// migrations (an embedded FS), or to version to when to > 0.
//
// golang-migrate creates its ledger table before taking its own lock and
// waits on that lock forever, so callers are serialized first by a session
// advisory lock of ours, taken with ctx so it can be abandoned.
func Migrate(ctx context.Context, dsn string, migrations fs.FS, dir string, to uint) (Version, error) {
	return withLock(ctx, dsn, "tenantgate.migrate", func(conn *pgx.Conn) (Version, error) {
		return runMigrate(ctx, conn, migrations, dir, to)
	})
}

func runMigrate(ctx context.Context, conn *pgx.Conn, migrations fs.FS, dir string, to uint) (Version, error) {
	src, err := iofs.New(migrations, dir)
	if err != nil {
		return Version{}, fmt.Errorf("schema: migrations %s: %w", dir, err)
	}
	// The driver closes the *sql.DB it is given, so it gets one of its own.
	db := stdlib.OpenDB(*conn.Config())
	drv, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{StatementTimeout: 5 * time.Minute})
	if err != nil {
		db.Close()
		return Version{}, fmt.Errorf("schema: migrate driver: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		drv.Close()
		return Version{}, fmt.Errorf("schema: migrate: %w", err)
	}
	defer m.Close()
	m.LockTimeout = 30 * time.Second
	stop := bridgeCancel(ctx, m)
	defer stop()

	if to > 0 {
		err = m.Migrate(to)
	} else {
		err = m.Up()
	}
	if err != nil && !errors.Is(err, migrate.ErrNoChange) {
		var dirty migrate.ErrDirty
		if errors.As(err, &dirty) {
			return Version{Version: uint(dirty.Version), Dirty: true}, fmt.Errorf("%w at version %d", ErrDirty, dirty.Version)
		}
		v, _ := versionOf(m)
		return v, fmt.Errorf("schema: migrate: %w", err)
	}
	return versionOf(m)
}

// bridgeCancel asks golang-migrate, which takes no context, to stop after
// the migration it is running when ctx ends.
func bridgeCancel(ctx context.Context, m *migrate.Migrate) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			m.GracefulStop <- true
		case <-done:
		}
	}()
	return func() { close(done) }
}

func versionOf(m *migrate.Migrate) (Version, error) {
	v, dirty, err := m.Version()
	if errors.Is(err, migrate.ErrNilVersion) {
		return Version{}, nil
	}
	if err != nil {
		return Version{}, fmt.Errorf("schema: version: %w", err)
	}
	return Version{Version: v, Dirty: dirty}, nil
}

// withLock runs fn on a direct connection to dsn holding the session
// advisory lock named key.
func withLock[T any](ctx context.Context, dsn, key string, fn func(*pgx.Conn) (T, error)) (T, error) {
	var zero T
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return zero, fmt.Errorf("schema: connect to %s: %w", Redact(dsn), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	id := LockID(key)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", id); err != nil {
		return zero, fmt.Errorf("schema: lock %s: %w", key, err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", id)
	return fn(conn)
}

// WithLock runs fn on a direct connection to dsn while holding the session
// advisory lock named key, so concurrent bootstraps run one at a time.
func WithLock(ctx context.Context, dsn, key string, fn func(*pgx.Conn) error) error {
	_, err := withLock(ctx, dsn, key, func(c *pgx.Conn) (struct{}, error) { return struct{}{}, fn(c) })
	return err
}

// LockID is the advisory lock id of the lock named key: the same in every
// process, so that they all take the same lock.
func LockID(key string) int64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	return int64(h.Sum64())
}
