package move_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/provisioner/move"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// fenceCode is the SQLSTATE the fence refuses a write with.
const fenceCode = "TG001"

func requireFenced(t testing.TB, err error) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.True(t, errors.As(err, &pgErr), "a database refusal, got %v", err)
	require.Equal(t, fenceCode, pgErr.Code, pgErr.Message)
}

// TestStaleReplicaCannotWrite: a gateway that still has the tenant cached
// as ready on the source writes past its own placement check, and the
// fence in the source refuses it, for every kind of change.
func TestStaleReplicaCannotWrite(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	o := b.org(t, "stale", tenancy.PlanPro)
	stale := b.tenant(t, o.ID) // cached before the move: ready, on the source
	agent, err := b.write(t, stale, "before")
	require.NoError(t, err)

	_, err = b.move(ctx, o.ID, tenancy.KindDedicated, move.CrashAfter(move.StepFence))
	require.ErrorIs(t, err, move.ErrCrash)
	require.Equal(t, tenancy.PlacementReady, stale.Placement.State, "the replica's copy still says ready")

	_, err = b.write(t, stale, "after")
	requireFenced(t, err)
	name := "renamed"
	_, err = b.data.Agents.Update(ctx, stale, "", agent.ID, tenantdb.AgentPatch{Name: &name})
	requireFenced(t, err)
	requireFenced(t, b.data.Agents.Delete(ctx, stale, "", agent.ID))
	_, _, err = b.data.Idempotency.Claim(ctx, stale, "key", []byte("hash"))
	requireFenced(t, err)
	got, err := b.data.Agents.Get(ctx, stale, agent.ID)
	require.NoError(t, err, "reads go on")
	require.Equal(t, "before", got.Name)

	_, err = b.move(ctx, o.ID, tenancy.KindDedicated, nil)
	require.NoError(t, err, "a rerun completes the move")
	_, err = b.write(t, stale, "still stale")
	requireFenced(t, err) // the source keeps refusing after the move
	_, err = b.write(t, b.tenant(t, o.ID), "fresh")
	require.NoError(t, err)
}

// TestApplicationRoleCannotLiftAFence: the role tenant traffic runs as can
// neither see, add, change nor remove a fence, nor write past one by
// asking to.
func TestApplicationRoleCannotLiftAFence(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	o := b.org(t, "lift", tenancy.PlanPro)
	shared := b.shared(t)
	_, err := b.move(ctx, o.ID, tenancy.KindDedicated, move.CrashAfter(move.StepFence))
	require.ErrorIs(t, err, move.ErrCrash)

	app := tenancytest.Connect(t, b.env.AppURL(t, shared.DSN))
	var n int
	require.NoError(t, app.QueryRow(ctx, `SELECT count(*) FROM tenant_fences`).Scan(&n))
	require.Zero(t, n, "fences are invisible to the application role")
	for _, sql := range []string{`DELETE FROM tenant_fences`, `UPDATE tenant_fences SET organization_id = gen_random_uuid()`} {
		tag, err := app.Exec(ctx, sql)
		require.NoError(t, err)
		require.Zero(t, tag.RowsAffected(), sql)
	}
	_, err = app.Exec(ctx, `INSERT INTO tenant_fences (organization_id, epoch) VALUES (gen_random_uuid(), 1)`)
	require.ErrorContains(t, err, "row-level security")
	_, err = app.Exec(ctx, `TRUNCATE tenant_fences`)
	require.ErrorContains(t, err, "permission denied")
	require.True(t, b.fenced(t, shared, o.ID))

	err = pgx.BeginFunc(ctx, app, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `SELECT set_config('app.organization_id', $1, true), set_config('tenantgate.fence_bypass', $1, true)`, o.ID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO agents (organization_id, name) VALUES ($1, 'sneaky')`, o.ID)
		return err
	})
	requireFenced(t, err)
}

// TestFenceDrainsWritesInFlight: a write transaction that passed the check
// before the fence holds the fence back until it commits, so the copy's
// snapshot has it; a write arriving while the fence waits is refused once
// the fence is set.
func TestFenceDrainsWritesInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	o := b.org(t, "drain", tenancy.PlanPro)
	shared := b.shared(t)
	dsn := b.env.AppURL(t, shared.DSN)
	early, late := tenancytest.Connect(t, dsn), tenancytest.Connect(t, dsn)

	inFlight, err := early.Begin(ctx)
	require.NoError(t, err)
	insert(t, inFlight, o.ID, "in flight")

	fenced := make(chan error, 1)
	go func() { fenced <- move.Fence(ctx, b.deps, o.ID, shared, 1) }()
	waitForLock(t, b, shared, "tenantgate-move")

	lateDone := make(chan error, 1)
	go func() {
		lateDone <- pgx.BeginFunc(ctx, late, func(tx pgx.Tx) error { return insertErr(ctx, tx, o.ID, "late") })
	}()
	select {
	case err := <-fenced:
		t.Fatalf("the fence was set under a write in flight: %v", err)
	case err := <-lateDone:
		t.Fatalf("a write got past a fence being set: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	require.NoError(t, inFlight.Commit(ctx), "the write in flight commits")
	require.NoError(t, <-fenced)
	requireFenced(t, <-lateDone)

	rows, err := b.owner(t, shared).Query(ctx, `SELECT name FROM agents WHERE organization_id = $1`, o.ID)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"in flight"}, names)
}

func insert(t testing.TB, tx pgx.Tx, orgID, name string) {
	t.Helper()
	require.NoError(t, insertErr(testCtx(t), tx, orgID, name))
}

func insertErr(ctx context.Context, tx pgx.Tx, orgID, name string) error {
	if _, err := tx.Exec(ctx, `SELECT set_config('app.organization_id', $1, true)`, orgID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO agents (organization_id, name) VALUES ($1, $2)`, orgID, name)
	return err
}

// waitForLock waits until a session of application app waits for a lock
// in db.
func waitForLock(t testing.TB, b *bundle, db tenancy.Database, app string) {
	t.Helper()
	conn := b.owner(t, db)
	require.Eventually(t, func() bool {
		var waiting bool
		err := conn.QueryRow(testCtx(t), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = $1 AND wait_event_type = 'Lock')`, app).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, 10*time.Millisecond, "the fence waits for the write in flight")
}
