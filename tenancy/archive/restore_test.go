package archive_test

import (
	"bytes"
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/archive"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// mutate deletes, edits and adds rows of the organization, as a customer
// who deleted half their agents by mistake would, and leaves idempotency
// records behind.
func mutate(t testing.TB, dsn, orgID string) {
	t.Helper()
	ctx := testCtx(t)
	conn := tenancytest.Connect(t, dsn)
	defer conn.Close(ctx)
	for _, s := range []string{
		`DELETE FROM messages WHERE organization_id = $1 AND (task_id IN (SELECT id FROM tasks WHERE organization_id = $1 AND title LIKE '%1')
		   OR content LIKE '%2 — %')`,
		`DELETE FROM tasks WHERE organization_id = $1 AND title LIKE '%1'`,
		`UPDATE agents SET name = name || ' (renamed)', status = 'paused', updated_at = now() WHERE organization_id = $1 AND name LIKE '%3 ✓'`,
		`UPDATE tasks SET result = '{"edited": true}', status = 'failed' WHERE organization_id = $1 AND title LIKE '%5'`,
		`DELETE FROM activity_logs WHERE organization_id = $1 AND details->>'i' LIKE '%7'`,
		`WITH n AS (INSERT INTO agents (organization_id, name) VALUES ($1, 'added after the archive') RETURNING id)
		 INSERT INTO tasks (organization_id, agent_id, title) SELECT $1, id, 'added task' FROM n`,
		`INSERT INTO idempotency_keys (organization_id, key, request_hash) VALUES ($1, 'after', '\x01')`,
	} {
		tag, err := conn.Exec(ctx, s, orgID)
		require.NoError(t, err, s)
		require.NotZero(t, tag.RowsAffected(), s)
	}
}

// Restore brings back exactly the archive's state after rows were
// deleted, edited and added, and a neighbour in the same database is
// unchanged byte for byte (its tuples not even rewritten).
func TestRestore(t *testing.T) {
	t.Parallel()
	for name, as := range map[string]func(b *bundle, t *testing.T) (*pgx.Conn, uint){
		"owner":            func(b *bundle, t *testing.T) (*pgx.Conn, uint) { return b.owner(t, b.shared), 0 },
		"application-role": func(b *bundle, t *testing.T) (*pgx.Conn, uint) { return b.app(t, b.shared), version(t, b.shared) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			ctx := testCtx(t)
			a, neighbour := org("acme"), org("neighbour")
			seed(t, b.shared, a.ID, 2000, "acme")
			seed(t, b.shared, neighbour.ID, 1000, "neighbour")
			data, m := export(t, b.owner(t, b.shared), a, archive.ExportOptions{})
			want := rows(t, b.shared, a.ID)
			theirs := raw(t, b.shared, neighbour.ID)

			mutate(t, b.shared, a.ID)
			require.NotEqual(t, want, rows(t, b.shared, a.ID))

			conn, v := as(b, t)
			var loaded []string
			got, err := archive.Restore(ctx, bytes.NewReader(data), conn, a.ID, archive.RestoreOptions{SchemaVersion: v,
				Progress: func(table string, _ int64) { loaded = append(loaded, table) }})
			require.NoError(t, err)
			require.Equal(t, m, got)
			require.Equal(t, archive.Tables, loaded)
			require.Equal(t, want, rows(t, b.shared, a.ID))
			require.Zero(t, count(t, b.shared, a.ID)["idempotency_keys"], "records of requests against the replaced state go")
			require.Equal(t, theirs, raw(t, b.shared, neighbour.ID))

			// Again, over the restored state: the same.
			_, err = archive.Restore(ctx, bytes.NewReader(data), conn, a.ID, archive.RestoreOptions{SchemaVersion: v})
			require.NoError(t, err)
			require.Equal(t, want, rows(t, b.shared, a.ID))
			require.Equal(t, theirs, raw(t, b.shared, neighbour.ID))
		})
	}
}

// A restore killed mid-way (its context cancelled between tables or in the
// middle of a COPY, or its backend terminated) leaves the tenant's old
// rows exactly, and running it again ends in the archive's state.
func TestRestoreKilledMidway(t *testing.T) {
	t.Parallel()
	kills := map[string]func(t *testing.T, b *bundle, conn *pgx.Conn, data []byte, cancel context.CancelFunc) (io.Reader, func(string, int64)){
		"context cancelled between tables": func(_ *testing.T, _ *bundle, _ *pgx.Conn, data []byte, cancel context.CancelFunc) (io.Reader, func(string, int64)) {
			return bytes.NewReader(data), func(table string, _ int64) {
				if table == "messages" {
					cancel()
				}
			}
		},
		"context cancelled during a COPY": func(_ *testing.T, _ *bundle, _ *pgx.Conn, data []byte, cancel context.CancelFunc) (io.Reader, func(string, int64)) {
			return &cancelAfter{r: bytes.NewReader(data), n: int64(len(data)) * 2 / 3, cancel: cancel}, nil
		},
		"backend terminated": func(t *testing.T, b *bundle, conn *pgx.Conn, data []byte, _ context.CancelFunc) (io.Reader, func(string, int64)) {
			killer := b.owner(t, b.shared)
			pid := conn.PgConn().PID()
			return bytes.NewReader(data), func(table string, _ int64) {
				if table == "tasks" {
					_, err := killer.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pid)
					require.NoError(t, err)
				}
			}
		},
	}
	for name, kill := range kills {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			a, neighbour := org("acme"), org("neighbour")
			seed(t, b.shared, a.ID, 8000, "acme")
			seed(t, b.shared, neighbour.ID, 1000, "neighbour")
			data, _ := export(t, b.owner(t, b.shared), a, archive.ExportOptions{})
			want := rows(t, b.shared, a.ID)
			theirs := raw(t, b.shared, neighbour.ID)
			mutate(t, b.shared, a.ID)
			old := raw(t, b.shared, a.ID)

			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			conn := b.owner(t, b.shared)
			src, progress := kill(t, b, conn, data, cancel)
			var loaded atomic.Int64
			_, err := archive.Restore(ctx, src, conn, a.ID, archive.RestoreOptions{Progress: func(table string, rows int64) {
				loaded.Add(1)
				if progress != nil {
					progress(table, rows)
				}
			}})
			require.Error(t, err)
			require.NotErrorIs(t, err, archive.ErrCorrupt)
			require.Positive(t, loaded.Load(), "killed after loading began")
			require.Less(t, loaded.Load(), int64(len(archive.Tables)), "killed before it ended")
			t.Log(err)

			require.Equal(t, old, raw(t, b.shared, a.ID), "the old rows, untouched")
			require.Equal(t, theirs, raw(t, b.shared, neighbour.ID))

			_, err = archive.Restore(testCtx(t), bytes.NewReader(data), b.owner(t, b.shared), a.ID, archive.RestoreOptions{})
			require.NoError(t, err)
			require.Equal(t, want, rows(t, b.shared, a.ID))
			require.Equal(t, theirs, raw(t, b.shared, neighbour.ID))
		})
	}
}

// cancelAfter reads r and cancels once n bytes went by.
type cancelAfter struct {
	r      io.Reader
	n      int64
	read   int64
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	// Small reads, so the cancel lands while a table streams.
	n, err := c.r.Read(p[:min(len(p), 4096)])
	c.read += int64(n)
	if c.read >= c.n {
		c.cancel()
	}
	return n, err
}

// Restore takes another organization's archive only when told to (a clone).
func TestRestoreOtherOrganization(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	a, other := org("acme"), org("other")
	seed(t, b.shared, a.ID, 500, "acme")
	seed(t, b.shared, other.ID, 500, "other")
	data, _ := export(t, b.owner(t, b.shared), a, archive.ExportOptions{})
	before := raw(t, b.shared, other.ID)

	_, err := archive.Restore(ctx, bytes.NewReader(data), b.owner(t, b.shared), other.ID, archive.RestoreOptions{})
	require.ErrorIs(t, err, archive.ErrOtherOrganization)
	require.Equal(t, tenancy.CodeInvalid, tenancy.ErrorCode(err))
	require.Equal(t, before, raw(t, b.shared, other.ID))

	_, err = archive.Restore(ctx, bytes.NewReader(data), b.owner(t, b.shared), other.ID, archive.RestoreOptions{AnyOrganization: true})
	require.NoError(t, err)
	require.Equal(t, rows(t, b.shared, a.ID), rows(t, b.shared, other.ID))
}

// Restore waits for the organization's write transactions in flight, so
// none commits between its delete and its verification; it gives up after
// LockTimeout, changing nothing.
func TestRestoreWaitsForWritesInFlight(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	a := org("acme")
	seed(t, b.shared, a.ID, 500, "acme")
	data, _ := export(t, b.owner(t, b.shared), a, archive.ExportOptions{})
	want := rows(t, b.shared, a.ID)

	// A write of the tenant, as the gateway makes it, past its fence check
	// and not committed.
	writer := b.app(t, b.shared)
	tx, err := writer.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `SELECT set_config('app.organization_id', $1, true)`, a.ID)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO agents (organization_id, name) VALUES ($1, 'in flight')`, a.ID)
	require.NoError(t, err)

	before := raw(t, b.shared, a.ID)
	_, err = archive.Restore(ctx, bytes.NewReader(data), b.owner(t, b.shared), a.ID, archive.RestoreOptions{LockTimeout: 200 * time.Millisecond})
	require.ErrorContains(t, err, "writes in flight")
	require.Equal(t, before, raw(t, b.shared, a.ID))

	restorer := b.owner(t, b.shared)
	done := make(chan error, 1)
	go func() {
		_, err := archive.Restore(ctx, bytes.NewReader(data), restorer, a.ID, archive.RestoreOptions{})
		done <- err
	}()
	// Named wait: the restore is blocked on the tenant's fence lock.
	watcher := b.owner(t, b.shared)
	require.Eventually(t, func() bool {
		var waiting bool
		err := watcher.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' AND NOT granted)`,
			restorer.PgConn().PID()).Scan(&waiting)
		return err == nil && waiting
	}, 10*time.Second, 10*time.Millisecond, "restore waits for the write in flight")
	require.NoError(t, tx.Commit(ctx))
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(time.Minute):
		t.Fatal("restore did not end once the write committed")
	}
	require.Equal(t, want, rows(t, b.shared, a.ID), "the write committed before the restore is replaced too")
}
