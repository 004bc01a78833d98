package audit

import (
	"context"
	"io/fs"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestFreshDatabaseIsOK(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dsn := f.database(t, "fresh")
	r := f.audit(t, dsn, newestVersion(t))
	assert.Equal(t, OK, r.Verdict, r.String())
	assert.Empty(t, r.Findings)
	assert.Equal(t, ExitOK, r.ExitCode())
	assert.Equal(t, f.env.Prefix+"fresh", r.Database)
}

// The shared database and a dedicated one at the same version fingerprint
// equal, though they are built differently: the shared one created and
// migrated by the superuser, the dedicated one copied from a template and
// owned, migrated and granted by another role, as on another server.
func TestSharedAndDedicatedFingerprintEqual(t *testing.T) {
	t.Parallel()
	f := setup(t)
	owner := f.ownerRole
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	shared := f.database(t, "shared")

	root := tenancytest.Connect(t, f.env.DatabaseURL(t, "postgres"))
	// CREATEDB, as a provisioner's owner DSN has: the audit makes its
	// scratch database with the audited DSN.
	_, err := root.Exec(ctx, "CREATE ROLE "+pgx.Identifier{owner}.Sanitize()+" LOGIN CREATEDB")
	require.NoError(t, err)
	tmpl, dedicated := f.env.Prefix+"tmpl", f.env.Prefix+"d_acme"
	_, err = root.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{tmpl}.Sanitize()+" OWNER "+pgx.Identifier{owner}.Sanitize())
	require.NoError(t, err)
	tmplDSN, err := schema.WithUser(f.env.DatabaseURL(t, tmpl), owner, "")
	require.NoError(t, err)
	_, err = schema.Migrate(ctx, tmplDSN, migrations.Tenant, "tenant", 0)
	require.NoError(t, err)
	_, err = root.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{dedicated}.Sanitize()+
		" TEMPLATE "+pgx.Identifier{tmpl}.Sanitize()+" OWNER "+pgx.Identifier{owner}.Sanitize())
	require.NoError(t, err)
	dedicatedDSN, err := schema.WithUser(f.env.DatabaseURL(t, dedicated), owner, "")
	require.NoError(t, err)
	require.NoError(t, schema.GrantApp(ctx, tenancytest.Connect(t, dedicatedDSN), f.appRole))

	a, roleA, err := ReadDSN(ctx, shared, f.appRole)
	require.NoError(t, err)
	b, roleB, err := ReadDSN(ctx, dedicatedDSN, f.appRole)
	require.NoError(t, err)
	assert.NotEqual(t, a.Source.OwnerRole, b.Source.OwnerRole)
	assert.True(t, Equal(a, b))
	assert.Equal(t, a.Digest(), b.Digest())
	if !Equal(a, b) { // show where
		a.Source, b.Source = Source{}, Source{}
		assert.Equal(t, a, b)
	}
	assert.Equal(t, roleA, roleB)

	// What it holds, so an empty fingerprint cannot pass for equal.
	agents := relationNamed(t, a, "agents")
	assert.True(t, agents.RLS && agents.ForceRLS)
	assert.Equal(t, "owner", agents.Owner)
	assert.Contains(t, agents.Grants, Grant{Grantee: "app", Privilege: "SELECT"})
	assert.Len(t, agents.Policies, 1)
	assert.Len(t, agents.Triggers, 3)
	fences := relationNamed(t, a, "tenant_fences")
	assert.True(t, fences.RLS)
	assert.False(t, fences.ForceRLS)
	assert.Equal(t, int64(newestVersion(t)), a.Source.MigrationVersion)
	for _, r := range a.Relations {
		assert.NotEqual(t, "schema_migrations", r.Name)
	}

	// Audited by an auditor of its own, the expected schema is built with
	// the dedicated database's DSN, by its owner role, every time.
	r, err := New(Config{ScratchPrefix: auditor.cfg.ScratchPrefix}).Audit(ctx, dedicatedDSN, f.appRole, 0)
	require.NoError(t, err)
	assert.Equal(t, OK, r.Verdict, r.String())
}

func relationNamed(t *testing.T, fp *Fingerprint, name string) Relation {
	t.Helper()
	for _, r := range fp.Relations {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no relation %s in the fingerprint", name)
	return Relation{}
}

// Each case breaks one isolation property of a freshly migrated database
// by hand; the audit must call it unsafe and name that property (and no
// other).
func TestUnsafe(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		stmts []string
		want  Property
		msg   string
	}{
		{"rls disabled", []string{"ALTER TABLE agents DISABLE ROW LEVEL SECURITY"},
			PropertyRLSDisabled, "agents: row-level security disabled"},
		{"no force", []string{"ALTER TABLE tasks NO FORCE ROW LEVEL SECURITY"},
			PropertyRLSNotForced, "tasks: row-level security not forced"},
		{"permissive policy", []string{"CREATE POLICY leak ON messages USING (true)"},
			PropertyPolicy, "messages: permissive policy leak not expected: permissive FOR ALL TO public USING true"},
		{"policy loosened", []string{"ALTER POLICY tenant_isolation ON schedules USING (true)"},
			PropertyPolicy, "schedules: policy tenant_isolation is permissive FOR ALL TO public USING true WITH CHECK (organization_id = "},
		{"bypassrls", []string{"ALTER ROLE %[1]s BYPASSRLS"},
			PropertyRoleAttribute, "_app: has BYPASSRLS"},
		{"createdb", []string{"ALTER ROLE %[1]s CREATEDB"},
			PropertyRoleAttribute, "_app: has CREATEDB"},
		{"table owned by app", []string{"ALTER TABLE agent_sessions OWNER TO %[1]s"},
			PropertyOwner, "table agent_sessions: owned by the application role"},
		{"new unprotected table", []string{
			"CREATE TABLE secrets (organization_id uuid NOT NULL, value text)",
			"GRANT SELECT ON secrets TO %[1]s"},
			PropertyUnprotected, "secrets: table readable by the application role without row-level security"},
		{"fence trigger dropped", []string{"DROP TRIGGER tenant_fence_insert ON agents"},
			PropertyFence, "agents: fence trigger tenant_fence_insert missing"},
		{"fence trigger disabled", []string{"ALTER TABLE tasks DISABLE TRIGGER tenant_fence_update"},
			PropertyFence, "tasks: fence trigger tenant_fence_update disabled"},
		{"widened grant", []string{"GRANT TRUNCATE ON agents TO %[1]s"},
			PropertyGrant, "agents: TRUNCATE granted to app not expected"},
		{"grant to public", []string{"GRANT SELECT ON tenant_fences TO PUBLIC"},
			PropertyGrant, "tenant_fences: SELECT granted to public not expected"},
		{"member of pg_read_all_data", []string{"GRANT pg_read_all_data TO %[1]s"},
			PropertyGrant, "_app: member of pg_read_all_data"},
		{"unique key without organization", []string{"CREATE UNIQUE INDEX agents_global_name_idx ON agents (name)"},
			PropertyKey, "agents: unique index agents_global_name_idx does not include organization_id"},
		{"create on schema", []string{"GRANT CREATE ON SCHEMA public TO %[1]s"},
			PropertyGrant, "schema public: CREATE granted to app not expected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t)
			dsn := f.database(t, "db")
			f.exec(t, dsn, tc.stmts...)
			r := f.audit(t, dsn, newestVersion(t))
			assert.Equal(t, Unsafe, r.Verdict, r.String())
			assert.Equal(t, []Property{tc.want}, r.Properties(), r.String())
			assert.True(t, slices.ContainsFunc(messages(r), func(m string) bool { return strings.Contains(m, tc.msg) }),
				"want a finding with %q:\n%s", tc.msg, r)
			t.Log(r)
			assert.Equal(t, ExitUnsafe, r.ExitCode())
		})
	}
}

func TestDrift(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dsn := f.database(t, "drift")
	f.exec(t, dsn,
		"CREATE INDEX agents_model_idx ON agents (organization_id, model)",
		"ALTER TABLE agents ALTER COLUMN status SET DEFAULT 'paused'",
		"DROP INDEX tasks_status_idx")
	r := f.audit(t, dsn, newestVersion(t))
	assert.Equal(t, Drift, r.Verdict, r.String())
	assert.Equal(t, ExitDrift, r.ExitCode())
	assert.Empty(t, r.Properties())
	assert.ElementsMatch(t, []string{
		"agents: index agents_model_idx not expected",
		"agents: column status default 'paused'::text, expected 'active'::text",
		"tasks: index tasks_status_idx missing",
	}, messages(r))
}

// A database is audited against the version its ledger records (version
// 0), here an older one: the expected schema is computed per version.
func TestOlderVersion(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := f.env.Prefix + "v2"
	dsn := f.env.DatabaseURL(t, name)
	require.NoError(t, schema.CreateDatabase(ctx, f.env.ServerURL, name))
	_, err := schema.MigrateTo(ctx, dsn, migrations.Tenant, "tenant", 2)
	require.NoError(t, err)
	conn := tenancytest.Connect(t, dsn)
	require.NoError(t, schema.EnsureAppRole(ctx, conn, f.appRole, ""))
	require.NoError(t, schema.GrantApp(ctx, conn, f.appRole))

	r := f.audit(t, dsn, 0)
	assert.Equal(t, OK, r.Verdict, r.String())

	// Against version 3 it lacks the fences: unsafe, and the ledger's
	// version is named.
	r = f.audit(t, dsn, 3)
	assert.Equal(t, Unsafe, r.Verdict)
	assert.Equal(t, []Property{PropertyFence}, r.Properties(), r.String())
	assert.Contains(t, messages(r), "schema_migrations: version 2, audited against 3")
}

// A migration the audit has never seen is audited like the others: the
// expected schema comes from the migrations, so the new table's RLS,
// policy and fence are checked with no change to this package.
func TestNewMigrationNeedsNoChange(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{}
	entries, err := fs.ReadDir(migrations.Tenant, "tenant")
	require.NoError(t, err)
	for _, e := range entries {
		b, err := fs.ReadFile(migrations.Tenant, "tenant/"+e.Name())
		require.NoError(t, err)
		fsys["tenant/"+e.Name()] = &fstest.MapFile{Data: b}
	}
	fsys["tenant/000900_notes.up.sql"] = &fstest.MapFile{Data: []byte(`
CREATE TABLE notes (organization_id uuid NOT NULL, id uuid NOT NULL, body text NOT NULL, PRIMARY KEY (organization_id, id));
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notes
    USING (organization_id = NULLIF(current_setting('app.organization_id', true), '')::uuid);
CREATE TRIGGER tenant_fence_insert AFTER INSERT ON notes
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION tenant_fence_check();
`)}
	fsys["tenant/000900_notes.down.sql"] = &fstest.MapFile{Data: []byte(`DROP TABLE notes;`)}
	a := New(Config{ScratchPrefix: auditor.cfg.ScratchPrefix, Migrations: fsys, Dir: "tenant"})

	f := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := f.env.Prefix + "v900"
	dsn := f.env.DatabaseURL(t, name)
	require.NoError(t, schema.CreateDatabase(ctx, f.env.ServerURL, name))
	_, err = schema.MigrateTo(ctx, dsn, fsys, "tenant", 0)
	require.NoError(t, err)
	conn := tenancytest.Connect(t, dsn)
	require.NoError(t, schema.EnsureAppRole(ctx, conn, f.appRole, ""))
	require.NoError(t, schema.GrantApp(ctx, conn, f.appRole))

	r, err := a.Audit(ctx, dsn, f.appRole, 900)
	require.NoError(t, err)
	assert.Equal(t, OK, r.Verdict, r.String())

	f.exec(t, dsn, "ALTER TABLE notes NO FORCE ROW LEVEL SECURITY", "DROP TRIGGER tenant_fence_insert ON notes")
	r, err = a.Audit(ctx, dsn, f.appRole, 900)
	require.NoError(t, err)
	assert.Equal(t, []Property{PropertyFence, PropertyRLSNotForced}, r.Properties(), r.String())
}

// Concurrent callers of Expected for one version share one computation.
func TestExpectedComputedOnce(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.database(t, "role") // makes the application role exist
	a := New(Config{ScratchPrefix: auditor.cfg.ScratchPrefix})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	got := make([]*Fingerprint, 8)
	for i := range got {
		wg.Go(func() {
			fp, err := a.Expected(ctx, f.env.ServerURL, f.appRole, 3)
			assert.NoError(t, err)
			got[i] = fp
		})
	}
	wg.Wait()
	for _, fp := range got {
		assert.Same(t, got[0], fp)
	}
	require.NotNil(t, got[0])
	assert.Equal(t, int64(3), got[0].Source.MigrationVersion)

	_, err := a.Expected(ctx, f.env.ServerURL, f.appRole, 0)
	assert.Error(t, err)
}

// countingConn counts a connection's writes: with pgx, one per round trip.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// The whole fingerprint and the role's facts take one round trip.
func TestReadIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dsn := f.database(t, "trip")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := pgx.ParseConfig(dsn)
	require.NoError(t, err)
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	writes := &atomic.Int64{}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		return countingConn{Conn: c, writes: writes}, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	require.NoError(t, err)
	defer conn.Close(ctx)

	writes.Store(0)
	fp, role, err := read(ctx, conn, f.appRole, true)
	require.NoError(t, err)
	assert.Equal(t, int64(1), writes.Load())
	assert.NotEmpty(t, fp.Relations)
	assert.True(t, role.Exists)
}

func TestAuditAll(t *testing.T) {
	t.Parallel()
	f := setup(t)
	good := f.database(t, "good")
	bad := f.database(t, "bad")
	f.exec(t, bad, "ALTER TABLE agents DISABLE ROW LEVEL SECURITY")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res := auditor.AuditAll(ctx, f.appRole, []Target{
		{Name: "good", DSN: good},
		{Name: "bad", DSN: bad, Version: newestVersion(t)},
		{Name: "gone", DSN: f.env.DatabaseURL(t, f.env.Prefix+"gone")},
	}, 2)
	require.Len(t, res, 3)
	assert.NoError(t, res[0].Err)
	assert.Equal(t, OK, res[0].Report.Verdict)
	assert.NoError(t, res[1].Err)
	assert.Equal(t, Unsafe, res[1].Report.Verdict)
	assert.Error(t, res[2].Err)
	assert.Equal(t, "gone", res[2].Target.Name)
}

func TestAuditErrors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dsn := f.database(t, "errs")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := auditor.Audit(ctx, dsn, f.appRole+"_nobody", 0)
	assert.ErrorContains(t, err, "does not exist")
	_, err = auditor.Audit(ctx, dsn, f.appRole, 999)
	assert.ErrorContains(t, err, "version 999 is not a migration")
}
