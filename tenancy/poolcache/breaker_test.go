package poolcache_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestBreakerOpensForOneDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		dsn  func(t *testing.T) string
	}{
		{"missing database", func(t *testing.T) string { return dsnFor(t, dbName(t)) }},
		{"refused", func(*testing.T) string { return "postgres://root@127.0.0.1:1/postgres?sslmode=disable" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			badDSN := tc.dsn(t)
			_, goodDSN := newDB(t)
			src := newSource(map[string]poolcache.Target{"bad": {DSN: badDSN}, "good": {DSN: goodDSN}})
			c := newCache(t, poolcache.Config{BreakerThreshold: 3, BreakerCooldown: time.Minute}, src.lookup)

			for range 3 {
				err := query(c, "bad", "select 1")
				require.Error(t, err)
				require.True(t, poolcache.IsConnectionError(err), "%v", err)
			}
			require.Zero(t, c.Stats().TotalConns, "failed connections gave their tokens back")
			calls, before := src.calls.Load(), c.Stats()

			// Refused at once: without a lease, a lookup or a pool opened
			// (so without a connection attempt).
			_, err := c.Lease(t.Context(), "bad")
			after := c.Stats()
			require.Equal(t, [3]int64{before.Hits, before.Misses, before.Opens}, [3]int64{after.Hits, after.Misses, after.Opens},
				"an open breaker leases nothing: hits, misses, opens")
			require.Equal(t, tenancy.CodeTenantUnavailable, tenancy.ErrorCode(err))
			var te *tenancy.Error
			require.ErrorAs(t, err, &te)
			require.GreaterOrEqual(t, te.RetryAfter, time.Second)
			require.LessOrEqual(t, te.RetryAfter, time.Minute)
			require.Equal(t, calls, src.calls.Load(), "an open breaker looks nothing up")
			p, _ := poolStats(c, "bad")
			require.True(t, p.BreakerOpen)

			require.NoError(t, query(c, "good", "select 1"), "other databases are unaffected")
			p, _ = poolStats(c, "good")
			require.False(t, p.BreakerOpen)
		})
	}
}

func TestBreakerHalfOpenProbe(t *testing.T) {
	t.Parallel()
	name := dbName(t) // created halfway through
	src := newSource(map[string]poolcache.Target{"a": {DSN: dsnFor(t, name)}})
	const cooldown = 500 * time.Millisecond
	c := newCache(t, poolcache.Config{BreakerThreshold: 2, BreakerCooldown: cooldown}, src.lookup)

	for range 2 {
		require.Error(t, query(c, "a", "select 1"))
	}
	requireRefused(t, c, "a")

	// After the cooldown one probe goes through; its failure reopens.
	probe := waitProbe(t, c, "a")
	requireRefused(t, c, "a") // only one probe at a time
	_, err := probe.Pool().Exec(t.Context(), "select 1")
	require.Error(t, err)
	probe.Release(err)
	requireRefused(t, c, "a")

	// The database comes back: the next probe's success closes the breaker.
	createDB(t, name)
	probe = waitProbe(t, c, "a")
	_, err = probe.Pool().Exec(t.Context(), "select 1")
	require.NoError(t, err)
	probe.Release(err)
	require.NoError(t, query(c, "a", "select 1"))
	require.NoError(t, query(c, "a", "select 1"))
	p, _ := poolStats(c, "a")
	require.False(t, p.BreakerOpen)
}

func requireRefused(t *testing.T, c *poolcache.Cache, id string) {
	t.Helper()
	_, err := c.Lease(t.Context(), id)
	require.Equal(t, tenancy.CodeTenantUnavailable, tenancy.ErrorCode(err), "%v", err)
}

// waitProbe leases id as soon as its open breaker lets a probe through.
func waitProbe(t *testing.T, c *poolcache.Cache, id string) *poolcache.Lease {
	t.Helper()
	var l *poolcache.Lease
	require.Eventually(t, func() bool {
		var err error
		l, err = c.Lease(t.Context(), id)
		return err == nil
	}, waitFor, tick)
	return l
}

func TestIsConnectionError(t *testing.T) {
	t.Parallel()
	pgErr := func(code string) error { return &pgconn.PgError{Code: code} }
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("boom"), false},
		{pgErr("08006"), true},
		{pgErr("08001"), true},
		{pgErr("28P01"), true},
		{pgErr("3D000"), true},
		{pgErr("57P01"), true},
		{pgErr("57P03"), true},
		{pgErr("57014"), false}, // query_canceled
		{pgErr("42501"), false}, // a statement's permission denied; at connect it comes in a ConnectError
		{pgErr("55000"), false}, // a statement's object_not_in_prerequisite_state, likewise
		{pgErr("23505"), false},
		{pgErr("42P01"), false},
		{fmt.Errorf("wrapped: %w", pgErr("57P02")), true},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, true},
		{context.DeadlineExceeded, false}, // waiting for a busy pool
		{fmt.Errorf("acquire: %w", context.DeadlineExceeded), false},
		{&pgconn.ConnectError{Config: &pgconn.Config{}}, true},
		{context.Canceled, false},
		{fmt.Errorf("%w: %w", poolcache.ErrBudgetExhausted, context.DeadlineExceeded), false},
	} {
		require.Equal(t, tc.want, poolcache.IsConnectionError(tc.err), "%v", tc.err)
	}
}

// A statement that runs out of time is not a sign of a sick database.
func TestStatementTimeoutIsNotAConnectionError(t *testing.T) {
	t.Parallel()
	src := newSource(map[string]poolcache.Target{"a": {DSN: adminURL()}})
	c := newCache(t, poolcache.Config{}, src.lookup)
	l := lease(t, c, "a")
	defer l.Release(nil)
	// Connect first, so that the deadline hits the statement.
	_, err := l.Pool().Exec(t.Context(), "select 1")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err = l.Pool().Exec(ctx, "select pg_sleep(5)")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.False(t, poolcache.IsConnectionError(err), "%v", err)
}

// TestBreakerCountsRefusedConnections: a database that refuses the
// application's connections while the server is up counts as unreachable:
// its breaker opens and answers tenant_unavailable with a Retry-After, and
// each probe's refusal opens it again.
func TestBreakerCountsRefusedConnections(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		refuse, allow string // %[1]s the database, %[2]s the application role
	}{
		{"allow_connections false", "ALTER DATABASE %[1]s ALLOW_CONNECTIONS false", "ALTER DATABASE %[1]s ALLOW_CONNECTIONS true"},
		{"connect revoked", "REVOKE CONNECT ON DATABASE %[1]s FROM PUBLIC, %[2]s", "GRANT CONNECT ON DATABASE %[1]s TO %[2]s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := tenancytest.NewEnv(t) // its cleanup, the drop, runs last
			dsn := e.NewTenantDatabase(t, "refusing")
			sql := func(format string) string {
				return fmt.Sprintf(format, pgx.Identifier{e.Prefix + "refusing"}.Sanitize(), pgx.Identifier{e.AppRole}.Sanitize())
			}
			adminExec(t, sql(tc.refuse))
			// Allowed again before the drop: cleanups run last-in first-out.
			t.Cleanup(func() { adminExec(t, sql(tc.allow)) })
			src := newSource(map[string]poolcache.Target{"a": {DSN: e.AppURL(t, dsn)}})
			c := newCache(t, poolcache.Config{BreakerThreshold: 2, BreakerCooldown: 100 * time.Millisecond}, src.lookup)

			for range 2 {
				err := query(c, "a", "select 1")
				require.True(t, poolcache.IsConnectionError(err), "%v", err)
			}
			requireRefused(t, c, "a")
			var te *tenancy.Error
			_, err := c.Lease(t.Context(), "a")
			require.ErrorAs(t, err, &te)
			require.Positive(t, te.RetryAfter)

			probe := waitProbe(t, c, "a")
			_, err = probe.Pool().Exec(t.Context(), "select 1")
			require.True(t, poolcache.IsConnectionError(err), "%v", err)
			probe.Release(err)
			requireRefused(t, c, "a") // the probe's refusal reopened it
			p, _ := poolStats(c, "a")
			require.True(t, p.BreakerOpen)
		})
	}
}
