package archive_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/archive"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// A shared tenant exported by the application role (as the owner endpoint
// would) and imported into a dedicated database as a new organization
// arrives row for row, apart from organization_id; its idempotency
// records stay behind.
func TestRoundTripSharedToDedicated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	a, neighbour := org("acme"), org("neighbour")
	seed(t, b.shared, a.ID, 2000, "acme")
	seed(t, b.shared, neighbour.ID, 500, "neighbour")

	data, m := export(t, b.app(t, b.shared), a, archive.ExportOptions{SchemaVersion: version(t, b.shared)})
	require.Equal(t, a.ID, m.Organization.ID)
	require.Equal(t, a.Slug, m.Organization.Slug)
	require.Equal(t, version(t, b.shared), m.SchemaVersion)
	counts := count(t, b.shared, a.ID)
	for _, tbl := range m.Tables {
		require.Equal(t, counts[tbl.Name], tbl.Rows, tbl.Name)
	}
	require.Len(t, m.Tables, len(archive.Tables))

	verified, err := archive.Verify(bytes.NewReader(data))
	require.NoError(t, err)
	require.Equal(t, m, verified)

	newID := uuid.NewString()
	got, err := archive.Import(ctx, bytes.NewReader(data), b.owner(t, b.dedicated), newID, archive.ImportOptions{})
	require.NoError(t, err)
	require.Equal(t, m, got)
	require.Equal(t, rows(t, b.shared, a.ID), rows(t, b.dedicated, newID))
	require.Zero(t, count(t, b.dedicated, newID)["idempotency_keys"])
	require.Equal(t, total(t, b.dedicated), int(m.Rows()), "only the archive's rows arrived")
}

// A dedicated tenant exported by its owner and imported into the shared
// database by the application role, next to a neighbour that keeps the
// same ids: keys are composite, so object ids are kept.
func TestRoundTripDedicatedToShared(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	a, neighbour := org("acme"), org("neighbour")
	seed(t, b.dedicated, a.ID, 2000, "acme")
	seed(t, b.shared, neighbour.ID, 500, "neighbour")
	data, _ := export(t, b.owner(t, b.dedicated), a, archive.ExportOptions{})

	// Import the same archive twice into the shared database: the second
	// organization has the very same object ids as the first.
	before := raw(t, b.shared, neighbour.ID)
	first, second := uuid.NewString(), uuid.NewString()
	_, err := archive.Import(ctx, bytes.NewReader(data), b.app(t, b.shared), first, archive.ImportOptions{SchemaVersion: version(t, b.shared)})
	require.NoError(t, err)
	_, err = archive.Import(ctx, bytes.NewReader(data), b.owner(t, b.shared), second, archive.ImportOptions{})
	require.NoError(t, err)
	want := rows(t, b.dedicated, a.ID)
	require.Equal(t, want, rows(t, b.shared, first))
	require.Equal(t, want, rows(t, b.shared, second))
	require.Equal(t, before, raw(t, b.shared, neighbour.ID))
}

// The export of tenant A holds no row of tenant B in the same database,
// whether read by a role under row-level security or by a superuser that
// bypasses it.
func TestExportHoldsOnlyItsTenant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a, other := org("acme"), org("other")
	seed(t, b.shared, a.ID, 1000, "acme-marker")
	seed(t, b.shared, other.ID, 1000, "other-marker")
	otherIDs := rows(t, b.shared, other.ID)

	for name, conn := range map[string]func() *archiveConn{
		"application-role": func() *archiveConn { return &archiveConn{b.app(t, b.shared), version(t, b.shared)} },
		"superuser":        func() *archiveConn { return &archiveConn{b.owner(t, b.shared), 0} },
	} {
		t.Run(name, func(t *testing.T) {
			c := conn()
			data, m := export(t, c.conn, a, archive.ExportOptions{SchemaVersion: c.version})
			counts := count(t, b.shared, a.ID)
			for _, tbl := range m.Tables {
				require.Equal(t, counts[tbl.Name], tbl.Rows, tbl.Name)
			}
			var names []string
			for _, e := range unpack(t, data) {
				names = append(names, e.name)
				require.NotContains(t, string(e.data), "other-marker", e.name)
				require.NotContains(t, string(e.data), other.ID, e.name)
				require.NotContains(t, string(e.data), "tg_", e.name) // the idempotency records' "secrets"
				for _, ids := range otherIDs {
					for id := range ids {
						require.NotContains(t, string(e.data), id, e.name)
					}
				}
			}
			want := []string{"manifest.json"}
			for _, tbl := range archive.Tables {
				want = append(want, "tables/"+tbl+".copy")
			}
			require.Equal(t, want, names, "no users, no idempotency records")
		})
	}
}

type archiveConn struct {
	conn    *pgx.Conn
	version uint // zero: read by Export
}

// The archive is one snapshot: rows committed while the export reads
// other tables are not in it, and every reference in it resolves.
func TestExportIsOneSnapshot(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	a := org("acme")
	seed(t, b.shared, a.ID, 1000, "acme")
	before := count(t, b.shared, a.ID)
	writer := b.owner(t, b.shared)

	var buf bytes.Buffer
	m, err := archive.Export(ctx, &buf, b.owner(t, b.shared), a, archive.ExportOptions{Progress: func(table string, _ int64) {
		if table != "agents" {
			return
		}
		// Agents were read; commit a new agent and a task of it.
		_, err := writer.Exec(ctx, `WITH n AS (INSERT INTO agents (organization_id, name) VALUES ($1, 'late') RETURNING id)
			INSERT INTO tasks (organization_id, agent_id, title) SELECT $1, id, 'late task' FROM n`, a.ID)
		require.NoError(t, err)
	}})
	require.NoError(t, err)
	for _, tbl := range m.Tables {
		require.Equal(t, before[tbl.Name], tbl.Rows, tbl.Name)
	}
	require.Equal(t, before["tasks"]+1, count(t, b.shared, a.ID)["tasks"])
	require.NotContains(t, buf.String(), "late task")

	// And the archive loads: its foreign keys resolve within it.
	_, err = archive.Import(ctx, bytes.NewReader(buf.Bytes()), b.owner(t, b.dedicated), uuid.NewString(), archive.ImportOptions{})
	require.NoError(t, err)
}

// --with-users: users.json holds emails, names and roles, nothing else.
func TestExportWithUsers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := org("acme")
	seed(t, b.shared, a.ID, 100, "acme")
	users := []archive.User{{Email: "owner@acme.test", Name: "Olive Owner", Role: tenancy.RoleOwner},
		{Email: "member@acme.test", Role: tenancy.RoleMember}}
	data, m := export(t, b.owner(t, b.shared), a, archive.ExportOptions{Users: users})
	require.NotNil(t, m.Users)
	require.Equal(t, 2, m.Users.Count)

	entries := unpack(t, data)
	require.Equal(t, "users.json", entries[1].name)
	var got []map[string]any
	require.NoError(t, json.Unmarshal(entries[1].data, &got))
	require.Equal(t, []map[string]any{{"email": "owner@acme.test", "name": "Olive Owner", "role": "owner"},
		{"email": "member@acme.test", "role": "member"}}, got)

	rd, err := archive.Open(bytes.NewReader(data))
	require.NoError(t, err)
	defer rd.Close()
	require.Equal(t, users, rd.Users())

	// An export without users has none, and an empty list is kept as such.
	_, m = export(t, b.owner(t, b.shared), a, archive.ExportOptions{})
	require.Nil(t, m.Users)
	data, m = export(t, b.owner(t, b.shared), a, archive.ExportOptions{Users: []archive.User{}})
	require.Equal(t, 0, m.Users.Count)
	_, err = archive.Verify(bytes.NewReader(data))
	require.NoError(t, err)
}

// An archive of an older tenant schema is brought forward: the columns
// it lacks take their defaults. One that cannot be (a required column
// without a default) is refused before anything is written.
func TestImportOlderSchema(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	// A database at tenant schema version 1: tasks have no agent_minutes,
	// and there are no idempotency records.
	name := b.env.Prefix + "old"
	old := b.env.DatabaseURL(t, name)
	require.NoError(t, schema.CreateDatabase(ctx, b.env.ServerURL, name))
	_, err := schema.MigrateTo(ctx, old, migrations.Tenant, "tenant", 1)
	require.NoError(t, err)
	a := org("acme")
	conn := b.owner(t, old)
	_, err = conn.Exec(ctx, `INSERT INTO agents (organization_id, id, name) VALUES ($1, $2, 'old agent')`, a.ID, uuid.NewString())
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `INSERT INTO tasks (organization_id, agent_id, title) SELECT organization_id, id, 'old task' FROM agents`)
	require.NoError(t, err)

	data, m := export(t, conn, a, archive.ExportOptions{})
	require.EqualValues(t, 1, m.SchemaVersion)
	require.NotContains(t, m.Tables[1].Columns, "agent_minutes")

	newID := uuid.NewString()
	_, err = archive.Import(ctx, bytes.NewReader(data), b.owner(t, b.dedicated), newID, archive.ImportOptions{})
	require.NoError(t, err)
	var title string
	var minutes *int
	require.NoError(t, b.owner(t, b.dedicated).QueryRow(ctx, `SELECT title, agent_minutes FROM tasks WHERE organization_id = $1`, newID).
		Scan(&title, &minutes))
	require.Equal(t, "old task", title)
	require.Nil(t, minutes)

	// A database where a later migration made a required column without
	// a default: the old archive cannot fill it.
	_, err = b.owner(t, b.shared).Exec(ctx, `ALTER TABLE tasks ADD COLUMN required_now text NOT NULL`)
	require.NoError(t, err)
	_, err = archive.Import(ctx, bytes.NewReader(data), b.owner(t, b.shared), uuid.NewString(), archive.ImportOptions{})
	require.ErrorIs(t, err, archive.ErrIncompatible)
	require.Contains(t, err.Error(), "tasks.required_now")
	require.Zero(t, total(t, b.shared))
}

// Import loads only into an organization without rows: it never merges.
func TestImportRefusesNonEmptyOrganization(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	a, target := org("acme"), org("target")
	seed(t, b.shared, a.ID, 200, "acme")
	seed(t, b.dedicated, target.ID, 200, "target")
	data, _ := export(t, b.owner(t, b.shared), a, archive.ExportOptions{})
	before := raw(t, b.dedicated, target.ID)

	_, err := archive.Import(ctx, bytes.NewReader(data), b.owner(t, b.dedicated), target.ID, archive.ImportOptions{})
	require.ErrorIs(t, err, archive.ErrNotEmpty)
	require.Equal(t, tenancy.CodeConflict, tenancy.ErrorCode(err))
	require.Equal(t, before, raw(t, b.dedicated, target.ID))

	// Idempotency records alone count as rows too.
	only := uuid.NewString()
	_, err = b.owner(t, b.dedicated).Exec(ctx, `INSERT INTO idempotency_keys (organization_id, key, request_hash) VALUES ($1, 'k', '\x00')`, only)
	require.NoError(t, err)
	_, err = archive.Import(ctx, bytes.NewReader(data), b.owner(t, b.dedicated), only, archive.ImportOptions{})
	require.ErrorIs(t, err, archive.ErrNotEmpty)
	require.Contains(t, err.Error(), "idempotency_keys")
}

// Export refuses a database with a tenant table it does not know, and
// one whose columns say they hold secrets: an archive never silently
// leaves tenant rows out, nor carries a secret.
func TestExportRefusesUnknownTablesAndSecrets(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	a := org("acme")
	for _, tc := range []struct{ ddl, undo, want string }{
		{`CREATE TABLE widgets (organization_id uuid NOT NULL, id uuid PRIMARY KEY)`, `DROP TABLE widgets`, "table widgets holds tenant rows"},
		{`ALTER TABLE agents ADD COLUMN password_hash text`, `ALTER TABLE agents DROP COLUMN password_hash`, "agents.password_hash looks like a secret"},
		{`ALTER TABLE agents ADD COLUMN webhook_secret text`, `ALTER TABLE agents DROP COLUMN webhook_secret`, "agents.webhook_secret looks like a secret"},
	} {
		conn := b.owner(t, b.shared)
		_, err := conn.Exec(ctx, tc.ddl)
		require.NoError(t, err)
		var buf bytes.Buffer
		_, err = archive.Export(ctx, &buf, conn, a, archive.ExportOptions{})
		require.ErrorContains(t, err, tc.want)
		require.Zero(t, buf.Len(), "nothing written")
		_, err = conn.Exec(ctx, tc.undo)
		require.NoError(t, err)
	}
	_, err := archive.Export(ctx, &bytes.Buffer{}, b.owner(t, b.shared), a, archive.ExportOptions{})
	require.NoError(t, err)

	// The application role may not read the migration ledger: it says so.
	_, err = archive.Export(ctx, &bytes.Buffer{}, b.app(t, b.shared), a, archive.ExportOptions{})
	require.ErrorContains(t, err, "schema version")
	// And a bad id is refused before anything is read.
	_, err = archive.Export(ctx, &bytes.Buffer{}, b.app(t, b.shared), tenancy.Organization{ID: "x'; DROP TABLE agents; --"}, archive.ExportOptions{})
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
}

// An empty organization exports and imports: every table, zero rows.
func TestEmptyOrganization(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := org("empty")
	data, m := export(t, b.app(t, b.shared), a, archive.ExportOptions{SchemaVersion: version(t, b.shared)})
	require.Zero(t, m.Rows())
	require.Len(t, m.Tables, len(archive.Tables))
	_, err := archive.Import(testCtx(t), bytes.NewReader(data), b.owner(t, b.dedicated), uuid.NewString(), archive.ImportOptions{})
	require.NoError(t, err)
	require.Zero(t, total(t, b.dedicated))
}
