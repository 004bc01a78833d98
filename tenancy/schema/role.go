package schema

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EnsureAppRole creates the application role tenant data is queried as:
// LOGIN, but not superuser, no BYPASSRLS, no CREATEDB or CREATEROLE. If it
// exists, its attributes are reset to those, so a role someone widened by
// hand is narrowed again. Safe to run concurrently.
func EnsureAppRole(ctx context.Context, conn *pgx.Conn, role, password string) error {
	name := pgx.Identifier{role}.Sanitize()
	_, err := conn.Exec(ctx, "CREATE ROLE "+name+" LOGIN")
	if err != nil && !isAlreadyExists(err) {
		return fmt.Errorf("schema: create role %s: %w", role, err)
	}
	if err := narrowRole(ctx, conn, role); err != nil {
		return err
	}
	if password != "" {
		// Role passwords cannot be bound parameters; quote as a literal.
		lit := "'" + escapeLiteral(password) + "'"
		if _, err := conn.Exec(ctx, "ALTER ROLE "+name+" PASSWORD "+lit); err != nil {
			return fmt.Errorf("schema: set password of role %s: %w", role, err)
		}
	}
	return nil
}

// narrowRole strips any power beyond LOGIN from role. Roles are
// cluster-wide, so inits of different catalogs on one server can race here:
// ALTER only when needed, and retry Postgres' "tuple concurrently updated".
func narrowRole(ctx context.Context, conn *pgx.Conn, role string) error {
	for attempt := 0; ; attempt++ {
		var wide bool
		err := conn.QueryRow(ctx, `SELECT NOT rolcanlogin OR rolsuper OR rolbypassrls OR rolcreatedb OR rolcreaterole OR rolreplication
			FROM pg_roles WHERE rolname = $1`, role).Scan(&wide)
		if err != nil || !wide {
			return err
		}
		_, err = conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{role}.Sanitize()+
			" LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION")
		var pgErr *pgconn.PgError
		if err == nil || attempt >= 5 || !errors.As(err, &pgErr) || pgErr.Code != "XX000" {
			if err != nil {
				return fmt.Errorf("schema: alter role %s: %w", role, err)
			}
			return nil
		}
	}
}

func escapeLiteral(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// GrantApp lets role read and write the tenant tables of the database conn
// is connected to, and nothing else: not the migration ledger, not DDL.
func GrantApp(ctx context.Context, conn *pgx.Conn, role string) error {
	name := pgx.Identifier{role}.Sanitize()
	var db string
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return fmt.Errorf("schema: grant: %w", err)
	}
	stmts := []string{
		grantDatabase(db, role),
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		"GRANT USAGE ON SCHEMA public TO " + name,
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + name,
		"REVOKE ALL ON TABLE schema_migrations FROM " + name,
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("schema: grant: %s: %w", s, err)
		}
	}
	return nil
}

// GrantDatabase lets role, and no one else but superusers, connect to the
// database name. It is the one grant that a copy of a template does not
// carry (a database's own privileges are kept in the server's shared
// catalog, not in the database), so it may run on a connection to any
// database of the server.
func GrantDatabase(ctx context.Context, conn *pgx.Conn, name, role string) error {
	if _, err := conn.Exec(ctx, grantDatabase(name, role)); err != nil {
		return fmt.Errorf("schema: grant database %s: %w", name, err)
	}
	return nil
}

// grantDatabase is GrantDatabase's two statements, sent in one round trip.
func grantDatabase(name, role string) string {
	db := pgx.Identifier{name}.Sanitize()
	return "REVOKE ALL ON DATABASE " + db + " FROM PUBLIC; GRANT CONNECT, TEMPORARY ON DATABASE " + db + " TO " + pgx.Identifier{role}.Sanitize()
}
