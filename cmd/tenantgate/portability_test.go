package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestExportImportRestore drives the portability commands over real
// databases: a shared tenant's archive becomes a new enterprise tenant with
// the same rows in its own database; a tampered archive is refused with
// nothing left behind; a restore brings back exactly the archive's rows
// and leaves a neighbour in the shared database as it was.
func TestExportImportRestore(t *testing.T) {
	e := env(t)
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	for _, slug := range []string{"src", "neighbour"} {
		_, _, err = tg(t, "tenants", "create", "--slug", slug, "--name", strings.ToUpper(slug), "--plan", "pro")
		require.NoError(t, err)
	}
	shared := tenancytest.Connect(t, e.SharedURL)
	cat := tenancytest.Connect(t, e.CatalogURL)
	orgID := func(slug string) string {
		var id string
		require.NoError(t, cat.QueryRow(context.Background(), `SELECT id::text FROM organizations WHERE slug = $1`, slug).Scan(&id))
		return id
	}
	src, neighbour := orgID("src"), orgID("neighbour")
	for _, name := range []string{"alpha", "beta", "gamma"} {
		_, err := shared.Exec(context.Background(), `INSERT INTO agents (organization_id, name) VALUES ($1, $2), ($3, $2)`, src, name, neighbour)
		require.NoError(t, err)
	}
	names := func(conn *pgx.Conn, org string) []string {
		rows, err := conn.Query(context.Background(), `SELECT name FROM agents WHERE organization_id = $1 ORDER BY name`, org)
		require.NoError(t, err)
		out, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return out
	}
	neighbourRows := func() string {
		var s string
		require.NoError(t, shared.QueryRow(context.Background(), `SELECT string_agg(a::text, '|' ORDER BY id) FROM agents a
			WHERE organization_id = $1`, neighbour).Scan(&s))
		return s
	}
	before := neighbourRows()

	dir := t.TempDir()
	file := filepath.Join(dir, "src.tgarchive")
	out, _, err := tg(t, "tenants", "export", "src", "--out", file)
	require.NoError(t, err, out)
	require.Contains(t, out, "3 rows")

	out, _, err = tg(t, "tenants", "import", file, "--slug", "copy", "--plan", "enterprise")
	require.NoError(t, err, out)
	require.Contains(t, out, "placement dedicated")
	dedicated := tenancytest.Connect(t, e.DatabaseURL(t, e.DedicatedPrefix+"copy"))
	require.Equal(t, []string{"alpha", "beta", "gamma"}, names(dedicated, orgID("copy")))

	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	raw[len(raw)/2] ^= 0x01
	bad := filepath.Join(dir, "bad.tgarchive")
	require.NoError(t, os.WriteFile(bad, raw, 0o600))
	_, _, err = tg(t, "tenants", "import", bad, "--slug", "tampered")
	require.Error(t, err, "a tampered archive is refused")
	var n int
	require.NoError(t, cat.QueryRow(context.Background(), `SELECT count(*) FROM organizations WHERE slug = 'tampered'`).Scan(&n))
	require.Zero(t, n, "and no organization is left behind")

	_, err = shared.Exec(context.Background(), `DELETE FROM agents WHERE organization_id = $1 AND name = 'beta'`, src)
	require.NoError(t, err)
	_, err = shared.Exec(context.Background(), `UPDATE agents SET name = 'edited' WHERE organization_id = $1 AND name = 'alpha'`, src)
	require.NoError(t, err)
	_, _, err = tg(t, "tenants", "restore", "src", file)
	require.Equal(t, 2, report(&strings.Builder{}, err), "restore needs --yes")
	out, _, err = tg(t, "tenants", "restore", "src", file, "--yes")
	require.NoError(t, err, out)
	require.Equal(t, []string{"alpha", "beta", "gamma"}, names(shared, src), "exactly the archive's state")
	require.Equal(t, before, neighbourRows(), "the neighbour is untouched")
	var fences int
	require.NoError(t, shared.QueryRow(context.Background(), `SELECT count(*) FROM tenant_fences`).Scan(&fences))
	require.Zero(t, fences, "the restore's fence is lifted")
}
