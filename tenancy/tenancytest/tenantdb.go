package tenancytest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// NewTenantDatabase creates database prefix+suffix with the tenant schema,
// the application role and its grants, and returns its owner DSN.
func (e *Env) NewTenantDatabase(t testing.TB, suffix string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := e.Prefix + suffix
	dsn := e.DatabaseURL(t, name)
	if err := schema.CreateDatabase(ctx, e.ServerURL, name); err != nil {
		t.Fatal(err)
	}
	if _, err := schema.Migrate(ctx, dsn, migrations.Tenant, "tenant", 0); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := schema.EnsureAppRole(ctx, conn, e.AppRole, ""); err != nil {
		t.Fatal(err)
	}
	if err := schema.GrantApp(ctx, conn, e.AppRole); err != nil {
		t.Fatal(err)
	}
	return dsn
}
