package tenantdb

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// countingConn counts the writes a connection makes: with pgx, one write
// per round trip it starts.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

type fixture struct {
	pool   *pgxpool.Pool
	writes *atomic.Int64
	scope  *Scope
	agents *Agents
	a, b   tenancy.Tenant
}

func newFixture(t testing.TB, maxConns int32) *fixture {
	t.Helper()
	e := tenancytest.NewEnv(t)
	dsn := e.NewTenantDatabase(t, "scope")
	cfg, err := pgxpool.ParseConfig(e.AppURL(t, dsn))
	require.NoError(t, err)
	cfg.MaxConns = maxConns
	f := &fixture{writes: &atomic.Int64{}}
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	cfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countingConn{Conn: c, writes: f.writes}, nil
	}
	f.pool, err = pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(f.pool.Close)
	f.scope = NewScope(func(context.Context, string) (*pgxpool.Pool, func(error), error) {
		return f.pool, func(error) {}, nil
	})
	f.agents = NewAgents(f.scope)
	mk := func() tenancy.Tenant {
		id := uuid.NewString()
		return tenancy.Tenant{Organization: tenancy.Organization{ID: id, Slug: id[:8]},
			Placement: tenancy.Placement{OrganizationID: id, DatabaseID: "db", State: tenancy.PlacementReady}}
	}
	f.a, f.b = mk(), mk()
	return f
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// TestReadIsOneRoundTrip: the organization setting travels with the query
// in one pipelined batch, so it costs no extra round trip.
func TestReadIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1)
	_, err := f.agents.Create(ctx(t), f.a, "", NewAgent{Name: "one"}, 1000)
	require.NoError(t, err)
	// Warm up: the connection's handshake, and pgx describing each new
	// statement once before caching it, are not per-request costs.
	warm, _, err := f.agents.List(ctx(t), f.a, tenancy.Page{})
	require.NoError(t, err)
	_, err = f.agents.Get(ctx(t), f.a, warm[0].ID)
	require.NoError(t, err)

	before := f.writes.Load()
	list, _, err := f.agents.List(ctx(t), f.a, tenancy.Page{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.EqualValues(t, 1, f.writes.Load()-before, "a list is one round trip, setting included")

	before = f.writes.Load()
	_, err = f.agents.Get(ctx(t), f.a, list[0].ID)
	require.NoError(t, err)
	require.EqualValues(t, 1, f.writes.Load()-before, "so is a get")
}

// TestSettingDoesNotOutliveItsTransaction: the same pooled connection
// serves the next borrower with no organization set.
func TestSettingDoesNotOutliveItsTransaction(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 1) // one connection: every call reuses it
	_, err := f.agents.Create(ctx(t), f.a, "", NewAgent{Name: "mine"}, 1000)
	require.NoError(t, err)
	_, _, err = f.agents.List(ctx(t), f.a, tenancy.Page{})
	require.NoError(t, err)

	var setting string
	require.NoError(t, f.pool.QueryRow(ctx(t), `SELECT coalesce(current_setting('app.organization_id', true), '')`).Scan(&setting))
	require.Empty(t, setting, "no setting left on the pooled connection")
	var visible int
	require.NoError(t, f.pool.QueryRow(ctx(t), `SELECT count(*) FROM agents`).Scan(&visible))
	require.Zero(t, visible, "and so nothing visible outside a scope")

	// The next tenant on the same connection sees only its own rows.
	list, _, err := f.agents.List(ctx(t), f.b, tenancy.Page{})
	require.NoError(t, err)
	require.Empty(t, list)
}

// TestScopeIsolation: the stores' own filters and RLS agree; one tenant's
// ids are not found for another.
func TestScopeIsolation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 4)
	mine, err := f.agents.Create(ctx(t), f.a, "", NewAgent{Name: "x"}, 1000)
	require.NoError(t, err)
	_, err = f.agents.Get(ctx(t), f.b, mine.ID)
	require.ErrorIs(t, err, tenancy.ErrNotFound)
	name := "stolen"
	_, err = f.agents.Update(ctx(t), f.b, "", mine.ID, AgentPatch{Name: &name})
	require.ErrorIs(t, err, tenancy.ErrNotFound)
	require.ErrorIs(t, f.agents.Delete(ctx(t), f.b, "", mine.ID), tenancy.ErrNotFound)
	got, err := f.agents.Get(ctx(t), f.a, mine.ID)
	require.NoError(t, err)
	require.Equal(t, "x", got.Name)

	_, err = f.agents.Create(ctx(t), f.b, "", NewAgent{Name: "x"}, 1000)
	require.NoError(t, err, "names are unique per tenant, not globally")
	_, err = f.agents.Create(ctx(t), f.a, "", NewAgent{Name: "x"}, 1000)
	require.Equal(t, tenancy.CodeConflict, tenancy.ErrorCode(err))
}

// TestWritesRefusedWhileMoving: a tenant being moved may read but not write.
func TestWritesRefusedWhileMoving(t *testing.T) {
	t.Parallel()
	f := newFixture(t, 2)
	moving := f.a
	moving.Placement.State = tenancy.PlacementMoving
	_, err := f.agents.Create(ctx(t), moving, "", NewAgent{Name: "x"}, 1000)
	require.Equal(t, tenancy.CodeTenantUnavailable, tenancy.ErrorCode(err))
	var te *tenancy.Error
	require.ErrorAs(t, err, &te)
	require.Positive(t, te.RetryAfter)
	_, _, err = f.agents.List(ctx(t), moving, tenancy.Page{})
	require.NoError(t, err, "reads go on")
}

// BenchmarkScopeList measures a tenant-scoped list (setting + query in one
// batch) against the same query sent alone on the same pool, with the
// setting made a connection default so RLS admits the same rows: the
// difference is what the scope costs.
func BenchmarkScopeList(b *testing.B) {
	f := newFixture(b, 4)
	for i := range 20 {
		_, err := f.agents.Create(ctx(b), f.a, "", NewAgent{Name: fmt.Sprintf("agent-%d", i)}, 1000)
		require.NoError(b, err)
	}
	b.Run("scope", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := f.agents.List(context.Background(), f.a, tenancy.Page{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare-query", func(b *testing.B) {
		conn, err := f.pool.Acquire(context.Background())
		require.NoError(b, err)
		defer conn.Release()
		_, err = conn.Exec(context.Background(), `SELECT set_config('app.organization_id', $1, false)`, f.a.Organization.ID)
		require.NoError(b, err)
		defer conn.Exec(context.Background(), `RESET app.organization_id`)
		for b.Loop() {
			rows, err := conn.Query(context.Background(), `SELECT `+agentColumns+` FROM agents
				WHERE organization_id = $1 AND deleted_at IS NULL AND (created_at, id) > ($2, $3)
				ORDER BY created_at, id LIMIT $4`, f.a.Organization.ID, time.Unix(0, 0), uuid.Nil.String(), 51)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Agent, error) {
				var a Agent
				return a, scanAgent(r, &a)
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
