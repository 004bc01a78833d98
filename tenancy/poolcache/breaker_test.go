package poolcache_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
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
			calls := src.calls.Load()

			start := time.Now()
			_, err := c.Lease(t.Context(), "bad")
			require.Less(t, time.Since(start), 50*time.Millisecond)
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
