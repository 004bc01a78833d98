package provisioner

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// TestSlugTemplateIsNotTheTemplate: an enterprise tenant with the slug
// "template" gets a database of its own, not the template dedicated
// databases are copied from, and the next tenant's copy holds none of its
// rows.
func TestSlugTemplateIsNotTheTemplate(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := context.Background()
	first, err := f.prov.CreateOrganization(c, CreateOrganization{Slug: "template", Name: "T", Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	firstDB := f.dedicatedDatabase(t, first.ID)
	require.NotEqual(t, f.cfg.TemplateName(), firstDB.Name)

	// Closed before the next copy: PostgreSQL copies no database in use.
	conn, err := pgx.Connect(c, firstDB.DSN)
	require.NoError(t, err)
	_, err = conn.Exec(c, `INSERT INTO agents (organization_id, name) VALUES ($1, 'first''s agent')`, first.ID)
	require.NoError(t, err)
	require.NoError(t, conn.Close(c))

	second, err := f.prov.CreateOrganization(c, CreateOrganization{Slug: "second", Name: "S", Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	secondDB := f.dedicatedDatabase(t, second.ID)
	require.NotEqual(t, firstDB.Name, secondDB.Name)
	require.NotEqual(t, f.cfg.TemplateName(), secondDB.Name)
	require.Equal(t, 1, f.databases(t, f.cfg.TemplateName()), "the template exists, under its own name")
	for _, dsn := range []string{secondDB.DSN, f.env.DatabaseURL(t, f.cfg.TemplateName())} {
		conn, err := pgx.Connect(c, dsn)
		require.NoError(t, err)
		var rows int
		err = conn.QueryRow(c, `SELECT (SELECT count(*) FROM agents) + (SELECT count(*) FROM tasks) + (SELECT count(*) FROM activity_logs)`).Scan(&rows)
		require.NoError(t, conn.Close(c))
		require.NoError(t, err)
		require.Zero(t, rows, "no row of the first tenant in %s", dsn)
	}
}

func (f *fleet) dedicatedDatabase(t *testing.T, orgID string) tenancy.Database {
	t.Helper()
	pl, err := f.store.Placement(context.Background(), orgID)
	require.NoError(t, err)
	require.Equal(t, tenancy.KindDedicated, pl.Kind)
	db, err := f.store.Database(context.Background(), pl.DatabaseID)
	require.NoError(t, err)
	return db
}

// TestDedicatedNamesAvoidOwnDatabases: no slug names the catalog, a shared
// database or the template, whatever the prefix.
func TestDedicatedNamesAvoidOwnDatabases(t *testing.T) {
	t.Parallel()
	cfg := Config{DedicatedPrefix: "tg_tenant_", CatalogURL: "postgres://h/tg_tenant_catalog",
		SharedURL: "postgres://h/tg_tenant_shared"}
	for slug, want := range map[string]string{
		"big-corp": "tg_tenant_big_corp",
		"template": "tg_tenant_template",
		"shared":   "tg_tenant_shared_",
		"catalog":  "tg_tenant_catalog_",
	} {
		require.Equal(t, want, cfg.DedicatedName(slug), slug)
	}
	require.Equal(t, "tg_tenant__template", cfg.TemplateName())
	require.ElementsMatch(t, []string{"tg_tenant__template", "tg_tenant_catalog", "tg_tenant_shared"}, cfg.OwnDatabases())

	// Own names that end with underscores themselves.
	cfg = Config{DedicatedPrefix: "t_", CatalogURL: "postgres://h/t_x", SharedURL: "postgres://h/t_x_"}
	require.Equal(t, "t_x__", cfg.DedicatedName("x"))
	for _, slug := range []string{"x", "template", "a-template", "t"} {
		require.False(t, slices.Contains(cfg.OwnDatabases(), cfg.DedicatedName(slug)), slug)
	}
}

// TestRegisterDedicatedAvoidsSharedDatabases: a shared database the
// catalog knows, beyond the configured one, is no tenant's either.
func TestRegisterDedicatedAvoidsSharedDatabases(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := context.Background()
	name := f.cfg.DedicatedPrefix + "pool2"
	_, err := f.store.RegisterDatabase(c, tenancy.Database{Name: name, Kind: tenancy.KindShared,
		DSN: f.env.DatabaseURL(t, name), State: "creating"})
	require.NoError(t, err)
	db, err := f.prov.RegisterDedicated(c, "pool2")
	require.NoError(t, err)
	require.Equal(t, name+"_", db.Name)
	require.Equal(t, tenancy.KindDedicated, db.Kind)
}

// TestDroppedTemplateIsMadeAgain: a template dropped under a running
// provisioner (by hand, or by a sweep that did not know it) costs one
// provisioning the slow path; the next one makes the template again.
func TestDroppedTemplateIsMadeAgain(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	c := context.Background()
	for i, slug := range []string{"before", "during", "after"} {
		if i == 1 {
			require.NoError(t, schema.DropDatabase(c, f.env.ServerURL, f.cfg.TemplateName()))
		}
		o, err := f.prov.CreateOrganization(c, CreateOrganization{Slug: slug, Name: slug, Plan: tenancy.PlanEnterprise})
		require.NoError(t, err, slug)
		require.NoError(t, f.prov.verify(c, f.dedicatedDatabase(t, o.ID).DSN), slug)
	}
	require.Equal(t, 1, f.databases(t, f.cfg.TemplateName()), "the template is back")
}
