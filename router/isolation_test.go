package router

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

// TestCrossTenantAgents: an organization can neither read, change, delete
// nor list another's agents, for every pairing of placements; the answer is
// the same 404 as for an id that never existed.
func TestCrossTenantAgents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	shared1 := b.org(t, "shared-one", tenancy.PlanPro)
	shared2 := b.org(t, "shared-two", tenancy.PlanFree)
	dedicated := b.org(t, "dedicated", tenancy.PlanEnterprise)
	require.Equal(t, tenancy.KindDedicated, dedicated.Placement)

	pairs := []struct{ attacker, victim org }{
		{shared1, shared2}, {shared2, shared1}, {shared1, dedicated}, {dedicated, shared1},
	}
	for _, p := range pairs {
		t.Run(fmt.Sprintf("%s->%s", p.attacker.Slug, p.victim.Slug), func(t *testing.T) {
			name := "secret-" + uuid.NewString()[:8]
			created := b.do(t, "POST", "/api/agents", p.victim.token, map[string]string{"name": name, "description": "victim data"})
			require.Equal(t, 201, created.status, created.text)
			victimID := created.json["id"].(string)
			randomID := uuid.NewString()

			for _, call := range []struct {
				method string
				body   any
			}{{"GET", nil}, {"PATCH", map[string]string{"name": "pwned"}}, {"DELETE", nil}} {
				foreign := b.do(t, call.method, "/api/agents/"+victimID, p.attacker.token, call.body)
				random := b.do(t, call.method, "/api/agents/"+randomID, p.attacker.token, call.body)
				require.Equal(t, 404, foreign.status, "%s another tenant's agent", call.method)
				require.Equal(t, "not_found", foreign.errorCode())
				require.Equal(t, random.status, foreign.status)
				require.Equal(t, random.withoutRequestID(), foreign.withoutRequestID(),
					"%s: a foreign id answers exactly like a random one", call.method)
			}

			list := b.do(t, "GET", "/api/agents?limit=200", p.attacker.token, nil)
			require.Equal(t, 200, list.status)
			require.NotContains(t, list.text, victimID)
			require.NotContains(t, list.text, name)

			// Same name in the attacker's tenant is no conflict: uniqueness is per tenant.
			same := b.do(t, "POST", "/api/agents", p.attacker.token, map[string]string{"name": name})
			require.Equal(t, 201, same.status, same.text)

			still := b.do(t, "GET", "/api/agents/"+victimID, p.victim.token, nil)
			require.Equal(t, 200, still.status, "the victim's agent survived")
			require.Equal(t, name, still.json["name"])
			require.Equal(t, "victim data", still.json["description"])
		})
	}
}

// TestTenantHint: X-Tenant or a subdomain naming another organization is a
// 404, whether or not that organization exists.
func TestTenantHint(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{baseDomain: "example.test"})
	a := b.org(t, "alpha", tenancy.PlanFree)
	b.org(t, "beta", tenancy.PlanFree)

	require.Equal(t, 200, b.do(t, "GET", "/api/agents", a.token, nil, "X-Tenant", "alpha").status)
	other := b.do(t, "GET", "/api/agents", a.token, nil, "X-Tenant", "beta")
	missing := b.do(t, "GET", "/api/agents", a.token, nil, "X-Tenant", "nobody")
	require.Equal(t, 404, other.status)
	require.Equal(t, missing.withoutRequestID(), other.withoutRequestID())

	require.Equal(t, 200, b.do(t, "GET", "/api/agents", a.token, nil, "Host", "alpha.example.test").status)
	require.Equal(t, 404, b.do(t, "GET", "/api/agents", a.token, nil, "Host", "beta.example.test").status)
}

// TestOrganizationStatus: pending and suspended organizations are refused
// on tenant routes with their own codes.
func TestOrganizationStatus(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.org(t, "waiting", tenancy.PlanFree)
	c := b.org(t, "naughty", tenancy.PlanFree)
	ctx := testCtx(t)
	conn := tenancyConn(t, b)
	_, err := conn.Exec(ctx, `UPDATE organizations SET status = 'pending' WHERE id = $1`, a.ID)
	require.NoError(t, err)
	_, err = conn.Exec(ctx, `UPDATE organizations SET status = 'suspended' WHERE id = $1`, c.ID)
	require.NoError(t, err)
	// The test's placement cache was filled at login? No: login reads the
	// catalog directly; the first tenant route reads the fresh status.
	r := b.do(t, "GET", "/api/agents", a.token, nil)
	require.Equal(t, 403, r.status)
	require.Equal(t, "organization_pending", r.errorCode())
	r = b.do(t, "GET", "/api/agents", c.token, nil)
	require.Equal(t, 403, r.status)
	require.Equal(t, "organization_suspended", r.errorCode())
}
