package catalog_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func newStore(t *testing.T) (*catalog.Store, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	e := tenancytest.NewEnv(t)
	require.NoError(t, schema.CreateDatabase(ctx, e.ServerURL, e.Prefix+"catalog"))
	_, err := schema.Migrate(ctx, e.CatalogURL, migrations.Catalog, "catalog", 0)
	require.NoError(t, err)
	pool, err := pgxpool.New(ctx, e.CatalogURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return catalog.New(pool), ctx
}

// TestMovePlacementChanges: every placement change of a move is
// conditional on the placement the mover read, and the switch retires a
// dedicated database no one uses any more.
func TestMovePlacementChanges(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t)
	shared, err := s.RegisterDatabase(ctx, tenancy.Database{Name: "shared", Kind: tenancy.KindShared, DSN: "postgres://h/shared"})
	require.NoError(t, err)
	dedicated, err := s.RegisterDatabase(ctx, tenancy.Database{Name: "d", Kind: tenancy.KindDedicated, DSN: "postgres://h/d"})
	require.NoError(t, err)
	o, err := s.CreateOrganization(ctx, catalog.NewOrganization{Slug: "acme", Name: "Acme", Plan: tenancy.PlanEnterprise,
		Status: tenancy.StatusActive, DatabaseID: dedicated.ID})
	require.NoError(t, err)
	pl, err := s.Placement(ctx, o.ID)
	require.NoError(t, err)

	unplaced, err := s.UnplacedDatabases(ctx)
	require.NoError(t, err)
	require.Empty(t, unplaced)
	require.Equal(t, tenancy.CodeConflict, tenancy.ErrorCode(s.BeginMove(ctx, o.ID, dedicated.ID, pl.Epoch+1)), "a stale epoch changes nothing")
	require.NoError(t, s.BeginMove(ctx, o.ID, dedicated.ID, pl.Epoch))
	require.NoError(t, s.BeginMove(ctx, o.ID, dedicated.ID, pl.Epoch), "twice is harmless")
	moving, err := s.Placement(ctx, o.ID)
	require.NoError(t, err)
	require.Equal(t, tenancy.PlacementMoving, moving.State)

	_, err = s.SwitchPlacement(ctx, o.ID, shared.ID, dedicated.ID, pl.Epoch)
	require.Equal(t, tenancy.CodeConflict, tenancy.ErrorCode(err), "only from where it is")
	now, err := s.SwitchPlacement(ctx, o.ID, dedicated.ID, shared.ID, pl.Epoch)
	require.NoError(t, err)
	require.Equal(t, tenancy.Placement{OrganizationID: o.ID, DatabaseID: shared.ID, Kind: tenancy.KindShared,
		Epoch: pl.Epoch + 1, State: tenancy.PlacementReady, DatabaseReady: true}, now)
	_, err = s.SwitchPlacement(ctx, o.ID, dedicated.ID, shared.ID, pl.Epoch)
	require.Equal(t, tenancy.CodeConflict, tenancy.ErrorCode(err), "a switch happens once")
	undone, err := s.AbortMove(ctx, o.ID, dedicated.ID, pl.Epoch)
	require.NoError(t, err)
	require.False(t, undone, "nothing to undo after the switch")

	old, err := s.Database(ctx, dedicated.ID)
	require.NoError(t, err)
	require.Equal(t, "dropping", old.State, "the switch retires the emptied dedicated database")
	unplaced, err = s.UnplacedDatabases(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{dedicated.ID}, ids(unplaced))
	sharedAll, err := s.SharedDatabases(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{shared.ID}, ids(sharedAll))
	retired, err := s.RetireDatabase(ctx, shared.ID)
	require.NoError(t, err)
	require.False(t, retired, "a shared database is never retired")
	require.NoError(t, s.ForgetDatabase(ctx, shared.ID))
	_, err = s.Database(ctx, shared.ID)
	require.NoError(t, err, "only a retired database is forgotten")
	require.NoError(t, s.ForgetDatabase(ctx, dedicated.ID))
	require.NoError(t, s.ForgetDatabase(ctx, dedicated.ID), "twice is harmless")
	_, err = s.Database(ctx, dedicated.ID)
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err))

	require.NoError(t, s.BeginMove(ctx, o.ID, shared.ID, now.Epoch))
	undone, err = s.AbortMove(ctx, o.ID, shared.ID, now.Epoch)
	require.NoError(t, err)
	require.True(t, undone)
	back, err := s.Placement(ctx, o.ID)
	require.NoError(t, err)
	require.Equal(t, now, back, "an undone move leaves the placement as it was")
}

func TestLockMove(t *testing.T) {
	t.Parallel()
	s, ctx := newStore(t)
	unlock, err := s.LockMove(ctx, "0b7c2a9e-9f1e-4c1e-8c55-3d1a2b3c4d5e")
	require.NoError(t, err)
	_, err = s.LockMove(ctx, "0b7c2a9e-9f1e-4c1e-8c55-3d1a2b3c4d5e")
	require.Equal(t, tenancy.CodeConflict, tenancy.ErrorCode(err), "one mover per organization")
	other, err := s.LockMove(ctx, "1b7c2a9e-9f1e-4c1e-8c55-3d1a2b3c4d5e")
	require.NoError(t, err, "other organizations move at the same time")
	other()
	unlock()
	again, err := s.LockMove(ctx, "0b7c2a9e-9f1e-4c1e-8c55-3d1a2b3c4d5e")
	require.NoError(t, err, "released")
	again()
}

func ids(dbs []tenancy.Database) []string {
	out := make([]string, len(dbs))
	for i, d := range dbs {
		out[i] = d.ID
	}
	return out
}
