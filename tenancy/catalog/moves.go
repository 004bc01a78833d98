package catalog

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tenantgate/tenantgate/tenancy"
)

// The catalog's side of a tier move (provisioner/move): who may run it,
// the placement's moving state, the switch to the new database, and the
// bookkeeping of a dedicated database left empty by the move. Every change
// of a placement is conditional on the epoch and database the mover read,
// so a mover acting on an outdated view changes nothing.

// moveLockKey is the session advisory lock of one organization's move.
const moveLockKey = `hashtextextended('tenantgate.move:' || $1, 0)`

// LockMove takes the move lock of an organization on a catalog connection
// of its own, or answers conflict when another mover holds it. The lock
// lives as long as that session, so a killed mover frees it.
func (s *Store) LockMove(ctx context.Context, orgID string) (unlock func(), err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, interpret(err, "move lock")
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(`+moveLockKey+`)`, orgID).Scan(&got); err != nil || !got {
		conn.Release()
		if err != nil {
			return nil, interpret(err, "move lock")
		}
		return nil, tenancy.Errorf(tenancy.CodeConflict, "the organization is already being moved")
	}
	return func() { releaseMoveLock(conn, orgID) }, nil
}

// releaseMoveLock unlocks before the connection goes back to the pool; if
// it cannot, the connection is closed rather than returned holding the lock.
func releaseMoveLock(conn *pgxpool.Conn, orgID string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_unlock(`+moveLockKey+`)`, orgID); err != nil {
		conn.Conn().Close(ctx)
	}
	conn.Release()
}

// errPlacementChanged answers a conditional placement change whose
// condition no longer holds.
var errPlacementChanged = tenancy.Errorf(tenancy.CodeConflict, "the placement changed while the move ran")

// BeginMove marks the placement moving, provided it is still ready on
// databaseID at epoch. Marking it again is harmless.
func (s *Store) BeginMove(ctx context.Context, orgID, databaseID string, epoch int64) error {
	tag, err := s.pool.Exec(ctx, `UPDATE placements SET state = 'moving', updated_at = now()
		WHERE organization_id = $1 AND database_id = $2 AND epoch = $3`, orgID, databaseID, epoch)
	if err != nil {
		return interpret(err, "placement")
	}
	if tag.RowsAffected() == 0 {
		return errPlacementChanged
	}
	return nil
}

// AbortMove returns a moving placement to ready on the database it never
// left. It reports false when the placement is no longer moving on
// databaseID at epoch: the switch happened, and there is nothing to undo.
func (s *Store) AbortMove(ctx context.Context, orgID, databaseID string, epoch int64) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE placements SET state = 'ready', updated_at = now()
		WHERE organization_id = $1 AND database_id = $2 AND epoch = $3`, orgID, databaseID, epoch)
	if err != nil {
		return false, interpret(err, "placement")
	}
	return tag.RowsAffected() == 1, nil
}

// SwitchPlacement points a moving placement at its new database in one
// transaction: database toID, the next epoch, ready. A dedicated database
// that no placement uses any more is marked dropping in the same
// transaction, so a mover that dies before dropping it finds it again.
// It answers conflict when the placement is not moving on fromID at epoch.
func (s *Store) SwitchPlacement(ctx context.Context, orgID, fromID, toID string, epoch int64) (tenancy.Placement, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE placements SET database_id = $4, epoch = epoch + 1, state = 'ready', updated_at = now()
			WHERE organization_id = $1 AND database_id = $2 AND epoch = $3 AND state = 'moving'`, orgID, fromID, epoch, toID)
		if err != nil {
			return interpret(err, "placement")
		}
		if tag.RowsAffected() == 0 {
			return errPlacementChanged
		}
		_, err = tx.Exec(ctx, `UPDATE databases d SET state = 'dropping', updated_at = now()
			WHERE d.id = $1 AND d.kind = 'dedicated'
			AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.database_id = d.id)`, fromID)
		return interpret(err, "database")
	})
	if err != nil {
		return tenancy.Placement{}, err
	}
	return s.Placement(ctx, orgID)
}

// RetireDatabase marks a dedicated database that no placement uses as
// dropping. It reports false, and changes nothing, when a placement uses it
// or it is not dedicated: such a database must be kept.
func (s *Store) RetireDatabase(ctx context.Context, id string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE databases d SET state = 'dropping', updated_at = now()
		WHERE d.id = $1 AND d.kind = 'dedicated'
		AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.database_id = d.id)`, id)
	if err != nil {
		return false, interpret(err, "database")
	}
	return tag.RowsAffected() == 1, nil
}

// UnplacedDatabases lists the dedicated databases no placement uses, in
// any state: ones waiting to be dropped, and targets of moves in progress
// or abandoned.
func (s *Store) UnplacedDatabases(ctx context.Context) ([]tenancy.Database, error) {
	return s.databasesWhere(ctx, `kind = 'dedicated'
		AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.database_id = d.id)`)
}

// SharedDatabases lists every shared database, whatever its state: places
// an organization that moved to a dedicated database may have left rows.
func (s *Store) SharedDatabases(ctx context.Context) ([]tenancy.Database, error) {
	return s.databasesWhere(ctx, `kind = 'shared'`)
}

func (s *Store) databasesWhere(ctx context.Context, cond string) ([]tenancy.Database, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+databaseColumns+` FROM databases d WHERE `+cond+` ORDER BY d.created_at`)
	if err != nil {
		return nil, interpret(err, "databases")
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tenancy.Database, error) { return scanDatabase(row) })
	return out, interpret(err, "databases")
}

// ForgetDatabase removes the record of a database that was dropped. Only a
// database marked dropping that no placement uses is removed; forgetting
// one twice is harmless.
func (s *Store) ForgetDatabase(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM databases d WHERE d.id = $1 AND d.state = 'dropping'
		AND NOT EXISTS (SELECT 1 FROM placements p WHERE p.database_id = d.id)`, id)
	return interpret(err, "database")
}
