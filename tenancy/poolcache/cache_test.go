package poolcache_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/poolcache"
)

func TestLeaseOpensOnePoolForConcurrentFirstLeases(t *testing.T) {
	t.Parallel()
	_, dsn := newDB(t)
	src := newSource(map[string]poolcache.Target{"a": {DSN: dsn}})
	slow := func(ctx context.Context, id string) (poolcache.Target, error) {
		time.Sleep(50 * time.Millisecond) // let every first lease arrive
		return src.lookup(ctx, id)
	}
	cfg := poolcache.Config{DedicatedConns: 3, ConnectTimeout: 3 * time.Second}
	c := newCache(t, cfg, slow)

	const n = 100
	leases := make([]*poolcache.Lease, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			l, err := c.Lease(t.Context(), "a")
			if err == nil {
				leases[i] = l
			}
		})
	}
	close(start)
	wg.Wait()

	pool := leases[0].Pool()
	for _, l := range leases {
		require.NotNil(t, l)
		require.Same(t, pool, l.Pool())
	}
	s := c.Stats()
	require.EqualValues(t, 1, s.Opens)
	require.EqualValues(t, 1, src.calls.Load())
	require.EqualValues(t, n, s.Hits+s.Misses)
	require.Equal(t, n, s.Pools[0].Leases)

	// The pool is built from the cache's settings, not pgx's defaults.
	cfgUsed := pool.Config()
	require.EqualValues(t, 3, cfgUsed.MaxConns)
	require.Equal(t, 3*time.Second, cfgUsed.ConnConfig.ConnectTimeout)
	var app string
	require.NoError(t, pool.QueryRow(t.Context(), "select current_setting('application_name')").Scan(&app))
	require.Equal(t, cfgUsed.ConnConfig.RuntimeParams["application_name"], app)
	for _, l := range leases {
		l.Release(nil)
	}
	require.Zero(t, c.Stats().Pools[0].Leases)
}

func TestEvictionWaitsForLastLease(t *testing.T) {
	t.Parallel()
	nameA, dsnA := newDB(t)
	_, dsnB := newDB(t)
	src := newSource(map[string]poolcache.Target{"a": {DSN: dsnA}, "b": {DSN: dsnB}})
	c := newCache(t, poolcache.Config{MaxOpen: 1}, src.lookup)
	admin := adminConn(t)

	la := lease(t, c, "a")
	appName := la.Pool().Config().ConnConfig.RuntimeParams["application_name"]
	queryDone := make(chan error, 1)
	go func() {
		_, err := la.Pool().Exec(context.Background(), "select pg_sleep(0.5)")
		queryDone <- err
	}()
	require.Eventually(t, func() bool {
		p, _ := poolStats(c, "a")
		return p.InUse == 1
	}, waitFor, tick, "the query on a never started")

	lb := lease(t, c, "b") // evicts a
	s := c.Stats()
	require.EqualValues(t, 1, s.Evictions)
	require.Equal(t, 1, s.Open)
	pa, ok := poolStats(c, "a")
	require.True(t, ok, "a dropped pool stays open while leased")
	require.True(t, pa.Dropped)
	require.Equal(t, 1, pa.Leases)

	// The evicted pool still serves its lease: running and new queries.
	require.NoError(t, <-queryDone)
	_, err := la.Pool().Exec(t.Context(), "select 1")
	require.NoError(t, err)

	la.Release(nil)
	require.Eventually(t, func() bool {
		_, open := poolStats(c, "a")
		return !open && sessions(t, admin, appName, nameA) == 0
	}, waitFor, tick, "a's pool was not closed after its last lease")
	lb.Release(nil)
}

func TestPinnedPoolsAreNeverEvicted(t *testing.T) {
	t.Parallel()
	_, dsnS := newDB(t)
	_, dsnA := newDB(t)
	src := newSource(map[string]poolcache.Target{
		"shared": {DSN: dsnS, Pinned: true},
		"a":      {DSN: dsnA},
		"b":      {DSN: dsnA},
	})
	c := newCache(t, poolcache.Config{MaxOpen: 1, SharedConns: 7}, src.lookup)
	for _, id := range []string{"shared", "a", "b", "shared"} {
		l := lease(t, c, id)
		_, err := l.Pool().Exec(t.Context(), "select 1")
		require.NoError(t, err)
		l.Release(nil)
	}
	s := c.Stats()
	require.EqualValues(t, 3, s.Opens)
	require.EqualValues(t, 1, s.Hits)
	require.Equal(t, 2, s.Open)
	p, ok := poolStats(c, "shared")
	require.True(t, ok)
	require.True(t, p.Pinned)

	l := lease(t, c, "shared")
	require.EqualValues(t, 7, l.Pool().Config().MaxConns)
	l.Release(nil)

	c.Invalidate("shared")
	require.Eventually(t, func() bool {
		_, open := poolStats(c, "shared")
		return !open
	}, waitFor, tick)
	require.Equal(t, 1, c.Stats().Open)
}

func TestInvalidate(t *testing.T) {
	t.Parallel()
	_, dsn := newDB(t)
	src := newSource(map[string]poolcache.Target{"a": {DSN: dsn}})
	c := newCache(t, poolcache.Config{}, src.lookup)

	old := lease(t, c, "a")
	c.Invalidate("a")
	p, ok := poolStats(c, "a")
	require.True(t, ok)
	require.True(t, p.Dropped)
	_, err := old.Pool().Exec(t.Context(), "select 1")
	require.NoError(t, err, "an invalidated pool serves its running leases")

	fresh := lease(t, c, "a")
	require.NotSame(t, old.Pool(), fresh.Pool())
	require.EqualValues(t, 2, src.calls.Load())
	require.EqualValues(t, 2, c.Stats().Opens)

	old.Release(nil)
	require.Eventually(t, func() bool { return len(c.Stats().Pools) == 1 }, waitFor, tick)
	fresh.Release(nil)
}

// An Invalidate that arrives while the pool is being opened must win: the
// target looked up before it may name the database's old home.
func TestInvalidateDuringOpenLooksUpAgain(t *testing.T) {
	t.Parallel()
	_, dsnOld := newDB(t)
	nameNew, dsnNew := newDB(t)
	entered, gate := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	src := func(ctx context.Context, id string) (poolcache.Target, error) {
		if calls.Add(1) == 1 {
			close(entered)
			<-gate
			return poolcache.Target{DSN: dsnOld}, nil
		}
		return poolcache.Target{DSN: dsnNew}, nil
	}
	c := newCache(t, poolcache.Config{}, src)

	type result struct {
		l   *poolcache.Lease
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := c.Lease(context.Background(), "a")
		done <- result{l, err}
	}()
	<-entered
	c.Invalidate("a")
	close(gate)
	r := <-done
	require.NoError(t, r.err)
	defer r.l.Release(nil)

	var db string
	require.NoError(t, r.l.Pool().QueryRow(t.Context(), "select current_database()").Scan(&db))
	require.Equal(t, nameNew, db)
	require.EqualValues(t, 2, calls.Load())
	require.EqualValues(t, 1, c.Stats().Opens, "the stale target opened no pool")
}

func TestLeaseSourceError(t *testing.T) {
	t.Parallel()
	errCatalog := errors.New("catalog down")
	var calls atomic.Int64
	c := newCache(t, poolcache.Config{}, func(context.Context, string) (poolcache.Target, error) {
		calls.Add(1)
		return poolcache.Target{}, errCatalog
	})
	for range 2 {
		_, err := c.Lease(t.Context(), "a")
		require.ErrorIs(t, err, errCatalog)
	}
	require.EqualValues(t, 2, calls.Load(), "a failed lookup is not cached")
	require.Zero(t, c.Stats().Opens)
}

func TestLeaseCancelled(t *testing.T) {
	t.Parallel()
	_, dsn := newDB(t)
	entered, gate := make(chan struct{}), make(chan struct{})
	var calls atomic.Int64
	c := newCache(t, poolcache.Config{}, func(ctx context.Context, id string) (poolcache.Target, error) {
		if calls.Add(1) == 1 {
			close(entered)
			<-gate
		}
		return poolcache.Target{DSN: dsn}, nil
	})

	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.Lease(cancelled, "a")
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, calls.Load(), "a cancelled lease looks nothing up")

	// A lease waiting for another's open gives up with its own context.
	first := make(chan error, 1)
	go func() {
		l, err := c.Lease(context.Background(), "a")
		if err == nil {
			l.Release(nil)
		}
		first <- err
	}()
	<-entered
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	// The open it waits for is held until the gate closes below: that
	// this returns at all shows it gave up with its own context.
	_, err = c.Lease(ctx, "a")
	require.ErrorIs(t, err, context.DeadlineExceeded)

	close(gate)
	require.NoError(t, <-first)
	require.EqualValues(t, 1, calls.Load())
}

func TestClose(t *testing.T) {
	t.Parallel()
	_, dsn := newDB(t)
	src := newSource(map[string]poolcache.Target{"a": {DSN: dsn}, "s": {DSN: dsn, Pinned: true}})
	app := "tgpc_test_" + randomHex(6)
	c := newCache(t, poolcache.Config{AppName: app}, src.lookup)
	ls := lease(t, c, "s")
	ls.Release(nil)

	l := lease(t, c, "a")
	queryDone := make(chan error, 1)
	go func() {
		_, err := l.Pool().Exec(context.Background(), "select pg_sleep(0.3)")
		queryDone <- err
	}()
	require.Eventually(t, func() bool { return c.Stats().InUse == 1 }, waitFor, tick)

	c.Close() // waits for the running query, which completes
	// Whether the goroutine has reported yet is the scheduler's business;
	// the server's is whether the query still runs: it must not.
	var running int
	require.NoError(t, adminConn(t).QueryRow(context.Background(), `select count(*) from pg_stat_activity
		where application_name = $1 and state = 'active'`, app).Scan(&running))
	require.Zero(t, running, "Close returned before the running query ended")
	require.NoError(t, <-queryDone, "the query completed, not cut off")
	l.Release(nil)
	c.Close()

	_, err := c.Lease(t.Context(), "a")
	require.ErrorIs(t, err, poolcache.ErrClosed)
	s := c.Stats()
	require.Zero(t, s.Open)
	require.Empty(t, s.Pools)
	require.Zero(t, s.TotalConns)
}

func TestReleaseTwiceIsHarmless(t *testing.T) {
	t.Parallel()
	src := newSource(map[string]poolcache.Target{"a": {DSN: adminURL()}})
	c := newCache(t, poolcache.Config{}, src.lookup)
	l := lease(t, c, "a")
	l.Release(nil)
	l.Release(nil)
	p, _ := poolStats(c, "a")
	require.Zero(t, p.Leases)
}

func BenchmarkLeaseRelease(b *testing.B) {
	// The hit path does no I/O, so the target is never connected to.
	src := newSource(map[string]poolcache.Target{"a": {DSN: adminURL()}})
	c := newCache(b, poolcache.Config{}, src.lookup)
	l, err := c.Lease(context.Background(), "a")
	require.NoError(b, err)
	l.Release(nil)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			l, err := c.Lease(ctx, "a")
			if err != nil {
				b.Fatal(err)
			}
			l.Release(nil)
		}
	})
}
