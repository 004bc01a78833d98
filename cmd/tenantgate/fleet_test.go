package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// TestFleetOperations drives the ops commands end to end with a running
// provisioner: servers, moves and plan changes across the enterprise line,
// migration status and fan-out, deletion and the orphan sweep.
func TestFleetOperations(t *testing.T) {
	e := env(t)
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	stop := background(t, "provisioner")
	defer stop()

	out, _, err := tg(t, "servers", "add", "main", "--dsn", e.ServerURL, "--capacity", "50")
	require.NoError(t, err)
	require.Contains(t, out, "registered")
	_, _, err = tg(t, "servers", "add", "bad", "--dsn", "postgres://root@127.0.0.1:1/postgres?sslmode=disable")
	require.ErrorContains(t, err, "not reachable")
	out, _, err = tg(t, "servers", "list", "--output", "json")
	require.NoError(t, err)
	var servers []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &servers))
	require.Len(t, servers, 1)
	require.NotContains(t, out, "postgres://", "no DSN (with its password) in listings")

	_, _, err = tg(t, "tenants", "create", "--slug", "grower", "--name", "Grower", "--plan", "pro",
		"--owner-email", "o@grower.test", "--owner-password", "grower-password")
	require.NoError(t, err)
	out, _, err = tg(t, "tenants", "set-plan", "grower", "enterprise", "--wait")
	require.NoError(t, err, out)
	require.Contains(t, out, "succeeded")
	out, _, err = tg(t, "tenants", "show", "grower", "--output", "json")
	require.NoError(t, err)
	require.Contains(t, out, `"placement": "dedicated"`)
	require.Contains(t, out, `"plan": "enterprise"`)

	out, _, err = tg(t, "tenants", "move", "grower", "--to", "shared", "--wait")
	require.NoError(t, err, out)
	out, _, err = tg(t, "tenants", "show", "grower", "--output", "json")
	require.NoError(t, err)
	require.Contains(t, out, `"placement": "shared"`)
	_, _, err = tg(t, "tenants", "move", "grower", "--to", "sideways")
	require.Equal(t, 2, report(&strings.Builder{}, err))

	_, _, err = tg(t, "tenants", "create", "--slug", "big", "--name", "Big", "--plan", "enterprise", "--wait")
	require.NoError(t, err)
	out, _, err = tg(t, "migrate", "status", "--output", "json")
	require.NoError(t, err)
	require.Contains(t, out, e.DedicatedPrefix+"big")
	out, _, err = tg(t, "migrate", "tenants", "--concurrency", "2")
	require.NoError(t, err, out)

	_, _, err = tg(t, "tenants", "delete", "big")
	require.ErrorContains(t, err, "--yes", "a dedicated database is dropped only with --yes")
	out, _, err = tg(t, "tenants", "delete", "big", "--yes", "--wait")
	require.NoError(t, err, out)
	_, _, err = tg(t, "tenants", "show", "big")
	require.ErrorContains(t, err, "not found")

	// An orphan: a database with the prefix the catalog does not know.
	require.NoError(t, schema.CreateDatabase(context.Background(), e.ServerURL, e.DedicatedPrefix+"lost"))
	out, _, err = tg(t, "servers", "sweep")
	require.NoError(t, err)
	require.Contains(t, out, e.DedicatedPrefix+"lost")
	require.NotContains(t, out, e.DedicatedPrefix+"_template", "the template is not an orphan")
	out, _, err = tg(t, "servers", "sweep", "--yes")
	require.NoError(t, err)
	require.Contains(t, out, "dropped")
	out, _, err = tg(t, "servers", "sweep")
	require.NoError(t, err)
	require.Contains(t, out, "no orphan")
}

// TestBillingMovesToDedicated: a Stripe subscription to the enterprise
// price ends with the tenant on a database of its own.
func TestBillingMovesToDedicated(t *testing.T) {
	env(t)
	t.Setenv("TENANTGATE_JWT_SECRET", "billing-secret-billing-secret-billin")
	t.Setenv("TENANTGATE_STRIPE_WEBHOOK_SECRET", "whsec_e2e")
	t.Setenv("TENANTGATE_STRIPE_PRICES", "price_ent=enterprise")
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	stopProvisioner := background(t, "provisioner")
	defer stopProvisioner()
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	stopServe := background(t, "serve", "--http-addr", httpAddr, "--admin-addr", adminAddr)
	defer stopServe()
	waitHealthy(t, "http://"+adminAddr+"/healthz")
	out, _, err := tg(t, "tenants", "create", "--slug", "upgrader", "--name", "U", "--plan", "pro", "--output", "json")
	require.NoError(t, err)
	var created struct{ Organization struct{ ID string } }
	require.NoError(t, json.Unmarshal([]byte(out), &created))

	body, _ := json.Marshal(map[string]any{"id": "evt_e2e", "object": "event", "type": "customer.subscription.updated",
		"data": map[string]any{"object": map[string]any{"id": "sub_e2e", "customer": "cus_e2e", "status": "active",
			"metadata": map[string]string{"organization_id": created.Organization.ID},
			"items":    map[string]any{"data": []any{map[string]any{"price": map[string]any{"id": "price_ent"}}}}}}})
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: "whsec_e2e"})
	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/api/billing/webhook", strings.NewReader(string(body)))
	req.Header.Set("Stripe-Signature", signed.Header)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)

	require.Eventually(t, func() bool {
		out, _, err := tg(t, "tenants", "show", "upgrader", "--output", "json")
		return err == nil && strings.Contains(out, `"placement": "dedicated"`) && strings.Contains(out, `"plan": "enterprise"`)
	}, 60*time.Second, 200*time.Millisecond, "the move job ran and the plan is set")
}
