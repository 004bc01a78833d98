package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestInitSharedOnAnotherServer: with the shared database on a server
// other than the catalog's, init creates the application role there too,
// and a tenant on it is served.
func TestInitSharedOnAnotherServer(t *testing.T) {
	e := env(t)
	pg := tenancytest.NewCluster(t)
	t.Setenv("TENANTGATE_SHARED_DATABASE_URL", pg.DatabaseURL(e.Prefix+"shared"))
	_, _, err := tg(t, "init")
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var exists bool
	require.NoError(t, tenancytest.Connect(t, pg.DatabaseURL("postgres")).QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`, e.AppRole).Scan(&exists))
	require.True(t, exists, "the application role exists on the shared database's server")

	_, _, err = tg(t, "tenants", "create", "--slug", "elsewhere", "--name", "Elsewhere", "--plan", "pro",
		"--owner-email", "o@elsewhere.test", "--owner-password", "elsewhere-password")
	require.NoError(t, err)
	t.Setenv("TENANTGATE_JWT_SECRET", "init-secret-init-secret-init-secret-init")
	base, _ := serveHTTP(t)
	token := login(t, base, "o@elsewhere.test", "elsewhere-password")
	require.Equal(t, 201, do(base, "POST", "/api/agents", token, `{"name":"far"}`).status)
}
