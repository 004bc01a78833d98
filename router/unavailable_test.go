package router

import (
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/identity"
)

// TestUnreachableDedicatedDatabase: a tenant whose database cannot be
// reached gets 503 tenant_unavailable with Retry-After while a shared
// tenant keeps being served.
func TestUnreachableDedicatedDatabase(t *testing.T) {
	t.Parallel()
	b := setup(t)
	healthy := b.org(t, "healthy", tenancy.PlanPro)
	ctx := testCtx(t)

	targets := map[string]string{
		"missing database": b.env.DatabaseURL(t, b.env.Prefix+"d_ghost"),
		"refused port":     "postgres://root@127.0.0.1:1/nothing?sslmode=disable",
	}
	for name, dsn := range targets {
		t.Run(name, func(t *testing.T) {
			db, err := b.store.RegisterDatabase(ctx, tenancy.Database{Name: name, Kind: tenancy.KindDedicated, DSN: dsn})
			require.NoError(t, err)
			hash, _ := identity.HashPassword("password-x", cheap)
			slug := map[string]string{"missing database": "ghost", "refused port": "refused"}[name]
			_, err = b.store.CreateOrganization(ctx, catalog.NewOrganization{Slug: slug, Name: slug, Plan: tenancy.PlanEnterprise,
				Status: tenancy.StatusActive, DatabaseID: db.ID, OwnerEmail: "owner@" + slug + ".test", OwnerPasswordHash: hash})
			require.NoError(t, err)
			login := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": "owner@" + slug + ".test", "password": "password-x"})
			require.Equal(t, 200, login.status, "identity lives in the catalog: login still works")
			token := login.json["token"].(string)

			var wg sync.WaitGroup
			wg.Add(1)
			go func() { // the shared tenant is served meanwhile
				defer wg.Done()
				for range 20 {
					r := b.do(t, "GET", "/api/agents", healthy.token, nil)
					require.Equal(t, 200, r.status, r.text)
				}
			}()
			// Each is answered with the refusal, not left to a timeout:
			// the breaker's fast path is asserted where it is an invariant
			// (poolcache's TestBreakerOpensForOneDatabase: no lease, no
			// lookup, no connection), not by the clock here.
			for i := range 6 {
				r := b.do(t, "GET", "/api/agents", token, nil)
				require.Equal(t, 503, r.status, "request %d: %s", i, r.text)
				require.Equal(t, "tenant_unavailable", r.errorCode())
				require.NotEmpty(t, r.header.Get("Retry-After"))
			}
			wg.Wait()
			require.Equal(t, 200, b.do(t, "GET", "/api/agents", healthy.token, nil).status)
		})
	}
}
