package move_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/provisioner/move"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestMoveRoundTrip: a shared tenant moves to a dedicated database and
// back with every row, id and timestamp unchanged; its old places keep no
// rows of it, a neighbour on the shared database is untouched, and the
// dedicated database is dropped on the way back.
func TestMoveRoundTrip(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	o := b.org(t, "roundtrip", tenancy.PlanPro)
	neighbour := b.org(t, "neighbour", tenancy.PlanFree)
	shared := b.shared(t)
	b.seed(t, shared, o.ID, 500)
	b.seed(t, shared, neighbour.ID, 100)
	want, theirs := b.snapshot(t, shared, o.ID), b.snapshot(t, shared, neighbour.ID)
	before := b.tenant(t, o.ID).Placement

	steps, err := b.move(ctx, o.ID, tenancy.KindDedicated, nil)
	require.NoError(t, err)
	require.Equal(t, []string{move.StepResolve, move.StepMark, move.StepFence, move.StepCopy, move.StepVerify, move.StepSwitch, move.StepCleanup}, steps)
	after := b.tenant(t, o.ID)
	require.Equal(t, tenancy.KindDedicated, after.Placement.Kind)
	require.Equal(t, tenancy.PlacementReady, after.Placement.State)
	require.Equal(t, before.Epoch+1, after.Placement.Epoch, "the epoch grows with the move")
	require.Equal(t, tenancy.KindDedicated, after.Organization.Placement)
	require.Equal(t, tenancy.PlanPro, after.Organization.Plan, "a move does not change the plan")
	dedicated := b.home(t, o.ID)
	require.Equal(t, b.cfg.DedicatedName("roundtrip"), dedicated.Name)
	require.Equal(t, want, b.snapshot(t, dedicated, o.ID), "every row arrives unchanged, ids and timestamps included")
	require.Zero(t, b.rows(t, shared, o.ID), "the source keeps no row of the tenant")
	require.True(t, b.fenced(t, shared, o.ID), "the source keeps its fence against stale replicas")
	require.False(t, b.fenced(t, dedicated, o.ID), "the new home takes writes")
	require.Equal(t, theirs, b.snapshot(t, shared, neighbour.ID), "the neighbour is untouched")
	_, err = b.write(t, after, "after the move")
	require.NoError(t, err, "the tenant writes in its new home")
	require.Positive(t, b.publishes.Load())

	want = b.snapshot(t, dedicated, o.ID)
	_, err = b.move(ctx, o.ID, tenancy.KindShared, nil)
	require.NoError(t, err)
	back := b.tenant(t, o.ID)
	require.Equal(t, shared.ID, back.Placement.DatabaseID)
	require.Equal(t, before.Epoch+2, back.Placement.Epoch)
	require.Equal(t, want, b.snapshot(t, shared, o.ID), "and back again, unchanged")
	require.False(t, b.fenced(t, shared, o.ID), "home again: the old fence is lifted")
	require.False(t, b.databaseExists(t, dedicated.Name), "the empty dedicated database is dropped")
	_, err = b.store.Database(ctx, dedicated.ID)
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err), "and forgotten by the catalog")
	_, err = b.write(t, back, "home again")
	require.NoError(t, err)
	require.Equal(t, theirs, b.snapshot(t, shared, neighbour.ID))

	steps, err = b.move(ctx, o.ID, tenancy.KindShared, nil)
	require.NoError(t, err, "moving to where the tenant is does nothing")
	require.Equal(t, []string{move.StepResolve, move.StepCleanup}, steps)
	require.Equal(t, back.Placement.Epoch, b.tenant(t, o.ID).Placement.Epoch)
}

// TestMoveDedicatedTenant: an enterprise tenant created on its own database
// moves to the shared one, and its database is dropped.
func TestMoveDedicatedTenant(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	o := b.org(t, "big", tenancy.PlanEnterprise)
	dedicated := b.home(t, o.ID)
	b.seed(t, dedicated, o.ID, 300)
	want := b.snapshot(t, dedicated, o.ID)
	_, err := b.move(ctx, o.ID, tenancy.KindShared, nil)
	require.NoError(t, err)
	require.Equal(t, want, b.snapshot(t, b.shared(t), o.ID))
	require.False(t, b.databaseExists(t, dedicated.Name))
	require.Zero(t, b.dedicatedRecords(t))
}

func TestMoveRefusesBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	o := b.org(t, "bad", tenancy.PlanFree)
	_, err := b.move(ctx, o.ID, "elsewhere", nil)
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
	_, err = b.move(ctx, "not-an-id", tenancy.KindShared, nil)
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
	_, err = b.move(ctx, uuid.NewString(), tenancy.KindDedicated, nil)
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err))

	unlock, err := b.store.LockMove(ctx, o.ID)
	require.NoError(t, err)
	_, err = b.move(ctx, o.ID, tenancy.KindDedicated, nil)
	require.ErrorIs(t, err, move.ErrBusy, "one mover per organization")
	unlock()
	_, err = b.move(ctx, o.ID, tenancy.KindDedicated, nil)
	require.NoError(t, err)
}

// TestMoveRefusesSchemaMismatch: a target at another schema version is
// refused before anything changes.
func TestMoveRefusesSchemaMismatch(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	o := b.org(t, "behind", tenancy.PlanFree)
	d := b.deps
	create := d.CreateDedicated
	d.CreateDedicated = func(ctx context.Context, slug string) (tenancy.Database, error) {
		db, err := create(ctx, slug)
		if err == nil {
			_, err = b.owner(t, db).Exec(ctx, `UPDATE schema_migrations SET version = version - 1`)
		}
		return db, err
	}
	err := move.Move(ctx, d, o.ID, tenancy.KindDedicated, nil)
	require.ErrorContains(t, err, "migrate them first")
	require.Equal(t, b.shared(t).ID, b.tenant(t, o.ID).Placement.DatabaseID)
	require.Equal(t, tenancy.PlacementReady, b.tenant(t, o.ID).Placement.State)
	require.Zero(t, b.dedicatedRecords(t), "the target made for the move is dropped again")
}

// TestMoveRefusesUnknownTenantTable: a table of tenant rows the mover does
// not copy would be lost with the source; the move refuses to start.
func TestMoveRefusesUnknownTenantTable(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	o := b.org(t, "extra", tenancy.PlanFree)
	_, err := b.owner(t, b.shared(t)).Exec(ctx, `CREATE TABLE notes (organization_id uuid NOT NULL, body text)`)
	require.NoError(t, err)
	_, err = b.move(ctx, o.ID, tenancy.KindDedicated, nil)
	require.ErrorContains(t, err, "table notes holds tenant rows")
	require.Equal(t, tenancy.PlacementReady, b.tenant(t, o.ID).Placement.State)
	require.Zero(t, b.dedicatedRecords(t))
}

// ownerRole owns the databases of TestMoveAsPlainOwner: a login role that
// is not a superuser, as a managed Postgres gives.
const ownerRole = "tenantgate_test_owner"

// TestMoveAsPlainOwner: where the databases' owner is not a superuser, it
// is subject to the forced row-level security and may not COPY into the
// tables or turn triggers off; the move still copies, verifies and clears
// every row, and writes past the fences as the owner only.
func TestMoveAsPlainOwner(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	shared := b.ownedDatabase(t, "owned_shared", tenancy.KindShared)
	dedicated := b.ownedDatabase(t, "owned_dedicated", tenancy.KindDedicated)
	d := b.deps
	d.SharedDatabase = func(context.Context) (tenancy.Database, error) { return shared, nil }
	d.CreateDedicated = func(context.Context, string) (tenancy.Database, error) { return dedicated, nil }
	d.DropDatabase = func(ctx context.Context, db tenancy.Database) error {
		// As root: the test's own superuser sessions are still connected.
		return schema.DropDatabase(ctx, b.env.ServerURL, db.Name)
	}
	o, err := b.store.CreateOrganization(ctx, catalog.NewOrganization{Slug: "owned", Name: "owned", Plan: tenancy.PlanPro,
		Status: tenancy.StatusActive, DatabaseID: shared.ID})
	require.NoError(t, err)
	asRoot := func(db tenancy.Database) tenancy.Database {
		dsn, err := schema.WithUser(db.DSN, "root", "")
		require.NoError(t, err)
		db.DSN = dsn
		return db
	}
	b.seed(t, asRoot(shared), o.ID, 400)
	want := b.snapshot(t, asRoot(shared), o.ID)
	forcedBefore := b.forcedTables(t, asRoot(dedicated))
	require.NotEmpty(t, forcedBefore)

	require.NoError(t, move.Move(ctx, d, o.ID, tenancy.KindDedicated, nil))
	require.Equal(t, dedicated.ID, b.tenant(t, o.ID).Placement.DatabaseID)
	require.Equal(t, want, b.snapshot(t, asRoot(dedicated), o.ID))
	// The copy into the tenant's own database lifts FORCE ROW LEVEL
	// SECURITY for its transaction only, and leaves tenant_fences as it was.
	require.Equal(t, forcedBefore, b.forcedTables(t, asRoot(dedicated)))
	require.NotContains(t, forcedBefore, "tenant_fences")
	require.Zero(t, b.rows(t, asRoot(shared), o.ID))
	require.True(t, b.fenced(t, asRoot(shared), o.ID))
	_, err = b.write(t, b.tenant(t, o.ID), "owned and moved")
	require.NoError(t, err)

	want = b.snapshot(t, asRoot(dedicated), o.ID)
	require.NoError(t, move.Move(ctx, d, o.ID, tenancy.KindShared, nil))
	require.Equal(t, want, b.snapshot(t, asRoot(shared), o.ID))
	require.False(t, b.databaseExists(t, dedicated.Name))
}

// ownedDatabase creates a tenant database owned by ownerRole, migrated and
// granted as that role, and registers it with the owner's DSN.
func (b *bundle) ownedDatabase(t testing.TB, suffix, kind string) tenancy.Database {
	t.Helper()
	ctx := testCtx(t)
	root := tenancytest.Connect(t, b.env.ServerURL)
	require.NoError(t, schema.EnsureAppRole(ctx, root, ownerRole, ""))
	name := b.env.Prefix + suffix
	_, err := root.Exec(ctx, `CREATE DATABASE `+name+` OWNER `+ownerRole)
	require.NoError(t, err)
	dsn, err := schema.WithUser(b.env.DatabaseURL(t, name), ownerRole, "")
	require.NoError(t, err)
	_, err = schema.Migrate(ctx, dsn, migrations.Tenant, "tenant", 0)
	require.NoError(t, err)
	require.NoError(t, schema.GrantApp(ctx, tenancytest.Connect(t, dsn), b.env.AppRole))
	db, err := b.store.RegisterDatabase(ctx, tenancy.Database{Name: name, Kind: kind, DSN: dsn})
	require.NoError(t, err)
	return db
}

// forcedTables lists db's tables whose row-level security is forced.
func (b *bundle) forcedTables(t testing.TB, db tenancy.Database) []string {
	t.Helper()
	rows, err := tenancytest.Connect(t, db.DSN).Query(testCtx(t), `SELECT relname FROM pg_class
		WHERE relkind = 'r' AND relforcerowsecurity AND relnamespace = 'public'::regnamespace ORDER BY relname`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}
