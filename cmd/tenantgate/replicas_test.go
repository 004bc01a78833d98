package main

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/config"
	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/identity"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestInvalidationAcrossReplicas: two gateways share Redis; a placement
// invalidation published by one makes the other drop its cached tenant at
// once, instead of serving it stale until the TTL.
func TestInvalidationAcrossReplicas(t *testing.T) {
	e := env(t)
	t.Setenv("TENANTGATE_REDIS_URL", tenancytest.RedisURL())
	t.Setenv("TENANTGATE_REDIS_PREFIX", e.RedisPrefix)
	t.Setenv("TENANTGATE_JWT_SECRET", "replica-secret-replica-secret-replica")
	t.Setenv("TENANTGATE_PLACEMENT_TTL", "1h") // only an invalidation can refresh
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := config.Load(config.New(), "")
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	require.NoError(t, provisioner.Init(ctx, provisionerConfig(cfg), log))

	a, err := newGateway(ctx, cfg, log)
	require.NoError(t, err)
	defer a.close()
	b, err := newGateway(ctx, cfg, log)
	require.NoError(t, err)
	defer b.close()

	hash, err := identity.HashPassword("replica-password", identity.PasswordParams{Memory: 64, Time: 1, Threads: 1})
	require.NoError(t, err)
	org, err := provisioner.New(provisionerConfig(cfg), a.store, log).CreateOrganization(ctx, provisioner.CreateOrganization{
		Slug: "replicated", Name: "R", Plan: tenancy.PlanFree, OwnerEmail: "o@replicated.test", OwnerPasswordHash: hash})
	require.NoError(t, err)
	tokens, err := identity.NewTokens(cfg.JWTSecret, nil, time.Hour)
	require.NoError(t, err)
	token, _, err := tokens.Issue(tenancy.User{ID: "00000000-0000-0000-0000-000000000001", OrganizationID: org.ID, Role: tenancy.RoleOwner})
	require.NoError(t, err)

	get := func() int {
		req := httptest.NewRequest("GET", "/api/agents", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := b.public.Test(req, -1)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	require.Equal(t, 200, get(), "replica b caches the active tenant")
	_, err = a.catalogPool.Exec(ctx, `UPDATE organizations SET status = 'suspended' WHERE id = $1`, org.ID)
	require.NoError(t, err)
	require.Equal(t, 200, get(), "control: without an invalidation b still serves its cached tenant")

	require.NoError(t, a.bus.Publish(ctx, placementChannel, []byte(org.ID)))
	require.Eventually(t, func() bool { return get() == 403 }, 5*time.Second, 20*time.Millisecond,
		"after a's broadcast, b refuses the suspended tenant")
}
