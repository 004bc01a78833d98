package audit

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// Fingerprint describes, from the system catalogs, everything about one
// tenant database that isolation rests on or that a migration expects:
// relations with their columns, constraints, indexes, triggers, row-level
// security flags, policies, owners and grants; functions; schemas; the
// database's own grants and settings; default privileges.
//
// Role names are normalised so that two databases built the same way
// fingerprint equal wherever they live: the application role is written
// "app", PUBLIC "public", and the role that owns the migration ledger
// (golang-migrate's schema_migrations, or the database when there is none)
// "owner". Any other role keeps its name. Every list is sorted by byte
// order, never by a database's collation.
//
// A Fingerprint returned by Auditor.Expected is shared: do not modify it.
type Fingerprint struct {
	// Source says where the fingerprint was read. It is not part of the
	// comparison (Equal, Digest), except that Compare reports a migration
	// version or dirty flag that differs from the expected one.
	Source            Source             `json:"source"`
	Database          Database           `json:"database"`
	Schemas           []Schema           `json:"schemas,omitempty"`
	Relations         []Relation         `json:"relations,omitempty"`
	Functions         []Function         `json:"functions,omitempty"`
	DefaultPrivileges []DefaultPrivilege `json:"default_privileges,omitempty"`
}

// Source is what a fingerprint was read from.
type Source struct {
	Database string `json:"database"`
	// OwnerRole is the real name of the role written "owner".
	OwnerRole string `json:"owner_role"`
	// ServerVersion is the server's server_version_num, e.g. 150020.
	ServerVersion int `json:"server_version"`
	// MigrationVersion is the version golang-migrate recorded in
	// schema_migrations; -1 when the database has no such table or row.
	MigrationVersion int64 `json:"migration_version"`
	Dirty            bool  `json:"dirty,omitempty"`
}

// Database holds the facts of the database object itself.
type Database struct {
	// Owner is the database's owner; a difference is not reported (the
	// database may be created by a role other than the migrating one),
	// only an owner that is the application role.
	Owner  string  `json:"owner"`
	Grants []Grant `json:"grants,omitempty"`
	// Settings are ALTER DATABASE … SET and ALTER ROLE … IN DATABASE …
	// SET values, written "role: name=value" ("public" for every role).
	Settings []string `json:"settings,omitempty"`
	// AppOwned describes every object of this database, the database
	// included, that the application role owns (pg_shdepend), e.g.
	// "table agents".
	AppOwned []string `json:"app_owned,omitempty"`
}

// Schema is a schema other than the system ones.
type Schema struct {
	Name   string  `json:"name"`
	Owner  string  `json:"owner"`
	Grants []Grant `json:"grants,omitempty"`
}

// Relation kinds, as written in Relation.Kind.
const (
	KindTable            = "table"
	KindPartitionedTable = "partitioned table"
	KindView             = "view"
	KindMaterializedView = "materialized view"
	KindSequence         = "sequence"
	KindForeignTable     = "foreign table"
)

// Relation is a table, view, materialized view, sequence or foreign table
// of a user schema. golang-migrate's public.schema_migrations is left out.
type Relation struct {
	// Name is the relation's name, qualified by its schema unless that is
	// public.
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Owner string `json:"owner"`
	// RLS and ForceRLS are ENABLE and FORCE ROW LEVEL SECURITY.
	RLS         bool         `json:"rls"`
	ForceRLS    bool         `json:"force_rls"`
	Grants      []Grant      `json:"grants,omitempty"`
	Columns     []Column     `json:"columns,omitempty"`
	Constraints []Constraint `json:"constraints,omitempty"`
	Indexes     []Index      `json:"indexes,omitempty"`
	Triggers    []Trigger    `json:"triggers,omitempty"`
	Policies    []Policy     `json:"policies,omitempty"`
}

// Column is a column of a relation; its place in the row is left out, since
// a dropped and re-added column changes it without changing the schema.
type Column struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	NotNull bool   `json:"not_null,omitempty"`
	Default string `json:"default,omitempty"`
	// Identity is "a" (ALWAYS), "d" (BY DEFAULT) or empty; Generated is
	// "s" (STORED) or empty.
	Identity  string `json:"identity,omitempty"`
	Generated string `json:"generated,omitempty"`
	// Grants are column-level grants (GRANT SELECT (col) …).
	Grants []Grant `json:"grants,omitempty"`
}

// Constraint is a table constraint, with pg_get_constraintdef's definition.
type Constraint struct {
	Name       string `json:"name"`
	Type       string `json:"type"` // PRIMARY KEY, UNIQUE, FOREIGN KEY, CHECK, EXCLUDE, TRIGGER, NOT NULL
	Definition string `json:"definition"`
	Validated  bool   `json:"validated"`
	// Columns are the constrained columns, in key order.
	Columns []string `json:"columns,omitempty"`
	// References is the relation a foreign key references.
	References string `json:"references,omitempty"`
}

// Index is an index, with pg_get_indexdef's definition.
type Index struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
	Unique     bool   `json:"unique,omitempty"`
	Primary    bool   `json:"primary,omitempty"`
	Valid      bool   `json:"valid"`
	// Columns are the key columns (not INCLUDE ones, not expressions), in
	// order.
	Columns []string `json:"columns,omitempty"`
}

// Trigger is a user trigger (not one Postgres makes for a foreign key).
type Trigger struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
	// Enabled is pg_trigger.tgenabled: O (origin and local), D (disabled),
	// R (replica only), A (always).
	Enabled string `json:"enabled"`
	// Function is the trigger function's name, schema-qualified unless
	// public.
	Function string `json:"function"`
}

// Policy is a row-level security policy.
type Policy struct {
	Name       string   `json:"name"`
	Permissive bool     `json:"permissive"`
	Command    string   `json:"command"` // ALL, SELECT, INSERT, UPDATE, DELETE
	Roles      []string `json:"roles"`
	Using      string   `json:"using,omitempty"`
	Check      string   `json:"check,omitempty"`
}

// Function is a function or procedure of a user schema, extensions' left
// out.
type Function struct {
	// Name is the name with its argument types, e.g.
	// "tenant_fence_check()", schema-qualified unless public.
	Name            string  `json:"name"`
	Kind            string  `json:"kind"` // f, p, a, w (pg_proc.prokind)
	Owner           string  `json:"owner"`
	SecurityDefiner bool    `json:"security_definer,omitempty"`
	Digest          string  `json:"digest"` // of its body, settings, result type, volatility
	Grants          []Grant `json:"grants,omitempty"`
}

// DefaultPrivilege is one grant of ALTER DEFAULT PRIVILEGES.
type DefaultPrivilege struct {
	Role    string `json:"role"`             // whose new objects
	Schema  string `json:"schema,omitempty"` // empty: any schema
	Objects string `json:"objects"`          // tables, sequences, functions, types, schemas
	Grant   Grant  `json:"grant"`
}

// Grant is one privilege one role holds on an object. A grant to the
// object's owner is left out: owners hold everything.
type Grant struct {
	Grantee   string `json:"grantee"`
	Privilege string `json:"privilege"`
	Grantable bool   `json:"grantable,omitempty"`
}

func (g Grant) String() string {
	s := g.Privilege + " to " + g.Grantee
	if g.Grantable {
		s += " with grant option"
	}
	return s
}

// Equal reports whether a and b describe the same schema; Source is not
// compared.
func Equal(a, b *Fingerprint) bool {
	x, y := *a, *b
	x.Source, y.Source = Source{}, Source{}
	return reflect.DeepEqual(x, y)
}

// Digest is a short hash of the fingerprint, Source left out: two
// databases with the same Digest have the same schema. It can be stored
// (say, in the catalog) to notice a change without keeping the whole
// fingerprint.
func (f *Fingerprint) Digest() string {
	x := *f
	x.Source = Source{}
	b, err := json.Marshal(x)
	if err != nil { // plain strings and bools: cannot happen
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// Batcher is what Read needs of a connection: *pgx.Conn, *pgxpool.Pool,
// *pgxpool.Conn and pgx.Tx all are. A connection in
// pgx.QueryExecModeExec (as ReadDSN opens) sends the whole fingerprint in
// one round trip; the default mode prepares the statements first, one
// round trip more on a new connection.
type Batcher interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Read fingerprints the database conn is connected to, normalising
// appRole's name to "app" (the role need not exist). The catalogs are
// readable by any role, but the migration ledger is not: connect as the
// database's owner, as migrations do, or Source.MigrationVersion reads -1.
func Read(ctx context.Context, conn Batcher, appRole string) (*Fingerprint, error) {
	fp, _, err := read(ctx, conn, appRole, false)
	return fp, err
}

// ReadRole reads the application role's attributes and memberships from
// pg_roles. Roles belong to the server, not to a database: one read serves
// every database of that server.
func ReadRole(ctx context.Context, conn Batcher, appRole string) (RoleFacts, error) {
	b := &pgx.Batch{}
	var facts RoleFacts
	queueRole(b, appRole, &facts)
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return RoleFacts{}, fmt.Errorf("audit: read role %s: %w", appRole, err)
	}
	return facts, nil
}

// ReadDSN opens one connection to dsn and reads, in one round trip, both
// the database's fingerprint and appRole's facts.
func ReadDSN(ctx context.Context, dsn, appRole string) (*Fingerprint, RoleFacts, error) {
	conn, err := connect(ctx, dsn)
	if err != nil {
		return nil, RoleFacts{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return read(ctx, conn, appRole, true)
}

// connectTimeout bounds connecting: pgx's default waits two minutes for a
// server that does not answer, far longer than an audit should.
const connectTimeout = 10 * time.Second

// connect opens a direct connection in exec mode: no statement is
// prepared, so a batch travels in one round trip.
func connect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("audit: %s: %w", schema.Redact(dsn), err)
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > connectTimeout {
		cfg.ConnectTimeout = connectTimeout
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("audit: connect to %s: %w", schema.Redact(dsn), err)
	}
	return conn, nil
}

// The queries below share a prologue that finds the application role and
// the owner, and a role-naming expression, who(x), that writes a role oid
// as "public", "app", "owner" or the role's name.
const prologue = `WITH ctx AS (
	SELECT (SELECT oid FROM pg_roles WHERE rolname = $1) AS app,
	       COALESCE((SELECT relowner FROM pg_class WHERE oid = to_regclass('public.schema_migrations')),
	                (SELECT datdba FROM pg_database WHERE datname = current_database())) AS owner)
`

func who(x string) string {
	return fmt.Sprintf(`(CASE WHEN %[1]s = 0 THEN 'public' WHEN %[1]s = ctx.app THEN 'app' WHEN %[1]s = ctx.owner THEN 'owner'
		ELSE pg_get_userbyid(%[1]s)::text END)`, x)
}

// grants lists an ACL's grants, the owner's left out, as rows of
// (grantee, privilege, grantable) in a text array of "grantee|priv|t/f".
func grants(acl, kind, owner string) string {
	return `ARRAY(SELECT ` + who("a.grantee") + ` || '|' || a.privilege_type || '|' || a.is_grantable::text
		FROM aclexplode(COALESCE(` + acl + `, acldefault('` + kind + `', ` + owner + `))) a
		WHERE a.grantee <> ` + owner + `)`
}

// userSchema keeps the namespace aliased n to the schemas a person made.
const userSchema = `n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'`

// relName is a relation's name, qualified unless in public.
const relName = `(CASE WHEN n.nspname = 'public' THEN c.relname::text ELSE n.nspname || '.' || c.relname END)`

// relFilter keeps relations c (in namespace n) of user schemas, not
// members of an extension, not the migration ledger.
const relFilter = userSchema + `
	AND NOT (n.nspname = 'public' AND c.relname = 'schema_migrations')
	AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`

var (
	sourceSQL = prologue + `
SELECT current_database(), pg_get_userbyid(ctx.owner)::text, current_setting('server_version_num')::int,
	(xpath('/table/row/version/text()', m.x))[1]::text::bigint,
	(xpath('/table/row/dirty/text()', m.x))[1]::text::boolean,
	` + who("d.datdba") + `,
	` + grants("d.datacl", "d", "d.datdba") + `,
	ARRAY(SELECT ` + who("s.setrole") + ` || ': ' || cfg FROM pg_db_role_setting s, unnest(s.setconfig) cfg WHERE s.setdatabase = d.oid),
	ARRAY(SELECT pg_describe_object(sd.classid, sd.objid, sd.objsubid) FROM pg_shdepend sd
		WHERE sd.deptype = 'o' AND sd.refclassid = 'pg_authid'::regclass AND sd.refobjid = ctx.app
		AND (sd.dbid = d.oid OR (sd.dbid = 0 AND sd.classid = 'pg_database'::regclass AND sd.objid = d.oid)))
FROM pg_database d, ctx,
	-- The ledger may not exist, so it is read through query_to_xml, which
	-- plans its query only when called, and CASE calls it only when the
	-- table exists and may be read.
	LATERAL (SELECT CASE WHEN has_table_privilege(to_regclass('public.schema_migrations'), 'SELECT')
		THEN query_to_xml('SELECT version, dirty FROM public.schema_migrations LIMIT 1', false, false, '') END AS x) m
WHERE d.datname = current_database()`

	schemasSQL = prologue + `
SELECT n.nspname::text, ` + who("n.nspowner") + `, ` + grants("n.nspacl", "n", "n.nspowner") + `
FROM pg_namespace n, ctx WHERE ` + userSchema

	relationsSQL = prologue + `
SELECT ` + relName + `, c.relkind::text, ` + who("c.relowner") + `, c.relrowsecurity, c.relforcerowsecurity,
	` + grants("c.relacl", "r", "c.relowner") + `
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, ctx
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND ` + relFilter

	columnsSQL = prologue + `
SELECT ` + relName + `, a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
	COALESCE(pg_get_expr(ad.adbin, ad.adrelid), ''), a.attidentity::text, a.attgenerated::text,
	ARRAY(SELECT ` + who("g.grantee") + ` || '|' || g.privilege_type || '|' || g.is_grantable::text
		FROM aclexplode(a.attacl) g)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum, ctx
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND ` + relFilter

	constraintsSQL = prologue + `
SELECT ` + relName + `, k.conname::text, k.contype::text, pg_get_constraintdef(k.oid), k.convalidated,
	ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(attnum, i)
		JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum ORDER BY u.i),
	COALESCE((SELECT CASE WHEN fn.nspname = 'public' THEN f.relname::text ELSE fn.nspname || '.' || f.relname END
		FROM pg_class f JOIN pg_namespace fn ON fn.oid = f.relnamespace WHERE f.oid = k.confrelid), '')
FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace, ctx
WHERE ` + relFilter

	indexesSQL = prologue + `
SELECT ` + relName + `, ic.relname::text, pg_get_indexdef(i.indexrelid), i.indisunique, i.indisprimary, i.indisvalid,
	ARRAY(SELECT a.attname::text FROM unnest(i.indkey::int2[]) WITH ORDINALITY u(attnum, k)
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = u.attnum
		WHERE u.k <= i.indnkeyatts ORDER BY u.k)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace, ctx
WHERE ` + relFilter

	triggersSQL = prologue + `
SELECT ` + relName + `, t.tgname::text, pg_get_triggerdef(t.oid), t.tgenabled::text,
	CASE WHEN pn.nspname = 'public' THEN p.proname::text ELSE pn.nspname || '.' || p.proname END
FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace, ctx
WHERE NOT t.tgisinternal AND ` + relFilter

	policiesSQL = prologue + `
SELECT ` + relName + `, p.polname::text, p.polpermissive, p.polcmd::text,
	ARRAY(SELECT ` + who("r") + ` FROM unnest(p.polroles) r),
	COALESCE(pg_get_expr(p.polqual, p.polrelid), ''), COALESCE(pg_get_expr(p.polwithcheck, p.polrelid), '')
FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace, ctx
WHERE ` + relFilter

	functionsSQL = prologue + `
SELECT CASE WHEN n.nspname = 'public' THEN '' ELSE n.nspname || '.' END || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
	p.prokind::text, ` + who("p.proowner") + `, p.prosecdef,
	md5(concat_ws('|', p.prosrc, p.probin, p.proconfig::text, p.prorettype::regtype::text, p.provolatile::text, p.proleakproof::text, p.proretset::text)),
	` + grants("p.proacl", "f", "p.proowner") + `
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, ctx
WHERE ` + userSchema + `
	AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`

	defaultPrivilegesSQL = prologue + `
SELECT ` + who("d.defaclrole") + `, COALESCE(n.nspname::text, ''), d.defaclobjtype::text,
	` + who("a.grantee") + `, a.privilege_type, a.is_grantable
FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
CROSS JOIN LATERAL aclexplode(d.defaclacl) a, ctx
WHERE a.grantee <> d.defaclrole`

	roleSQL = `
SELECT m.rolname::text, m.oid = r.oid, m.rolsuper, m.rolbypassrls, m.rolcreatedb, m.rolcreaterole, m.rolreplication,
	COALESCE(m.rolconfig, '{}')
FROM pg_roles r JOIN pg_roles m ON pg_has_role(r.oid, m.oid, 'MEMBER')
WHERE r.rolname = $1`
)

// read queues every query in one batch, so the fingerprint (and the role
// facts, with withRole) costs one round trip.
func read(ctx context.Context, conn Batcher, appRole string, withRole bool) (*Fingerprint, RoleFacts, error) {
	fp := &Fingerprint{}
	rels := map[string]*Relation{}
	rel := func(name string) *Relation {
		r := rels[name]
		if r == nil {
			r = &Relation{Name: name}
			rels[name] = r
		}
		return r
	}
	b := &pgx.Batch{}
	b.Queue(sourceSQL, appRole).QueryRow(func(row pgx.Row) error {
		var version *int64
		var dirty *bool
		var db Database
		var acl []string
		err := row.Scan(&fp.Source.Database, &fp.Source.OwnerRole, &fp.Source.ServerVersion, &version, &dirty,
			&db.Owner, &acl, &db.Settings, &db.AppOwned)
		fp.Source.MigrationVersion = -1
		if version != nil {
			fp.Source.MigrationVersion = *version
		}
		fp.Source.Dirty = dirty != nil && *dirty
		db.Grants = parseGrants(acl)
		fp.Database = db
		return err
	})
	b.Queue(schemasSQL, appRole).Query(func(rows pgx.Rows) error {
		var s Schema
		var acl []string
		_, err := pgx.ForEachRow(rows, []any{&s.Name, &s.Owner, &acl}, func() error {
			s.Grants = parseGrants(acl)
			fp.Schemas = append(fp.Schemas, s)
			return nil
		})
		return err
	})
	b.Queue(relationsSQL, appRole).Query(func(rows pgx.Rows) error {
		var name, kind, owner string
		var rls, force bool
		var acl []string
		_, err := pgx.ForEachRow(rows, []any{&name, &kind, &owner, &rls, &force, &acl}, func() error {
			r := rel(name)
			r.Kind, r.Owner, r.RLS, r.ForceRLS, r.Grants = relKind(kind), owner, rls, force, parseGrants(acl)
			return nil
		})
		return err
	})
	b.Queue(columnsSQL, appRole).Query(func(rows pgx.Rows) error {
		var name string
		var c Column
		var acl []string
		_, err := pgx.ForEachRow(rows, []any{&name, &c.Name, &c.Type, &c.NotNull, &c.Default, &c.Identity, &c.Generated, &acl}, func() error {
			c.Grants = parseGrants(acl)
			r := rel(name)
			r.Columns = append(r.Columns, c)
			return nil
		})
		return err
	})
	b.Queue(constraintsSQL, appRole).Query(func(rows pgx.Rows) error {
		var name, typ string
		var c Constraint
		_, err := pgx.ForEachRow(rows, []any{&name, &c.Name, &typ, &c.Definition, &c.Validated, &c.Columns, &c.References}, func() error {
			c.Type = constraintType(typ)
			c.Columns = slices.Clone(nilIfEmpty(c.Columns))
			r := rel(name)
			r.Constraints = append(r.Constraints, c)
			return nil
		})
		return err
	})
	b.Queue(indexesSQL, appRole).Query(func(rows pgx.Rows) error {
		var name string
		var ix Index
		_, err := pgx.ForEachRow(rows, []any{&name, &ix.Name, &ix.Definition, &ix.Unique, &ix.Primary, &ix.Valid, &ix.Columns}, func() error {
			ix.Columns = slices.Clone(nilIfEmpty(ix.Columns))
			r := rel(name)
			r.Indexes = append(r.Indexes, ix)
			return nil
		})
		return err
	})
	b.Queue(triggersSQL, appRole).Query(func(rows pgx.Rows) error {
		var name string
		var t Trigger
		_, err := pgx.ForEachRow(rows, []any{&name, &t.Name, &t.Definition, &t.Enabled, &t.Function}, func() error {
			r := rel(name)
			r.Triggers = append(r.Triggers, t)
			return nil
		})
		return err
	})
	b.Queue(policiesSQL, appRole).Query(func(rows pgx.Rows) error {
		var name, cmd string
		var p Policy
		_, err := pgx.ForEachRow(rows, []any{&name, &p.Name, &p.Permissive, &cmd, &p.Roles, &p.Using, &p.Check}, func() error {
			p.Command = policyCommand(cmd)
			p.Roles = sorted(slices.Clone(p.Roles))
			r := rel(name)
			r.Policies = append(r.Policies, p)
			return nil
		})
		return err
	})
	b.Queue(functionsSQL, appRole).Query(func(rows pgx.Rows) error {
		var f Function
		var acl []string
		_, err := pgx.ForEachRow(rows, []any{&f.Name, &f.Kind, &f.Owner, &f.SecurityDefiner, &f.Digest, &acl}, func() error {
			f.Grants = parseGrants(acl)
			fp.Functions = append(fp.Functions, f)
			return nil
		})
		return err
	})
	b.Queue(defaultPrivilegesSQL, appRole).Query(func(rows pgx.Rows) error {
		var d DefaultPrivilege
		var objects string
		_, err := pgx.ForEachRow(rows, []any{&d.Role, &d.Schema, &objects, &d.Grant.Grantee, &d.Grant.Privilege, &d.Grant.Grantable}, func() error {
			d.Objects = defaultObjects(objects)
			fp.DefaultPrivileges = append(fp.DefaultPrivileges, d)
			return nil
		})
		return err
	})
	var facts RoleFacts
	if withRole {
		queueRole(b, appRole, &facts)
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return nil, RoleFacts{}, fmt.Errorf("audit: read catalogs: %w", err)
	}
	for _, r := range rels {
		fp.Relations = append(fp.Relations, *r)
	}
	fp.normalise()
	return fp, facts, nil
}

func queueRole(b *pgx.Batch, appRole string, facts *RoleFacts) {
	facts.Name = appRole
	b.Queue(roleSQL, appRole).Query(func(rows pgx.Rows) error {
		var r Role
		var self bool
		var config []string
		_, err := pgx.ForEachRow(rows, []any{&r.Name, &self, &r.Superuser, &r.BypassRLS, &r.CreateDB, &r.CreateRole, &r.Replication, &config}, func() error {
			if self {
				facts.Exists = true
				facts.Role = r
				facts.Config = sorted(nilIfEmpty(slices.Clone(config)))
			} else {
				facts.MemberOf = append(facts.MemberOf, r)
			}
			return nil
		})
		slices.SortFunc(facts.MemberOf, func(a, b Role) int { return strings.Compare(a.Name, b.Name) })
		return err
	})
}

// normalise sorts every list by byte order and makes empty lists nil, so
// that equal schemas give deeply equal fingerprints.
func (f *Fingerprint) normalise() {
	byName := func(a, b string) int { return strings.Compare(a, b) }
	f.Database.Grants = sortGrants(f.Database.Grants)
	f.Database.Settings = sorted(nilIfEmpty(f.Database.Settings))
	f.Database.AppOwned = sorted(nilIfEmpty(f.Database.AppOwned))
	for i := range f.Schemas {
		f.Schemas[i].Grants = sortGrants(f.Schemas[i].Grants)
	}
	slices.SortFunc(f.Schemas, func(a, b Schema) int { return byName(a.Name, b.Name) })
	for i := range f.Relations {
		r := &f.Relations[i]
		r.Grants = sortGrants(r.Grants)
		for j := range r.Columns {
			r.Columns[j].Grants = sortGrants(r.Columns[j].Grants)
		}
		slices.SortFunc(r.Columns, func(a, b Column) int { return byName(a.Name, b.Name) })
		slices.SortFunc(r.Constraints, func(a, b Constraint) int { return byName(a.Name, b.Name) })
		slices.SortFunc(r.Indexes, func(a, b Index) int { return byName(a.Name, b.Name) })
		slices.SortFunc(r.Triggers, func(a, b Trigger) int { return byName(a.Name, b.Name) })
		slices.SortFunc(r.Policies, func(a, b Policy) int { return byName(a.Name, b.Name) })
	}
	slices.SortFunc(f.Relations, func(a, b Relation) int { return byName(a.Name, b.Name) })
	for i := range f.Functions {
		f.Functions[i].Grants = sortGrants(f.Functions[i].Grants)
	}
	slices.SortFunc(f.Functions, func(a, b Function) int { return byName(a.Name, b.Name) })
	slices.SortFunc(f.DefaultPrivileges, func(a, b DefaultPrivilege) int {
		return cmp.Or(byName(a.Role, b.Role), byName(a.Schema, b.Schema), byName(a.Objects, b.Objects), compareGrants(a.Grant, b.Grant))
	})
	f.Schemas = nilIfEmpty(f.Schemas)
	f.Relations = nilIfEmpty(f.Relations)
	f.Functions = nilIfEmpty(f.Functions)
	f.DefaultPrivileges = nilIfEmpty(f.DefaultPrivileges)
}

// parseGrants reads the "grantee|privilege|grantable" strings the queries
// build from ACLs.
func parseGrants(acl []string) []Grant {
	var out []Grant
	for _, s := range acl {
		parts := strings.SplitN(s, "|", 3)
		if len(parts) != 3 {
			continue
		}
		out = append(out, Grant{Grantee: parts[0], Privilege: parts[1], Grantable: parts[2] == "true"})
	}
	return out
}

func compareGrants(a, b Grant) int {
	return cmp.Or(strings.Compare(a.Grantee, b.Grantee), strings.Compare(a.Privilege, b.Privilege), boolCompare(a.Grantable, b.Grantable))
}

func boolCompare(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func sortGrants(g []Grant) []Grant {
	g = nilIfEmpty(g)
	slices.SortFunc(g, compareGrants)
	return slices.Compact(g)
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

func relKind(k string) string {
	switch k {
	case "r":
		return KindTable
	case "p":
		return KindPartitionedTable
	case "v":
		return KindView
	case "m":
		return KindMaterializedView
	case "S":
		return KindSequence
	case "f":
		return KindForeignTable
	}
	return k
}

func constraintType(t string) string {
	switch t {
	case "p":
		return "PRIMARY KEY"
	case "u":
		return "UNIQUE"
	case "f":
		return "FOREIGN KEY"
	case "c":
		return "CHECK"
	case "x":
		return "EXCLUDE"
	case "t":
		return "TRIGGER"
	case "n":
		return "NOT NULL"
	}
	return t
}

func policyCommand(c string) string {
	switch c {
	case "r":
		return "SELECT"
	case "a":
		return "INSERT"
	case "w":
		return "UPDATE"
	case "d":
		return "DELETE"
	}
	return "ALL"
}

func defaultObjects(t string) string {
	switch t {
	case "r":
		return "tables"
	case "S":
		return "sequences"
	case "f":
		return "functions"
	case "T":
		return "types"
	case "n":
		return "schemas"
	}
	return t
}
