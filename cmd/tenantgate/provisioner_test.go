package main

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/config"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestProvisionerServiceRequiresTenantSchema: the provisioner service
// reads a tenant on a database below the newest tenant schema as not
// ready, as the gateway does, so its scheduler fires nothing there.
func TestProvisionerServiceRequiresTenantSchema(t *testing.T) {
	e := env(t)
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	_, _, err = tg(t, "tenants", "create", "--slug", "behind", "--name", "Behind", "--plan", "pro")
	require.NoError(t, err)
	cfg, err := (&cli{v: config.New()}).config()
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	svc, err := newProvisionerService(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, prometheus.NewRegistry())
	require.NoError(t, err)
	defer svc.close()
	org, err := svc.store.OrganizationBySlug(ctx, "behind")
	require.NoError(t, err)
	ready := func() bool {
		tn, err := svc.store.Tenant(ctx, org.ID)
		require.NoError(t, err)
		return tn.Placement.DatabaseReady
	}
	require.True(t, ready(), "at the newest schema")

	cat := tenancytest.Connect(t, e.CatalogURL)
	_, err = cat.Exec(ctx, `UPDATE databases SET schema_version = schema_version - 1 WHERE kind = 'shared'`)
	require.NoError(t, err)
	require.False(t, ready(), "a database behind the newest schema is not ready for the provisioner either")
}
