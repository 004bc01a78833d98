package move

import (
	"context"
	"errors"
	"fmt"

	"github.com/tenantgate/tenantgate/tenancy"
)

// finish makes the database a ready placement names the tenant's only home:
// after a switch, after an undo, or to converge what an interrupted move
// left. The home is unfenced and the replicas told; every other database
// that held the tenant loses its rows and keeps its fence, so that a
// replica still routing there cannot write, or is dropped if it is a
// dedicated database no one uses. known are databases the caller knows
// held the tenant.
func (m *mover) finish(ctx context.Context, pl tenancy.Placement, known ...tenancy.Database) error {
	home, err := m.Catalog.Database(ctx, pl.DatabaseID)
	if err != nil {
		return err
	}
	// A fence on the home names the target of a move out of it that was
	// abandoned: read it before the fence goes.
	abandoned, err := m.fencedTarget(ctx, home)
	if err != nil {
		return err
	}
	m.step(StepCleanup)
	if err := m.unfence(ctx, home); err != nil {
		return err
	}
	if err := m.Publish(ctx, m.org); err != nil {
		return err
	}
	old, err := m.formerHomes(ctx, home, abandoned, known)
	if err != nil {
		return err
	}
	for _, db := range old {
		if err := m.clear(ctx, db, false); err != nil {
			return err
		}
	}
	return m.hook(ctx, StepCleanup)
}

// formerHomes lists the databases other than home that may hold the
// tenant's rows: known ones, the abandoned target (an id, or ""), every
// shared database and every dedicated one no placement uses. clear touches
// only those that fence the tenant.
func (m *mover) formerHomes(ctx context.Context, home tenancy.Database, abandoned string, known []tenancy.Database) ([]tenancy.Database, error) {
	all := append([]tenancy.Database(nil), known...)
	if abandoned != "" && abandoned != home.ID {
		db, err := m.Catalog.Database(ctx, abandoned)
		if err == nil {
			all = append(all, db)
		} else if tenancy.ErrorCode(err) != tenancy.CodeNotFound {
			return nil, err
		}
	}
	shared, err := m.Catalog.SharedDatabases(ctx)
	if err != nil {
		return nil, err
	}
	unplaced, err := m.Catalog.UnplacedDatabases(ctx)
	if err != nil {
		return nil, err
	}
	all = append(append(all, shared...), unplaced...)
	seen := map[string]bool{home.ID: true}
	out := all[:0]
	for _, db := range all {
		if !seen[db.ID] {
			seen[db.ID] = true
			out = append(out, db)
		}
	}
	return out, nil
}

// clear removes the tenant from db, a database that is not its home. A
// dedicated database no placement uses is dropped and forgotten; any other
// loses the tenant's rows and keeps its fence. Unless ours is set (db is
// this move's own target), only a database fencing the tenant is touched:
// a fence is how a database shows it ever held the tenant's rows.
func (m *mover) clear(ctx context.Context, db tenancy.Database, ours bool) error {
	held, err := m.fenced(ctx, db)
	if errors.Is(err, errGone) {
		return m.Catalog.ForgetDatabase(ctx, db.ID) // dropped before the mover could forget it
	}
	if err != nil || !held && !ours {
		return err
	}
	if db.Kind == tenancy.KindDedicated {
		retired, err := m.Catalog.RetireDatabase(ctx, db.ID)
		if err != nil {
			return err
		}
		if retired {
			return m.drop(ctx, db)
		}
	}
	return m.deleteRows(ctx, db)
}

// drop drops a retired dedicated database, then its record.
func (m *mover) drop(ctx context.Context, db tenancy.Database) error {
	m.release(ctx, db.ID)
	if err := m.DropDatabase(ctx, db); err != nil {
		return fmt.Errorf("move: drop %s: %w", db.Name, err)
	}
	m.log.Info("dropped", "database", db.Name)
	return m.Catalog.ForgetDatabase(ctx, db.ID)
}

// recover handles a move that failed. Before the switch, it is undone and
// the tenant is served from the source again. If the switch committed (its
// answer may have been lost, or a later step failed) the tenant is served
// from the target, and a rerun finishes the cleanup.
func (m *mover) recover(ctx context.Context, pl tenancy.Placement, dst tenancy.Database, cause error) error {
	if errors.Is(cause, errCrash) {
		return cause
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoTimeout)
	defer cancel()
	undone, err := m.Catalog.AbortMove(ctx, m.org, pl.DatabaseID, pl.Epoch)
	if err != nil || !undone {
		return errors.Join(cause, err)
	}
	m.log.Warn("move failed; undoing it", "err", cause)
	return errors.Join(cause, m.undo(ctx, pl, dst))
}

// undo takes back a move whose placement is ready on the source again:
// finish lifts the source's fence, tells the replicas and clears every
// database the move fenced; the target is cleared even if the move failed
// before fencing it (a dedicated one is dropped: a rerun creates it again).
func (m *mover) undo(ctx context.Context, pl tenancy.Placement, dst tenancy.Database) error {
	pl.State = tenancy.PlacementReady
	if err := m.finish(ctx, pl); err != nil {
		return err
	}
	if dst.ID == "" {
		return nil
	}
	return m.clear(ctx, dst, true)
}

// abandon undoes a move that was killed before its switch, found when Move
// is asked for the tier the tenant is still on: the placement is ready on
// the source again, and finish lifts the source's fence and clears the
// target, which the move fenced as soon as it chose it.
func (m *mover) abandon(ctx context.Context, pl tenancy.Placement) error {
	if _, err := m.Catalog.AbortMove(ctx, m.org, pl.DatabaseID, pl.Epoch); err != nil {
		return err
	}
	m.log.Info("abandoning an interrupted move")
	return m.undo(ctx, pl, tenancy.Database{})
}
