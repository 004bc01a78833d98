package schema

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"time"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// MigrateTo brings the database at dsn to version to (0: the newest of
// the set), up or down, one migration at a time, and stops between two
// migrations once ctx ends, returning the version reached with ctx's error.
//
// Migrate bridges cancellation through golang-migrate's GracefulStop, but
// golang-migrate (v4.20.1) returns from a stop or a failure without
// draining the migrations it read ahead: their buffering goroutines and
// open files leak (golang-migrate/migrate#1443). One step per call reads
// nothing ahead, so a long-lived process that interrupts many migrations,
// like the fan-out, leaks nothing; the cost is a version read per step.
func MigrateTo(ctx context.Context, dsn string, fsys fs.FS, dir string, to uint) (Version, error) {
	return withLock(ctx, dsn, "tenantgate.migrate", func(conn *pgx.Conn) (Version, error) {
		m, versions, err := open(conn, fsys, dir, 5*time.Minute)
		if err != nil {
			return Version{}, err
		}
		defer m.Close()
		m.LockTimeout = 30 * time.Second
		if to == 0 {
			to = versions[len(versions)-1]
		}
		if !slices.Contains(versions, to) {
			return Version{}, fmt.Errorf("schema: version %d is not a migration in %s", to, dir)
		}
		return stepTo(ctx, m, to)
	})
}

// stepTo runs one migration at a time towards to, checking ctx before each.
func stepTo(ctx context.Context, m *migrate.Migrate, to uint) (Version, error) {
	for {
		v, err := versionOf(m)
		switch {
		case err != nil:
			return v, err
		case v.Dirty:
			return v, fmt.Errorf("%w at version %d", ErrDirty, v.Version)
		case v.Version == to:
			return v, nil
		case ctx.Err() != nil:
			return v, fmt.Errorf("schema: migration stopped at version %d: %w", v.Version, context.Cause(ctx))
		}
		step := 1
		if v.Version > to {
			step = -1
		}
		if err := m.Steps(step); err != nil {
			after, _ := versionOf(m)
			return after, fmt.Errorf("schema: migrate: %w", err)
		}
	}
}

// Force records version as the database's clean migration state without
// running anything (golang-migrate's Force), after a person repaired a
// database a failed migration left dirty. Version 0 means "no migration
// applied". It takes the same advisory lock as Migrate, so it never lands
// in the middle of a migration.
func Force(ctx context.Context, dsn string, migrations fs.FS, dir string, version uint) (Version, error) {
	return withLock(ctx, dsn, "tenantgate.migrate", func(conn *pgx.Conn) (Version, error) {
		m, _, err := open(conn, migrations, dir, 0)
		if err != nil {
			return Version{}, err
		}
		defer m.Close()
		forced := int(version)
		if version == 0 {
			forced = -1 // golang-migrate's "nil version"
		}
		if err := m.Force(forced); err != nil {
			return Version{}, fmt.Errorf("schema: force version %d: %w", version, err)
		}
		return versionOf(m)
	})
}

// open returns golang-migrate over conn's database and the versions of
// the migration set, in order.
func open(conn *pgx.Conn, fsys fs.FS, dir string, statementTimeout time.Duration) (*migrate.Migrate, []uint, error) {
	src, err := iofs.New(fsys, dir)
	if err != nil {
		return nil, nil, fmt.Errorf("schema: migrations %s: %w", dir, err)
	}
	versions, err := sourceVersions(src)
	if err != nil {
		src.Close()
		return nil, nil, fmt.Errorf("schema: migrations %s: %w", dir, err)
	}
	// The driver closes the *sql.DB it is given, so it gets one of its own.
	db := stdlib.OpenDB(*conn.Config())
	drv, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{StatementTimeout: statementTimeout})
	if err != nil {
		src.Close()
		db.Close()
		return nil, nil, fmt.Errorf("schema: migrate driver: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		src.Close()
		drv.Close()
		return nil, nil, fmt.Errorf("schema: migrate: %w", err)
	}
	return m, versions, nil
}

func sourceVersions(src source.Driver) ([]uint, error) {
	var versions []uint
	v, err := src.First()
	for err == nil {
		versions = append(versions, v)
		v, err = src.Next(v)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if len(versions) == 0 {
		return nil, errors.New("no migrations")
	}
	return versions, nil
}

// CurrentVersion reads the migration state golang-migrate recorded in the
// database at dsn, without its lock and without changing anything: what a
// dry run needs. A database never migrated is at version 0.
func CurrentVersion(ctx context.Context, dsn string) (Version, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return Version{}, fmt.Errorf("schema: connect to %s: %w", Redact(dsn), err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var v int64
	var dirty bool
	err = conn.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations LIMIT 1`).Scan(&v, &dirty)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pgErr) && pgErr.Code == "42P01":
		return Version{}, nil
	case err != nil:
		return Version{}, fmt.Errorf("schema: version: %w", err)
	case v < 0: // golang-migrate writes -1 for a forced nil version
		return Version{Dirty: dirty}, nil
	}
	return Version{Version: uint(v), Dirty: dirty}, nil
}
