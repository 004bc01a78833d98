package move_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/provisioner/move"
	"github.com/tenantgate/tenantgate/tenancy"
)

// direction is a move between tiers, from the plan a tenant starts on.
type direction struct {
	name string
	plan tenancy.Plan
	to   string
}

var directions = []direction{
	{"to dedicated", tenancy.PlanPro, tenancy.KindDedicated},
	{"to shared", tenancy.PlanEnterprise, tenancy.KindShared},
}

// started is a tenant with rows, before a move.
type started struct {
	org    tenancy.Organization
	before tenancy.Tenant
	source tenancy.Database
	rows   map[string]map[string]string
	// dedicated counts the catalog's dedicated databases before the move.
	dedicated int
}

func (b *bundle) start(t *testing.T, slug string, plan tenancy.Plan) *started {
	t.Helper()
	o := b.org(t, slug, plan)
	s := &started{org: o, before: b.tenant(t, o.ID), source: b.home(t, o.ID), dedicated: b.dedicatedRecords(t)}
	b.seed(t, s.source, o.ID, 200)
	s.rows = b.snapshot(t, s.source, o.ID)
	return s
}

// requireOnSource asserts a failed move left the tenant as it was: ready
// on the source at the same epoch, unfenced, every row there and writable,
// and nothing of it elsewhere.
func (b *bundle) requireOnSource(t *testing.T, s *started) {
	t.Helper()
	now := b.tenant(t, s.org.ID)
	require.Equal(t, s.before.Placement, now.Placement, "placement as before the move")
	require.False(t, b.fenced(t, s.source, s.org.ID), "the source is not fenced")
	require.Equal(t, s.rows, b.snapshot(t, s.source, s.org.ID), "no row lost or changed")
	_, err := b.write(t, now, fmt.Sprintf("written after a failed move %d", len(s.rows["agents"])))
	require.NoError(t, err, "the tenant writes in the source")
	s.rows = b.snapshot(t, s.source, s.org.ID) // what a rerun must move
	require.Equal(t, s.dedicated, b.dedicatedRecords(t), "a dedicated target made for the move is gone")
	if s.before.Placement.Kind == tenancy.KindDedicated {
		require.Zero(t, b.rows(t, b.shared(t), s.org.ID), "the shared target keeps no copy")
	}
}

// requireMoved asserts a move to `to` completed with every row.
func (b *bundle) requireMoved(t *testing.T, s *started, to string) {
	t.Helper()
	now := b.tenant(t, s.org.ID)
	require.Equal(t, to, now.Placement.Kind)
	require.Equal(t, tenancy.PlacementReady, now.Placement.State)
	home := b.home(t, s.org.ID)
	require.Equal(t, s.rows, b.snapshot(t, home, s.org.ID), "every row, unchanged")
	require.False(t, b.fenced(t, home, s.org.ID))
	_, err := b.write(t, now, "after the move")
	require.NoError(t, err)
	if to == tenancy.KindDedicated {
		require.Zero(t, b.rows(t, s.source, s.org.ID), "the source is cleared")
		require.True(t, b.fenced(t, s.source, s.org.ID), "and stays fenced")
		require.Equal(t, s.dedicated+1, b.dedicatedRecords(t))
	} else {
		require.False(t, b.databaseExists(t, s.source.Name), "the dedicated source is dropped")
		require.Equal(t, s.dedicated-1, b.dedicatedRecords(t))
	}
}

// TestFailureBeforeSwitchIsUndone: a move that fails after any step up to
// the verified copy leaves the tenant on the source, reading and writing;
// a rerun then completes it.
func TestFailureBeforeSwitchIsUndone(t *testing.T) {
	t.Parallel()
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := testCtx(t)
			for i, step := range []string{move.StepResolve, move.StepMark, move.StepFence, move.StepCopy, move.StepVerify} {
				t.Run(step, func(t *testing.T) {
					s := b.start(t, fmt.Sprintf("fail-%d", i), d.plan)
					_, err := b.move(ctx, s.org.ID, d.to, move.FailAfter(step))
					require.ErrorIs(t, err, move.ErrInjected, step)
					b.requireOnSource(t, s)
					_, err = b.move(ctx, s.org.ID, d.to, nil)
					require.NoError(t, err, "a rerun after a failure at %s", step)
					b.requireMoved(t, s, d.to)
					require.NoError(t, b.moveBack(ctx, s))
				})
			}
		})
	}
}

// moveBack returns a tenant to its first tier, so the next case starts
// with the same databases.
func (b *bundle) moveBack(ctx context.Context, s *started) error {
	_, err := b.move(ctx, s.org.ID, s.before.Placement.Kind, nil)
	return err
}

// TestFailureAfterSwitchIsFinishedByARerun: once the placement switched, a
// failure leaves the tenant on the target with all its rows; a rerun
// finishes the cleanup.
func TestFailureAfterSwitchIsFinishedByARerun(t *testing.T) {
	t.Parallel()
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := testCtx(t)
			for i, step := range []string{move.StepSwitch, move.StepCleanup} {
				t.Run(step, func(t *testing.T) {
					s := b.start(t, fmt.Sprintf("late-%d", i), d.plan)
					_, err := b.move(ctx, s.org.ID, d.to, move.FailAfter(step))
					require.ErrorIs(t, err, move.ErrInjected, step)
					now := b.tenant(t, s.org.ID)
					require.Equal(t, d.to, now.Placement.Kind, "served from the target after a failure at %s", step)
					require.Equal(t, s.before.Placement.Epoch+1, now.Placement.Epoch)
					require.Equal(t, s.rows, b.snapshot(t, b.home(t, s.org.ID), s.org.ID))
					_, err = b.move(ctx, s.org.ID, d.to, nil)
					require.NoError(t, err)
					b.requireMoved(t, s, d.to)
					require.NoError(t, b.moveBack(ctx, s))
				})
			}
		})
	}
}

// TestCrashAtEachStepConvergesOnRerun: a mover killed after any step (no
// undo runs) is completed by running the move again.
func TestCrashAtEachStepConvergesOnRerun(t *testing.T) {
	t.Parallel()
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := testCtx(t)
			for i, step := range []string{move.StepResolve, move.StepMark, move.StepFence, move.StepCopy, move.StepVerify, move.StepSwitch, move.StepCleanup} {
				t.Run(step, func(t *testing.T) {
					s := b.start(t, fmt.Sprintf("crash-%d", i), d.plan)
					_, err := b.move(ctx, s.org.ID, d.to, move.CrashAfter(step))
					require.ErrorIs(t, err, move.ErrCrash)
					_, err = b.move(ctx, s.org.ID, d.to, nil)
					require.NoError(t, err, "a rerun after a crash at %s", step)
					b.requireMoved(t, s, d.to)
					require.NoError(t, b.moveBack(ctx, s))
				})
			}
		})
	}
}

// TestCrashThenAbandon: a mover killed before the switch is undone by
// asking for the tier the tenant is still on.
func TestCrashThenAbandon(t *testing.T) {
	t.Parallel()
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := testCtx(t)
			for i, step := range []string{move.StepResolve, move.StepMark, move.StepFence, move.StepCopy, move.StepVerify} {
				t.Run(step, func(t *testing.T) {
					s := b.start(t, fmt.Sprintf("abandon-%d", i), d.plan)
					_, err := b.move(ctx, s.org.ID, d.to, move.CrashAfter(step))
					require.ErrorIs(t, err, move.ErrCrash)
					_, err = b.move(ctx, s.org.ID, s.before.Placement.Kind, nil)
					require.NoError(t, err, "abandoning after a crash at %s", step)
					b.requireOnSource(t, s)
				})
			}
		})
	}
}

// TestVerificationFailure: a copy that does not match its source is never
// switched to; the tenant stays on the source and the target is dropped.
func TestVerificationFailure(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	tampers := map[string]string{
		"changed": `UPDATE messages SET content = content || '!' WHERE id = (SELECT min(id::text)::uuid FROM messages WHERE organization_id = $1)`,
		"lost":    `DELETE FROM activity_logs WHERE id = (SELECT min(id::text)::uuid FROM activity_logs WHERE organization_id = $1)`,
		"added":   `INSERT INTO idempotency_keys (organization_id, key, request_hash) VALUES ($1, 'extra', '\x00')`,
	}
	for name, sql := range tampers {
		s := b.start(t, "tamper-"+name, tenancy.PlanPro)
		_, err := b.move(ctx, s.org.ID, tenancy.KindDedicated, move.Tamper(func(ctx context.Context, tx pgx.Tx) error {
			_, err := tx.Exec(ctx, sql, s.org.ID)
			return err
		}))
		require.ErrorIs(t, err, move.ErrMismatch, name)
		b.requireOnSource(t, s)
	}
}

// TestCancelledMoveIsUndone: cancelling a move's context mid-copy still
// undoes it: the tenant is not left fenced.
func TestCancelledMoveIsUndone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	s := b.start(t, "cancelled", tenancy.PlanPro)
	ctx, cancel := context.WithCancel(testCtx(t))
	_, err := b.move(ctx, s.org.ID, tenancy.KindDedicated, move.Tamper(func(context.Context, pgx.Tx) error {
		cancel()
		return nil
	}))
	require.ErrorIs(t, err, context.Canceled)
	b.requireOnSource(t, s)
}

// TestRerunForgetsADroppedDatabase: a mover killed between dropping the
// emptied dedicated database and forgetting it leaves a record of a
// database that is gone; the rerun forgets it.
func TestRerunForgetsADroppedDatabase(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	s := b.start(t, "gone", tenancy.PlanEnterprise)
	_, err := b.move(ctx, s.org.ID, tenancy.KindShared, move.CrashAfter(move.StepSwitch))
	require.ErrorIs(t, err, move.ErrCrash)
	old, err := b.store.Database(ctx, s.source.ID)
	require.NoError(t, err)
	require.Equal(t, "dropping", old.State, "the switch retired it")
	require.NoError(t, b.deps.DropDatabase(ctx, old))

	_, err = b.move(ctx, s.org.ID, tenancy.KindShared, nil)
	require.NoError(t, err)
	_, err = b.store.Database(ctx, s.source.ID)
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err))
	require.Equal(t, s.rows, b.snapshot(t, b.shared(t), s.org.ID))
}
