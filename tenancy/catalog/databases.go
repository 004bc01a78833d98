package catalog

import (
	"context"

	"github.com/tenantgate/tenantgate/tenancy"
)

const databaseColumns = `id::text, name, kind, dsn, state, dirty, quarantined`

func scanDatabase(row interface{ Scan(...any) error }) (tenancy.Database, error) {
	var d tenancy.Database
	err := row.Scan(&d.ID, &d.Name, &d.Kind, &d.DSN, &d.State, &d.Dirty, &d.Quarantined)
	return d, err
}

// RegisterDatabase records a tenant database, or returns the one already
// recorded with the same DSN: registering twice is harmless.
func (s *Store) RegisterDatabase(ctx context.Context, d tenancy.Database) (tenancy.Database, error) {
	row := s.pool.QueryRow(ctx, `
		INSERT INTO databases (name, kind, dsn, state, server_id)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (dsn) DO UPDATE SET updated_at = databases.updated_at
		RETURNING `+databaseColumns, d.Name, d.Kind, d.DSN, orDefault(d.State, "ready"), nullIfEmpty(d.ServerID))
	out, err := scanDatabase(row)
	return out, interpret(err, "database")
}

// SetDatabaseState records a database's lifecycle state and schema version.
func (s *Store) SetDatabaseVersion(ctx context.Context, id string, version uint, dirty bool) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE databases SET schema_version = $2, dirty = $3, updated_at = now() WHERE id = $1`,
		id, int64(version), dirty)
	return interpret(err, "database")
}

// SetDatabaseState records a database's lifecycle state.
func (s *Store) SetDatabaseState(ctx context.Context, id, state string) error {
	_, err := s.pool.Exec(ctx, `UPDATE databases SET state = $2, updated_at = now() WHERE id = $1`, id, state)
	return interpret(err, "database")
}

// SetDatabaseReady records a provisioned database's schema version and
// puts it in service, in one write.
func (s *Store) SetDatabaseReady(ctx context.Context, id string, version uint, dirty bool) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE databases SET schema_version = $2, dirty = $3, state = 'ready', updated_at = now() WHERE id = $1`,
		id, int64(version), dirty)
	return interpret(err, "database")
}

// Database returns the database with id.
func (s *Store) Database(ctx context.Context, id string) (tenancy.Database, error) {
	d, err := scanDatabase(s.pool.QueryRow(ctx, `SELECT `+databaseColumns+` FROM databases WHERE id = $1`, id))
	return d, interpret(err, "database")
}

// DatabaseInfo is a database with its schema version and tenant count.
type DatabaseInfo struct {
	tenancy.Database
	SchemaVersion int64 `json:"schemaVersion"`
	Tenants       int   `json:"tenants"`
	// Audit is the isolation audit's last verdict ("" before the first).
	Audit string `json:"audit"`
}

// Databases lists every tenant database, shared ones first.
func (s *Store) Databases(ctx context.Context) ([]DatabaseInfo, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT d.id::text, d.name, d.kind, d.dsn, d.state, d.dirty, d.quarantined, d.schema_version,
		       (SELECT count(*) FROM placements p WHERE p.database_id = d.id),
		       coalesce((SELECT a.verdict FROM database_audits a WHERE a.database_id = d.id), '')
		FROM databases d ORDER BY d.kind DESC, d.name`)
	if err != nil {
		return nil, interpret(err, "databases")
	}
	defer rows.Close()
	var out []DatabaseInfo
	for rows.Next() {
		var d DatabaseInfo
		if err := rows.Scan(&d.ID, &d.Name, &d.Kind, &d.DSN, &d.State, &d.Dirty, &d.Quarantined, &d.SchemaVersion, &d.Tenants, &d.Audit); err != nil {
			return nil, interpret(err, "databases")
		}
		out = append(out, d)
	}
	return out, interpret(rows.Err(), "databases")
}

// SharedDatabase returns the ready shared database with the fewest tenants,
// where a new small tenant goes.
func (s *Store) SharedDatabase(ctx context.Context) (tenancy.Database, error) {
	d, err := scanDatabase(s.pool.QueryRow(ctx, `
		SELECT `+databaseColumns+` FROM databases d
		WHERE kind = 'shared' AND state = 'ready' AND NOT dirty
		ORDER BY (SELECT count(*) FROM placements p WHERE p.database_id = d.id), created_at
		LIMIT 1`))
	return d, interpret(err, "shared database")
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// SchemaVersion returns the tenant schema version recorded for a database.
func (s *Store) SchemaVersion(ctx context.Context, id string) (uint, error) {
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT schema_version FROM databases WHERE id = $1`, id).Scan(&v)
	return uint(max(v, 0)), interpret(err, "database")
}
