package router

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func tenancyConn(t *testing.T, b *bundle) *pgx.Conn {
	return tenancytest.Connect(t, b.env.CatalogURL)
}

func tenancyConnTo(t *testing.T, dsn string) *pgx.Conn {
	return tenancytest.Connect(t, dsn)
}

var tenantTables = []string{"agents", "tasks", "messages", "activity_logs", "agent_sessions", "schedules"}

// TestRowLevelSecurity works below the API: as the application role, with
// no setting nothing is visible, with A's setting only A's rows, and a row
// for another organization cannot be written.
func TestRowLevelSecurity(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.org(t, "rls-a", tenancy.PlanFree)
	c := b.org(t, "rls-c", tenancy.PlanFree)
	for _, o := range []org{a, c} {
		for _, n := range []string{"one", "two"} {
			require.Equal(t, 201, b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": n}).status)
		}
	}
	ctx := testCtx(t)
	app := tenancytest.Connect(t, b.env.AppURL(t, b.env.SharedURL))

	var super, bypass bool
	require.NoError(t, app.QueryRow(ctx, `SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user`).Scan(&super, &bypass))
	require.False(t, super)
	require.False(t, bypass)

	for _, table := range tenantTables {
		var n int
		require.NoError(t, app.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n), table)
		require.Zero(t, n, "%s: no rows without the organization setting", table)
	}
	owner := tenancytest.Connect(t, b.env.SharedURL)
	var total int
	require.NoError(t, owner.QueryRow(ctx, "SELECT count(*) FROM agents").Scan(&total))
	require.Equal(t, 4, total, "control: the rows exist")
	var logs int
	require.NoError(t, owner.QueryRow(ctx, "SELECT count(*) FROM activity_logs").Scan(&logs))
	require.Equal(t, 4, logs, "every create wrote its activity record")

	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx)
	_, err = tx.Exec(ctx, `SELECT set_config('app.organization_id', $1, true)`, a.ID)
	require.NoError(t, err)
	rows, err := tx.Query(ctx, `SELECT DISTINCT organization_id::text FROM agents`)
	require.NoError(t, err)
	orgs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{a.ID}, orgs, "with A's setting only A's rows")
	_, err = tx.Exec(ctx, `INSERT INTO agents (organization_id, name) VALUES ($1, 'smuggled')`, c.ID)
	require.ErrorContains(t, err, "row-level security", "writing another organization's row is refused")
	require.NoError(t, tx.Rollback(ctx))

	// After a transaction-local setting ends it reads back as '' and the
	// policy fails closed instead of erroring or matching.
	var after int
	require.NoError(t, app.QueryRow(ctx, "SELECT count(*) FROM agents").Scan(&after))
	require.Zero(t, after)

	var owns int
	require.NoError(t, app.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tableowner = current_user`).Scan(&owns))
	require.Zero(t, owns, "the application role owns no table")
	_, err = app.Exec(ctx, `ALTER TABLE agents DISABLE ROW LEVEL SECURITY`)
	require.Error(t, err, "and cannot switch row-level security off")
}
