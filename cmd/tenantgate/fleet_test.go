package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

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
	require.NotContains(t, out, e.DedicatedPrefix+"template", "the template is not an orphan")
	out, _, err = tg(t, "servers", "sweep", "--yes")
	require.NoError(t, err)
	require.Contains(t, out, "dropped")
	out, _, err = tg(t, "servers", "sweep")
	require.NoError(t, err)
	require.Contains(t, out, "no orphan")
}
