package move

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
)

// Deps is what a move needs from the rest of the system.
type Deps struct {
	Catalog *catalog.Store
	// Publish tells every gateway replica to re-read the organization
	// (the change feed).
	Publish func(ctx context.Context, orgID string) error
	// CreateDedicated creates, migrates, grants and registers the dedicated
	// database of slug, or returns it when it exists. It must answer a
	// database in state ready.
	CreateDedicated func(ctx context.Context, slug string) (tenancy.Database, error)
	// SharedDatabase returns the shared database a tenant moving to the
	// shared tier goes to.
	SharedDatabase func(ctx context.Context) (tenancy.Database, error)
	// DropDatabase drops a dedicated database the move left empty.
	DropDatabase func(ctx context.Context, db tenancy.Database) error
	// Log receives the move's progress; nil discards it.
	Log *slog.Logger

	// hooks are the tests' fault injection; nil outside tests.
	hooks *hooks
}

// Steps of a move, in order, as Move reports them.
const (
	StepResolve = "resolve"     // read the placement, find or create the target
	StepMark    = "mark moving" // placement moving: gateways refuse writes
	StepFence   = "fence"       // the source takes no more writes of the tenant
	StepCopy    = "copy"        // rows copied in one snapshot
	StepVerify  = "verify"      // the copy read back and compared, then committed
	StepSwitch  = "switch"      // placement on the target, next epoch
	StepCleanup = "cleanup"     // target unfenced, source cleared or dropped
)

// ErrBusy reports that another mover holds the organization. It is worth
// retrying: the other mover ends, or its session dies and frees the lock.
var ErrBusy = errors.New("move: the organization is being moved by another mover")

// ErrMismatch reports a copy that does not match its source.
var ErrMismatch = errors.New("move: the copy does not match the source")

// undoTimeout bounds the undo of a failed move. The undo runs even when the
// move's context is cancelled: a cancelled move must not leave the tenant
// fenced and refusing writes.
const undoTimeout = time.Minute

// Move moves the organization orgID to the tier to (tenancy.KindShared or
// tenancy.KindDedicated), calling report with each step as it starts. It
// does not change the plan.
//
// It is idempotent: on a tenant already on tier to it only finishes what an
// interrupted move left (fences, source rows, a dedicated database to
// drop). A move that fails before the switch is undone and the tenant is
// served from the source; one that fails after it is served from the
// target, and running Move again completes the cleanup.
func Move(ctx context.Context, d Deps, orgID string, to string, report func(step string)) error {
	if to != tenancy.KindShared && to != tenancy.KindDedicated {
		return tenancy.Errorf(tenancy.CodeInvalid, "to: must be %s or %s (got %q)", tenancy.KindShared, tenancy.KindDedicated, to)
	}
	id, err := uuid.Parse(orgID)
	if err != nil {
		return tenancy.Errorf(tenancy.CodeInvalid, "organization: %q is not an id", orgID)
	}
	if d.Catalog == nil || d.Publish == nil || d.CreateDedicated == nil || d.SharedDatabase == nil || d.DropDatabase == nil {
		return errors.New("move: Deps needs Catalog, Publish, CreateDedicated, SharedDatabase and DropDatabase")
	}
	unlock, err := d.Catalog.LockMove(ctx, id.String())
	if tenancy.ErrorCode(err) == tenancy.CodeConflict {
		return ErrBusy
	}
	if err != nil {
		return err
	}
	defer unlock()
	m := newMover(d, id.String(), report)
	defer m.closeAll(ctx)
	m.log = m.log.With("to", to)
	return m.run(ctx, to)
}

// mover is one run of Move.
type mover struct {
	Deps
	// org is the organization's id in canonical form: it is written into
	// COPY statements, which take no parameters.
	org    string
	slug   string
	report func(string)
	log    *slog.Logger
	tables []table              // the tenant tables with their columns, read in resolve
	conns  map[string]*pgx.Conn // by database id: see conn
}

func newMover(d Deps, org string, report func(string)) *mover {
	if report == nil {
		report = func(string) {}
	}
	log := d.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &mover{Deps: d, org: org, report: report, log: log.With("organization", org)}
}

// step announces a step.
func (m *mover) step(name string) {
	m.log.Info("move step", "step", name)
	m.report(name)
}

func (m *mover) run(ctx context.Context, to string) error {
	m.step(StepResolve)
	t, err := m.Catalog.Tenant(ctx, m.org)
	if err != nil {
		return err
	}
	m.slug = t.Organization.Slug
	pl := t.Placement
	if pl.Kind == to {
		if pl.State == tenancy.PlacementMoving {
			// A move the other way was interrupted: asking for the
			// current tier abandons it.
			return m.abandon(ctx, pl)
		}
		return m.finish(ctx, pl)
	}
	src, err := m.Catalog.Database(ctx, pl.DatabaseID)
	if err != nil {
		return err
	}
	dst, err := m.transfer(ctx, pl, src, to)
	if err != nil {
		return m.recover(ctx, pl, dst, err)
	}
	return nil
}

// transfer runs the move from the target's resolution to the switch, then
// the cleanup. It returns the target it resolved, or the zero Database if
// it did not get that far, for the undo.
func (m *mover) transfer(ctx context.Context, pl tenancy.Placement, src tenancy.Database, to string) (tenancy.Database, error) {
	dst, err := m.target(ctx, pl, src, to)
	if err != nil {
		return dst, err
	}
	if err := m.hook(ctx, StepResolve); err != nil {
		return dst, err
	}
	m.step(StepMark)
	if err := m.mark(ctx, pl); err != nil {
		return dst, err
	}
	m.step(StepFence)
	if err := m.fence(ctx, src, pl.Epoch, dst.ID); err != nil {
		return dst, err
	}
	if err := m.hook(ctx, StepFence); err != nil {
		return dst, err
	}
	m.step(StepCopy)
	if err := m.copyAndVerify(ctx, src, dst); err != nil {
		return dst, err
	}
	m.step(StepSwitch)
	now, err := m.switchTo(ctx, pl, src, dst)
	if err != nil {
		return dst, err
	}
	return dst, m.finish(ctx, now, src)
}

// switchTo points the placement at the target and tells the replicas at
// once, before anything else can fail: from here on the tenant lives in
// the target, and its source copy is only waiting to be removed.
func (m *mover) switchTo(ctx context.Context, pl tenancy.Placement, src, dst tenancy.Database) (tenancy.Placement, error) {
	now, err := m.Catalog.SwitchPlacement(ctx, m.org, src.ID, dst.ID, pl.Epoch)
	if err != nil {
		return now, err
	}
	m.log.Info("placement switched", "from", src.Name, "to", dst.Name, "epoch", now.Epoch)
	if err := m.Publish(ctx, m.org); err != nil {
		return now, err
	}
	return now, m.hook(ctx, StepSwitch)
}

// mark sets the placement moving and tells the replicas, which refuse the
// tenant's writes from their next lookup. The fence, not this, is what
// keeps writes out of the source; this turns them into 503s early.
func (m *mover) mark(ctx context.Context, pl tenancy.Placement) error {
	if err := m.Catalog.BeginMove(ctx, m.org, pl.DatabaseID, pl.Epoch); err != nil {
		return err
	}
	if err := m.Publish(ctx, m.org); err != nil {
		return err
	}
	return m.hook(ctx, StepMark)
}

// target returns the database the tenant moves to: the one a killed run of
// this move recorded in the source's fence, so that a rerun copies to the
// same place, or else a new dedicated database or the shared one. The
// target is fenced at once: only the copy writes there until the switch,
// and a move abandoned from here on finds it by its fence and clears it.
func (m *mover) target(ctx context.Context, pl tenancy.Placement, src tenancy.Database, to string) (tenancy.Database, error) {
	dst, err := m.recordedTarget(ctx, src)
	if err != nil {
		return dst, err
	}
	if dst.ID == "" || dst.Kind != to {
		if dst, err = m.newTarget(ctx, to); err != nil {
			return dst, err
		}
	}
	if dst.State != "ready" || dst.Dirty {
		return dst, fmt.Errorf("move: target database %s is %s (dirty: %t)", dst.Name, dst.State, dst.Dirty)
	}
	if dst.ID == src.ID {
		return tenancy.Database{}, fmt.Errorf("move: target database %s is the source", dst.Name)
	}
	m.log.Info("move target", "from", src.Name, "to", dst.Name)
	if err := m.fence(ctx, dst, pl.Epoch, dst.ID); err != nil {
		return dst, err
	}
	return dst, m.resolveTables(ctx, src, dst)
}

func (m *mover) newTarget(ctx context.Context, to string) (tenancy.Database, error) {
	if to == tenancy.KindDedicated {
		return m.CreateDedicated(ctx, m.slug)
	}
	return m.SharedDatabase(ctx)
}

// recordedTarget is the target named in the source's fence, if a move
// fenced the source and the target is still registered.
func (m *mover) recordedTarget(ctx context.Context, src tenancy.Database) (tenancy.Database, error) {
	id, err := m.fencedTarget(ctx, src)
	if err != nil || id == "" {
		return tenancy.Database{}, err
	}
	dst, err := m.Catalog.Database(ctx, id)
	if tenancy.ErrorCode(err) == tenancy.CodeNotFound {
		return tenancy.Database{}, nil
	}
	return dst, err
}
