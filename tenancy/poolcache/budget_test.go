package poolcache_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// Many tenants, few connections: the server never sees more sessions than
// the budget, and every query still gets through.
func TestConnectionBudgetHoldsAcrossPools(t *testing.T) {
	t.Parallel()
	const dbs, workers, budget = 6, 30, 5
	targets := map[string]poolcache.Target{}
	for i := range dbs {
		_, dsn := newDB(t)
		targets[fmt.Sprint(i)] = poolcache.Target{DSN: dsn}
	}
	app := "tgpc_test_" + randomHex(6)
	// A generous connect timeout: on a loaded machine the default 2 s
	// failed connects (CI); the budget, not the speed, is under test.
	cfg := poolcache.Config{MaxOpen: 3, MaxTotalConns: budget, DedicatedConns: 4, AppName: app, ConnectTimeout: 30 * time.Second}
	c := newCache(t, cfg, newSource(targets).lookup)
	admin := adminConn(t)

	var maxSeen, samples atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			n := int64(sessions(t, admin, app, ""))
			samples.Add(1)
			for cur := maxSeen.Load(); n > cur && !maxSeen.CompareAndSwap(cur, n); cur = maxSeen.Load() {
			}
		}
	}()

	var queries, failures atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(2 * time.Second)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				err := query(c, fmt.Sprint(rand.IntN(dbs)), "select pg_sleep(0.05)")
				queries.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-sampled

	s := c.Stats()
	t.Logf("queries %d, samples %d, max sessions %d, evictions %d, opens %d",
		queries.Load(), samples.Load(), maxSeen.Load(), s.Evictions, s.Opens)
	require.Zero(t, failures.Load(), "first error: %v", firstErr.Load())
	require.LessOrEqual(t, maxSeen.Load(), int64(budget))
	require.Positive(t, maxSeen.Load(), "the sampler saw no session at all")
	require.LessOrEqual(t, s.TotalConns, budget)
	require.Positive(t, s.Evictions)
}

func query(c *poolcache.Cache, id, sql string) error {
	return queryWithin(c, id, sql, 5*time.Second)
}

func queryWithin(c *poolcache.Cache, id, sql string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	l, err := c.Lease(ctx, id)
	if err != nil {
		return err
	}
	_, err = l.Pool().Exec(ctx, sql)
	l.Release(err)
	return err
}

// Idle connections of a quiet tenant give way to a busy one.
func TestBudgetReclaimsIdleConnections(t *testing.T) {
	t.Parallel()
	_, dsnA := newDB(t)
	_, dsnB := newDB(t)
	src := newSource(map[string]poolcache.Target{"a": {DSN: dsnA}, "b": {DSN: dsnB}})
	c := newCache(t, poolcache.Config{MaxTotalConns: 4, DedicatedConns: 4}, src.lookup)

	la := lease(t, c, "a")
	conns := make([]*pgxpool.Conn, 4)
	for i := range conns {
		var err error
		conns[i], err = la.Pool().Acquire(t.Context())
		require.NoError(t, err)
	}
	for _, conn := range conns {
		conn.Release()
	}
	la.Release(nil)
	require.Equal(t, 4, c.Stats().TotalConns)
	require.Equal(t, 4, c.Stats().Idle)

	// Without reclaiming, b would wait for a's idle timeout (a minute).
	require.NoError(t, query(c, "b", "select 1"))
	pa, _ := poolStats(c, "a")
	require.Less(t, pa.Total, 4)
	require.LessOrEqual(t, c.Stats().TotalConns, 4)
}

// A statement that times out is cancelled through a cancel request, which
// must not queue for a token: the connection it cancels holds one.
func TestCancelRequestsBypassTheBudget(t *testing.T) {
	t.Parallel()
	name, dsn := newDB(t)
	src := newSource(map[string]poolcache.Target{"a": {DSN: dsn}})
	app := "tgpc_test_" + randomHex(6)
	c := newCache(t, poolcache.Config{MaxTotalConns: 2, DedicatedConns: 2, AppName: app}, src.lookup)
	admin := adminConn(t)

	l := lease(t, c, "a")
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := l.Pool().Exec(ctx, "select pg_sleep(30)")
			require.Error(t, err)
		})
	}
	wg.Wait()
	l.Release(nil)
	require.Eventually(t, func() bool {
		return sessions(t, admin, app, name) == 0 && c.Stats().TotalConns == 0
	}, 5*time.Second, tick, "the cancelled sessions lingered on the server")
}

// TestServerCap: pools of databases on one server share its cap, below the
// cache's total budget; another server's pools are not held by it.
func TestServerCap(t *testing.T) {
	t.Parallel()
	targets := map[string]poolcache.Target{}
	for i := range 4 {
		_, dsn := newDB(t)
		server := "busy"
		if i == 3 {
			server = "other"
		}
		targets[fmt.Sprint(i)] = poolcache.Target{DSN: dsn, Server: server}
	}
	app := "tgpc_test_" + randomHex(6)
	c := newCache(t, poolcache.Config{MaxOpen: 10, MaxTotalConns: 20, DedicatedConns: 4, MaxServerConns: 3, AppName: app,
		// Twelve workers share three connections: a dial may wait long for a
		// token on a loaded machine; the cap, not the wait, is under test.
		ConnectTimeout: 15 * time.Second},
		newSource(targets).lookup)
	admin := adminConn(t)
	var peakBusy, peakOther atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var busy, other int64
			for i := range 4 {
				name, err := schema.DatabaseName(targets[fmt.Sprint(i)].DSN)
				require.NoError(t, err)
				n := int64(sessions(t, admin, app, name))
				if i == 3 {
					other += n
				} else {
					busy += n
				}
			}
			if busy > peakBusy.Load() {
				peakBusy.Store(busy)
			}
			if other > peakOther.Load() {
				peakOther.Store(other)
			}
		}
	}()
	var failures, done atomic.Int64
	var firstErr atomic.Value
	enough := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for {
				select {
				case <-enough:
					return
				default:
				}
				if err := queryWithin(c, fmt.Sprint(w%4), "select pg_sleep(0.03)", 20*time.Second); err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
				done.Add(1)
			}
		})
	}
	// Until the other server was seen with more than one session and every
	// worker had a few turns, however long that takes on a loaded machine:
	// the figures below are then the run's, not a time window's.
	require.Eventually(t, func() bool { return peakOther.Load() > 1 && done.Load() >= 16*4 }, time.Minute, tick,
		"the other server is not held to the busy one's cap")
	close(enough)
	wg.Wait()
	close(stop)
	<-sampled
	require.Zero(t, failures.Load(), "first error: %v", firstErr.Load())
	require.LessOrEqual(t, peakBusy.Load(), int64(3), "the busy server's cap holds across its pools")
}
