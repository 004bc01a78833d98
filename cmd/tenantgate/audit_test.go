package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestAuditQuarantinesUnsafeDatabases: `tenantgate audit` over a real
// fleet. A fresh fleet is ok; a dedicated database whose RLS is no longer
// forced is unsafe (exit 1, the property named), quarantined: its tenant
// gets 503 while a shared tenant gets 200; an operator's acceptance lets
// it back in; an extra index on the shared database is drift (exit 3), not
// quarantined.
func TestAuditQuarantinesUnsafeDatabases(t *testing.T) {
	e := env(t)
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	stopProvisioner := background(t, "provisioner")
	defer stopProvisioner()
	_, _, err = tg(t, "tenants", "create", "--slug", "calm", "--name", "Calm", "--plan", "pro",
		"--owner-email", "o@calm.test", "--owner-password", "calm-password")
	require.NoError(t, err)
	out, _, err := tg(t, "tenants", "create", "--slug", "leaky", "--name", "Leaky", "--plan", "enterprise",
		"--owner-email", "o@leaky.test", "--owner-password", "leaky-password", "--wait")
	require.NoError(t, err, out)

	out, _, err = tg(t, "audit", "--output", "json")
	require.NoError(t, err, "a fresh fleet is ok: %s", out)
	var outcomes []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &outcomes))
	kinds := map[string]bool{}
	for _, o := range outcomes {
		require.Equal(t, "ok", o["verdict"], "%v", o)
		kinds[o["kind"].(string)] = true
	}
	require.Equal(t, map[string]bool{"shared": true, "dedicated": true, "template": true}, kinds)

	t.Setenv("TENANTGATE_JWT_SECRET", "audit-secret-audit-secret-audit-secre")
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--http-addr", httpAddr, "--admin-addr", adminAddr}, &bytes.Buffer{}, &bytes.Buffer{})
	}()
	defer func() { cancel(); require.NoError(t, <-done) }()
	waitHealthy(t, "http://"+adminAddr+"/healthz")
	base := "http://" + httpAddr
	calm, leaky := login(t, base, "o@calm.test", "calm-password"), login(t, base, "o@leaky.test", "leaky-password")
	status := func(token string) int { return call(t, "GET", base+"/api/agents", token, "").StatusCode }
	require.Equal(t, 200, status(leaky))

	leakyDB := e.DedicatedPrefix + "leaky"
	conn := tenancytest.Connect(t, e.DatabaseURL(t, leakyDB))
	_, err = conn.Exec(context.Background(), `ALTER TABLE agents NO FORCE ROW LEVEL SECURITY`)
	require.NoError(t, err)
	out, _, err = tg(t, "audit")
	require.Equal(t, 1, report(&strings.Builder{}, err), "unsafe exits 1: %s", out)
	require.Contains(t, out, leakyDB)
	require.Contains(t, out, "rls_not_forced")
	require.Eventually(t, func() bool { return status(leaky) == 503 }, 5*time.Second, 50*time.Millisecond,
		"the quarantined database's tenant is refused")
	require.Equal(t, 200, status(calm), "a tenant elsewhere is served")

	_, _, err = tg(t, "audit", "--accept", leakyDB)
	require.Equal(t, 2, report(&strings.Builder{}, err), "--accept needs --reason")
	out, _, err = tg(t, "audit", "--accept", leakyDB, "--reason", "incident 7: forcing restored in the next window")
	require.NoError(t, err, out)
	require.Eventually(t, func() bool { return status(leaky) == 200 }, 5*time.Second, 50*time.Millisecond, "released")

	shared := tenancytest.Connect(t, e.SharedURL)
	_, err = shared.Exec(context.Background(), `CREATE INDEX audit_test_extra ON agents (model)`)
	require.NoError(t, err)
	out, _, err = tg(t, "audit", "--database", sharedName(t, e.SharedURL))
	require.Equal(t, 3, report(&strings.Builder{}, err), "drift exits 3: %s", out)
	require.Contains(t, out, "audit_test_extra")
	require.Equal(t, 200, status(calm), "drift is not quarantined")
}

func sharedName(t *testing.T, dsn string) string {
	i := strings.LastIndex(dsn, "/")
	name, _, _ := strings.Cut(dsn[i+1:], "?")
	require.NotEmpty(t, name)
	return name
}
