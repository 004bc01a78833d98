package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestStoppedMoveFinishedFromTheCLI: a tenant left "moving" by a move that
// stopped half-way shows so, and `tenants move` to where it is finishes
// it (here: abandons it) instead of answering "already there".
func TestStoppedMoveFinishedFromTheCLI(t *testing.T) {
	e := env(t)
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	stop := background(t, "provisioner")
	defer stop()
	_, _, err = tg(t, "tenants", "create", "--slug", "halfway", "--name", "Half", "--plan", "pro")
	require.NoError(t, err)

	ctx := context.Background()
	conn, err := pgx.Connect(ctx, e.CatalogURL)
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `UPDATE placements SET state = 'moving'
		WHERE organization_id = (SELECT id FROM organizations WHERE slug = 'halfway')`)
	require.NoError(t, err)

	out, _, err := tg(t, "tenants", "show", "halfway")
	require.NoError(t, err)
	require.Contains(t, out, "shared (moving)")

	out, _, err = tg(t, "tenants", "move", "halfway", "--to", "shared", "--wait")
	require.NoError(t, err)
	require.Contains(t, out, "already shared; finishing")
	require.Contains(t, out, "succeeded")

	out, _, err = tg(t, "tenants", "show", "halfway", "--output", "json")
	require.NoError(t, err)
	var shown struct{ Placement, PlacementState string }
	require.NoError(t, json.Unmarshal([]byte(out), &shown), out)
	require.Equal(t, "shared", shown.Placement)
	require.Equal(t, "ready", shown.PlacementState, "the stopped move was abandoned")
}
