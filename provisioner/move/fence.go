package move

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// The mover works on tenant databases over direct connections as their
// owner (the DSN the catalog records), never through the gateway's pools:
// only the owner can set and lift fences and write past them.

// connectTimeout bounds each connection the mover opens; pgx's default is
// two minutes.
const connectTimeout = 10 * time.Second

// fenceLockTimeout bounds the wait for the tenant's writes in flight when
// fencing. A longer write transaction fails the move (which is undone)
// rather than holding back the tenant's writers queued behind the fence.
const fenceLockTimeout = "10s"

// connect opens a connection to db as its owner.
func connect(ctx context.Context, db tenancy.Database) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(db.DSN)
	if err != nil {
		return nil, fmt.Errorf("move: database %s: %w", db.Name, err)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = connectTimeout
	}
	cfg.RuntimeParams["application_name"] = "tenantgate-move"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("move: connect to %s: %w", schema.Redact(db.DSN), err)
	}
	return conn, nil
}

// withTx runs fn in a transaction on the move's owner connection to db.
func (m *mover) withTx(ctx context.Context, db tenancy.Database, fn func(tx pgx.Tx) error) error {
	conn, err := m.conn(ctx, db)
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, conn, fn)
}

// conn returns the move's owner connection to db, opening it on first use
// or when the last one broke. A move visits each database several times,
// and each new connection is a new backend: tens of milliseconds on a
// database just created, whose catalogs no backend has read yet. Every
// setting the mover makes is local to its transaction, so nothing carries
// from one use to the next.
func (m *mover) conn(ctx context.Context, db tenancy.Database) (*pgx.Conn, error) {
	if c := m.conns[db.ID]; c != nil && !c.IsClosed() {
		return c, nil
	}
	c, err := connect(ctx, db)
	if err != nil {
		return nil, err
	}
	if m.conns == nil {
		m.conns = map[string]*pgx.Conn{}
	}
	m.conns[db.ID] = c
	return c, nil
}

// release closes the move's connection to the database id, if open: a
// database cannot be dropped while connected to.
func (m *mover) release(ctx context.Context, id string) {
	if c := m.conns[id]; c != nil {
		_ = c.Close(context.WithoutCancel(ctx))
		delete(m.conns, id)
	}
}

// closeAll closes every connection of the move.
func (m *mover) closeAll(ctx context.Context) {
	for id := range m.conns {
		m.release(ctx, id)
	}
}

// fence bars the tenant's writes in db. It takes the tenant's exclusive
// fence lock first, which waits for every write transaction of the tenant
// that already passed the fence check (they hold the shared lock) and holds
// new ones back until the fence is committed and visible to them. So once
// fence returns, no write of the tenant commits in db, and a snapshot taken
// from then on holds every write that did. target is recorded for reruns.
func (m *mover) fence(ctx context.Context, db tenancy.Database, epoch int64, target string) error {
	err := m.withTx(ctx, db, func(tx pgx.Tx) error {
		return FenceOrganization(ctx, tx, m.org, epoch, target, fenceLockTimeout)
	})
	if err != nil {
		return fmt.Errorf("move: fence in %s: %w", db.Name, err)
	}
	m.log.Info("fenced", "database", db.Name)
	return nil
}

// FenceOrganization bars an organization's writes in the database tx is on (target,
// when not empty, is recorded for a rerun of its move). It takes the
// tenant's exclusive fence lock first, waiting at most lockTimeout (a
// PostgreSQL interval) for its writes in flight, so once tx commits no
// write of the tenant commits there. Moves and restores both fence by it.
func FenceOrganization(ctx context.Context, tx pgx.Tx, org string, epoch int64, target, lockTimeout string) error {
	if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`, lockTimeout); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('tenantgate.fence'), hashtext($1::uuid::text))`, org); err != nil {
		return fmt.Errorf("wait for the tenant's writes in flight: %w", err)
	}
	_, err := tx.Exec(ctx, `INSERT INTO tenant_fences (organization_id, epoch, target_database_id) VALUES ($1, $2, $3)
		ON CONFLICT (organization_id) DO UPDATE SET epoch = EXCLUDED.epoch,
			target_database_id = EXCLUDED.target_database_id, fenced_at = now()`, org, epoch, nullIfEmpty(target))
	return err
}

// unfence lets the tenant write in db again.
func (m *mover) unfence(ctx context.Context, db tenancy.Database) error {
	err := m.withTx(ctx, db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM tenant_fences WHERE organization_id = $1`, m.org)
		return err
	})
	if err != nil {
		return fmt.Errorf("move: unfence in %s: %w", db.Name, err)
	}
	return nil
}

// fencedTarget returns the target recorded in db's fence of the tenant, or
// "" when db does not fence it.
func (m *mover) fencedTarget(ctx context.Context, db tenancy.Database) (string, error) {
	var target string
	err := m.withTx(ctx, db, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT coalesce(target_database_id::text, '') FROM tenant_fences
			WHERE organization_id = $1`, m.org).Scan(&target)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("move: read fence in %s: %w", db.Name, err)
	}
	return target, nil
}

// errGone reports a database that does not exist (any more).
var errGone = errors.New("move: database does not exist")

// fenced reports whether db fences the tenant: whether a move ever took
// the tenant out of it, or copied into it.
func (m *mover) fenced(ctx context.Context, db tenancy.Database) (bool, error) {
	var held bool
	err := m.withTx(ctx, db, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM tenant_fences WHERE organization_id = $1)`, m.org).Scan(&held)
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name
		return false, errGone
	}
	if err != nil {
		return false, fmt.Errorf("move: read fence in %s: %w", db.Name, err)
	}
	return held, nil
}

// writePast prepares a transaction of the mover to touch the tenant's rows:
// row-level security admits them (it is forced, so it applies to an owner
// that is not a superuser too) and the fence lets the owner through.
func (m *mover) writePast(ctx context.Context, tx pgx.Tx) error {
	_, err := tx.Exec(ctx, `SELECT set_config('app.organization_id', $1, true), set_config('tenantgate.fence_bypass', $1, true)`, m.org)
	return err
}

// deleteRows removes every row of the tenant from db, children before
// parents, in one transaction. db's fence stays.
func (m *mover) deleteRows(ctx context.Context, db tenancy.Database) error {
	err := m.withTx(ctx, db, func(tx pgx.Tx) error {
		if err := m.writePast(ctx, tx); err != nil {
			return err
		}
		if _, err := skipTriggers(ctx, tx); err != nil {
			return err
		}
		return deleteTenant(ctx, tx, m.org)
	})
	if err != nil {
		return fmt.Errorf("move: delete the tenant's rows in %s: %w", db.Name, err)
	}
	return nil
}

func deleteTenant(ctx context.Context, tx pgx.Tx, org string) error {
	for i := len(tenantTables) - 1; i >= 0; i-- {
		name := pgx.Identifier{tenantTables[i]}.Sanitize()
		if _, err := tx.Exec(ctx, `DELETE FROM `+name+` WHERE organization_id = $1`, org); err != nil {
			return fmt.Errorf("delete from %s: %w", tenantTables[i], err)
		}
	}
	return nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
