package provisioner

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func configFor(e *tenancytest.Env) Config {
	return Config{
		CatalogURL: e.CatalogURL, SharedURL: e.SharedURL, DedicatedServerURL: e.ServerURL,
		DedicatedPrefix: e.DedicatedPrefix, AppRole: e.AppRole,
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestInitTwiceAndConcurrently(t *testing.T) {
	t.Parallel()
	e := tenancytest.NewEnv(t)
	cfg := configFor(e)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = Init(ctx(t), cfg, quiet) }()
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err, "concurrent inits all succeed")
	}
	require.NoError(t, Init(ctx(t), cfg, quiet), "and once more afterwards")

	cat := tenancytest.Connect(t, e.CatalogURL)
	var shared, version int
	require.NoError(t, cat.QueryRow(ctx(t), `SELECT count(*), max(schema_version) FROM databases WHERE kind = 'shared'`).Scan(&shared, &version))
	require.Equal(t, 1, shared, "the shared database is registered once")
	require.Equal(t, latestTenantVersion(t), version, "at the newest tenant migration")

	var super, bypass bool
	require.NoError(t, cat.QueryRow(ctx(t), `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1`, e.AppRole).Scan(&super, &bypass))
	require.False(t, super, "the application role is not a superuser")
	require.False(t, bypass, "the application role cannot bypass RLS")

	sh := tenancytest.Connect(t, e.SharedURL)
	var owned int
	require.NoError(t, sh.QueryRow(ctx(t), `SELECT count(*) FROM pg_tables t JOIN pg_roles r ON r.rolname = t.tableowner
		WHERE t.schemaname = 'public' AND r.rolname = $1`, e.AppRole).Scan(&owned))
	require.Zero(t, owned, "the application role owns no table")
	var forced int
	require.NoError(t, sh.QueryRow(ctx(t), `SELECT count(*) FROM pg_class WHERE relname = ANY($1) AND relrowsecurity AND relforcerowsecurity`,
		[]string{"agents", "tasks", "messages", "activity_logs", "agent_sessions", "schedules"}).Scan(&forced))
	require.Equal(t, 6, forced, "all six tenant tables have row-level security enabled and forced")
}

func TestCreateOrganizations(t *testing.T) {
	t.Parallel()
	e := tenancytest.NewEnv(t)
	cfg := configFor(e)
	require.NoError(t, Init(ctx(t), cfg, quiet))
	pool, err := pgxpool.New(ctx(t), e.CatalogURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store := catalog.New(pool)
	p := New(cfg, store, quiet)
	t.Cleanup(p.Close)

	small, err := p.CreateOrganization(ctx(t), CreateOrganization{Slug: "acme", Name: "Acme", Plan: tenancy.PlanPro,
		OwnerEmail: "Owner@Acme.test", OwnerPasswordHash: "x"})
	require.NoError(t, err)
	require.Equal(t, tenancy.KindShared, small.Placement)
	require.Equal(t, tenancy.StatusActive, small.Status)

	big, err := p.CreateOrganization(ctx(t), CreateOrganization{Slug: "big-corp", Name: "Big", Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	require.Equal(t, tenancy.KindDedicated, big.Placement)
	pl, err := store.Placement(ctx(t), big.ID)
	require.NoError(t, err)
	db, err := store.Database(ctx(t), pl.DatabaseID)
	require.NoError(t, err)
	require.Equal(t, e.DedicatedPrefix+"big_corp", db.Name)
	conn := tenancytest.Connect(t, e.AppURL(t, db.DSN))
	var n int
	require.NoError(t, conn.QueryRow(ctx(t), `SELECT count(*) FROM agents`).Scan(&n), "the app role can use the dedicated database")

	_, err = p.CreateOrganization(ctx(t), CreateOrganization{Slug: "acme", Name: "Again", Plan: tenancy.PlanFree})
	require.Equal(t, tenancy.CodeConflict, tenancy.ErrorCode(err))
	_, err = p.CreateOrganization(ctx(t), CreateOrganization{Slug: "other", Name: "O", Plan: tenancy.PlanFree,
		OwnerEmail: "owner@acme.test", OwnerPasswordHash: "x"})
	require.Equal(t, tenancy.CodeConflict, tenancy.ErrorCode(err), "emails are unique without case")
	_, err = p.CreateOrganization(ctx(t), CreateOrganization{Slug: "Bad Slug", Name: "O", Plan: tenancy.PlanFree})
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
}

// latestTenantVersion is the number of the newest embedded tenant migration.
func latestTenantVersion(t *testing.T) int {
	entries, err := fs.ReadDir(migrations.Tenant, "tenant")
	require.NoError(t, err)
	latest := 0
	for _, e := range entries {
		var v int
		if _, err := fmt.Sscanf(e.Name(), "%d_", &v); err == nil && v > latest {
			latest = v
		}
	}
	require.Positive(t, latest)
	return latest
}
