// Package schema creates Postgres databases and roles and runs tenantgate's
// embedded migrations on them with golang-migrate. It connects as the schema
// owner, over direct connections (never a transaction-mode pooler).
package schema

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// SQLSTATEs that mean "someone else already made it": concurrent CREATE
// DATABASE / CREATE ROLE race on the catalogs' unique indexes.
const (
	duplicateDatabase = "42P04"
	duplicateObject   = "42710"
	uniqueViolation   = "23505"
)

func isAlreadyExists(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case duplicateDatabase, duplicateObject, uniqueViolation:
		return true
	}
	return false
}

// WithDatabase returns dsn with its database name replaced by name.
func WithDatabase(dsn, name string) (string, error) {
	u, err := parseURL(dsn)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// WithUser returns dsn connecting as user (with password, if not empty).
func WithUser(dsn, user, password string) (string, error) {
	u, err := parseURL(dsn)
	if err != nil {
		return "", err
	}
	if password == "" {
		u.User = url.User(user)
	} else {
		u.User = url.UserPassword(user, password)
	}
	return u.String(), nil
}

// DatabaseName returns the database a DSN names.
func DatabaseName(dsn string) (string, error) {
	u, err := parseURL(dsn)
	if err != nil {
		return "", err
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return "", fmt.Errorf("schema: %s names no database", Redact(dsn))
	}
	return name, nil
}

func parseURL(dsn string) (*url.URL, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("schema: %q is not a postgres:// URL", Redact(dsn))
	}
	return u, nil
}

// Redact returns dsn without its password, for messages and logs.
func Redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		if err != nil {
			return "<unparseable dsn>"
		}
		return dsn
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// CreateDatabase creates database name on the server of serverDSN unless it
// exists. It is safe to call concurrently for the same name.
func CreateDatabase(ctx context.Context, serverDSN, name string) error {
	conn, err := connectMaintenance(ctx, serverDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists)
	if err != nil || exists {
		return err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	if err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("schema: create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops database name if it exists, ending its connections.
func DropDatabase(ctx context.Context, serverDSN, name string) error {
	conn, err := connectMaintenance(ctx, serverDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	if err != nil {
		return fmt.Errorf("schema: drop database %s: %w", name, err)
	}
	return nil
}

// connectMaintenance connects to the server's "postgres" database, where
// CREATE and DROP DATABASE are run.
func connectMaintenance(ctx context.Context, serverDSN string) (*pgx.Conn, error) {
	dsn, err := WithDatabase(serverDSN, "postgres")
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("schema: connect to %s: %w", Redact(dsn), err)
	}
	return conn, nil
}

// CreateDatabaseFrom creates database name as a copy of template over conn
// (a connection to the server's maintenance database), unless it exists;
// created reports whether this call made it. PostgreSQL refuses while
// anyone is connected to the template.
func CreateDatabaseFrom(ctx context.Context, conn *pgx.Conn, name, template string) (created bool, err error) {
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil || exists {
		return false, err
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{template}.Sanitize())
	if err != nil {
		if isAlreadyExists(err) {
			return false, nil
		}
		return false, fmt.Errorf("schema: create database %s from %s: %w", name, template, err)
	}
	return true, nil
}

// WithServerLock runs fn on a connection to the maintenance database of
// serverDSN's server while holding the server-wide advisory lock key.
func WithServerLock(ctx context.Context, serverDSN, key string, fn func(*pgx.Conn) error) error {
	dsn, err := WithDatabase(serverDSN, "postgres")
	if err != nil {
		return err
	}
	return WithLock(ctx, dsn, key, fn)
}

// DatabasesLike lists the databases on serverDSN's server whose names
// start with prefix.
func DatabasesLike(ctx context.Context, serverDSN, prefix string) ([]string, error) {
	conn, err := connectMaintenance(ctx, serverDSN)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname`, prefix)
	if err != nil {
		return nil, fmt.Errorf("schema: list databases: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ServerOf names the server of dsn (host:port), "" when it cannot tell.
func ServerOf(dsn string) string {
	u, err := parseURL(dsn)
	if err != nil {
		return ""
	}
	return u.Host
}
