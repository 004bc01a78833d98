package archive

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// Tables are the tenant tables an archive holds, parents before children:
// the order they are written and loaded in (foreign keys are checked per
// statement), and the reverse of the order Restore deletes in.
var Tables = []string{"agents", "tasks", "messages", "activity_logs", "agent_sessions", "schedules"}

// excludedTables have an organization_id column but are never archived,
// with the reason.
var excludedTables = map[string]string{
	"idempotency_keys": "replayed responses, which may carry secrets shown once (a new API key)",
	"tenant_fences":    "the control plane's move fences",
}

// secretColumn matches column names that say they hold a secret. The
// tenant schema has none; a migration that adds one must decide whether
// archives carry it, and Export refuses until it has.
var secretColumn = regexp.MustCompile(`password|passwd|secret|api_?key|_hash$|^hash$|token_hash|private_key`)

// column is a column of a tenant table as the database has it.
type column struct {
	name       string
	notNull    bool
	hasDefault bool // a default, an identity, or generated
	generated  bool // GENERATED ALWAYS AS (…) STORED: never written
	collatable bool
}

// tableSchema is a tenant table as the database has it.
type tableSchema struct {
	name string
	cols []column // in attnum order, organization_id included
	key  []string // the primary key without organization_id
}

func (t *tableSchema) column(name string) (column, bool) {
	for _, c := range t.cols {
		if c.name == name {
			return c, true
		}
	}
	return column{}, false
}

// archived is the columns a data file of t holds: all but organization_id
// and the generated ones.
func (t *tableSchema) archived() []string {
	var out []string
	for _, c := range t.cols {
		if c.name != "organization_id" && !c.generated {
			out = append(out, c.name)
		}
	}
	return out
}

// dbSchema is what a tenant database's schema is, as far as archives care.
type dbSchema struct {
	version uint
	dirty   bool
	tables  map[string]*tableSchema // every table with an organization_id column
}

// readSchema reads the tenant tables' columns and keys, and the schema
// version from schema_migrations unless version is given (the application
// role may not read the migration ledger; the catalog records each
// database's version).
func readSchema(ctx context.Context, tx pgx.Tx, version uint) (*dbSchema, error) {
	s := &dbSchema{version: version, tables: map[string]*tableSchema{}}
	if version == 0 {
		var v int64
		err := tx.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations LIMIT 1`).Scan(&v, &s.dirty)
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "42501": // insufficient_privilege
			return nil, errors.New("archive: this role may not read schema_migrations: connect as the schema owner or pass the database's schema version")
		case errors.Is(err, pgx.ErrNoRows), errors.As(err, &pgErr) && pgErr.Code == "42P01", err == nil && v <= 0:
			return nil, errors.New("archive: the database has no tenant schema version")
		case err != nil:
			return nil, fmt.Errorf("archive: schema version: %w", err)
		}
		s.version = uint(v)
	}
	rows, err := tx.Query(ctx, `
		SELECT c.relname, a.attname, a.attnotnull,
		       a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', a.attgenerated <> '',
		       a.attcollation <> 0,
		       coalesce(array_position(pk.indkey::int2[], a.attnum), 0)
		FROM pg_class c
		JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		LEFT JOIN pg_index pk ON pk.indrelid = c.oid AND pk.indisprimary
		WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
		  AND EXISTS (SELECT 1 FROM pg_attribute o WHERE o.attrelid = c.oid AND o.attname = 'organization_id' AND NOT o.attisdropped)
		ORDER BY c.relname, a.attnum`)
	if err != nil {
		return nil, fmt.Errorf("archive: read the tenant tables: %w", err)
	}
	type keyed struct {
		pos  int16
		name string
	}
	keys := map[string][]keyed{}
	var (
		table string
		col   column
		pos   int16
	)
	_, err = pgx.ForEachRow(rows, []any{&table, &col.name, &col.notNull, &col.hasDefault, &col.generated, &col.collatable, &pos}, func() error {
		t := s.tables[table]
		if t == nil {
			t = &tableSchema{name: table}
			s.tables[table] = t
		}
		t.cols = append(t.cols, col)
		if pos > 0 && col.name != "organization_id" {
			keys[table] = append(keys[table], keyed{pos, col.name})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("archive: read the tenant tables: %w", err)
	}
	for name, ks := range keys {
		slices.SortFunc(ks, func(a, b keyed) int { return int(a.pos) - int(b.pos) })
		for _, k := range ks {
			s.tables[name].key = append(s.tables[name].key, k.name)
		}
	}
	return s, nil
}

// checkKnown refuses a database whose tenant tables are not exactly
// Tables and excludedTables: a table of tenant rows this package does not
// know would be left out of archives, or left behind by a restore.
func (s *dbSchema) checkKnown() error {
	for name := range s.tables {
		if !slices.Contains(Tables, name) && excludedTables[name] == "" {
			return fmt.Errorf("archive: table %s holds tenant rows but archives do not know it: add it to archive.Tables or excludedTables", name)
		}
	}
	for _, name := range Tables {
		t := s.tables[name]
		if t == nil {
			return fmt.Errorf("archive: the database has no tenant table %s (schema version %d)", name, s.version)
		}
		if len(t.key) == 0 {
			return fmt.Errorf("archive: table %s has no primary key besides organization_id", name)
		}
	}
	return nil
}

// checkSecrets refuses columns whose names say they hold secrets.
func (s *dbSchema) checkSecrets() error {
	for _, name := range Tables {
		for _, c := range s.tables[name].archived() {
			if secretColumn.MatchString(c) {
				return fmt.Errorf("archive: column %s.%s looks like a secret: archives never carry secrets; exclude it in provisioner/archive first", name, c)
			}
		}
	}
	return nil
}

// newestSchema is the newest tenant schema version this binary knows.
func newestSchema() (uint, error) {
	vs, err := schema.Versions(migrations.Tenant, "tenant")
	if err != nil {
		return 0, err
	}
	return vs[len(vs)-1], nil
}

// canonicalID returns id in canonical form: it is written into COPY
// statements, which take no parameters.
func canonicalID(id string) (string, error) {
	u, err := uuid.Parse(id)
	if err != nil {
		return "", tenancy.Errorf(tenancy.CodeInvalid, "organization: %q is not an id", id)
	}
	return u.String(), nil
}

// settings make COPY's text output canonical (see the format), and scope
// the transaction to the organization: the row-level security policies
// let it see and write that organization's rows only. fenceBypass lets
// the schema owner write past the organization's move fence.
func settings(ctx context.Context, tx pgx.Tx, org string, fenceBypass bool) error {
	bypass := ""
	if fenceBypass {
		bypass = org
	}
	_, err := tx.Exec(ctx, `SELECT set_config('app.organization_id', $1, true),
		set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true),
		set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '3', true),
		set_config('bytea_output', 'hex', true), set_config('tenantgate.fence_bypass', $2, true)`, org, bypass)
	if err != nil {
		return fmt.Errorf("archive: session settings: %w", err)
	}
	return nil
}

// quoteList quotes names as identifiers, comma separated.
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = pgx.Identifier{n}.Sanitize()
	}
	return strings.Join(q, ", ")
}

// selectRows is the COPY that reads the organization's rows of table t,
// columns cols, sorted by key: the statement of Export and of Import's
// read-back, so that the same rows give the same bytes.
func selectRows(t *tableSchema, cols, key []string, org string) string {
	order := make([]string, len(key))
	for i, k := range key {
		order[i] = pgx.Identifier{k}.Sanitize()
		if c, _ := t.column(k); c.collatable {
			order[i] += ` COLLATE "C"`
		}
	}
	return fmt.Sprintf(`COPY (SELECT %s FROM %s WHERE organization_id = '%s' ORDER BY %s) TO STDOUT`,
		quoteList(cols), pgx.Identifier{t.name}.Sanitize(), org, strings.Join(order, ", "))
}
