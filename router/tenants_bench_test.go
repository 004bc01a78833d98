package router

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/identity"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// BenchmarkThousandTenants drives 1,000 enterprise tenants, each on its own
// database, through one gateway with pools.max_open=64: GET /api/agents
// from 32 keep-alive clients for 15 s, each request for a tenant picked
// uniformly (nearly every request then finds its pool evicted: the worst
// case), then from a Zipf distribution (a hot few, as real traffic has).
// The clients run in this process (each request picks its tenant's
// token): what this measures is errors and connections, not the gateway's
// overhead, which BenchmarkLoadGatewayVsBare measures from a load process
// of its own.
// A sampler reads pg_stat_activity every 10 ms for the gateway's
// connections. It reports throughput, errors (any answer but 200; none is
// deliberate here), the peak of server connections against the budget
// (pools.max_total_conns), the 99th percentile latency and the pool cache's
// hit rate and evictions.
//
// The budget is the default 80 unless the server's max_connections is too
// small to leave room for the catalog, the sampler and other sessions: then
// three fifths of it. The 1,000 databases are copied from the provisioner's
// template (a few at a time: the copies themselves are serialised by the
// provisioner's template lock) and dropped in parallel afterwards.
//
//	go test -run '^$' -bench ThousandTenants -benchtime 1x -timeout 30m ./router/
func BenchmarkThousandTenants(b *testing.B) {
	const (
		tenants  = 1000
		maxOpen  = 64
		clients  = 32
		duration = 15 * time.Second
		// connectDuration is the reference's: its rate is steady sooner.
		connectDuration = 5 * time.Second
	)
	budget := connectionBudget(b)
	bn := benchGateway(b, setupOptions{pools: poolcache.Config{MaxOpen: maxOpen, MaxTotalConns: budget}})
	b.Cleanup(func() { dropDedicated(b, bn) }) // runs before the env's own, sequential, cleanup
	gateway := serveApp(b, bn.app)
	created := time.Now()
	auth, targets := bn.manyTenants(b, tenants)
	b.Logf("%d dedicated tenants created in %s", tenants, time.Since(created).Round(time.Second))
	url := "http://" + gateway + "/api/agents"

	zipf := func(r *rand.Rand) func() int {
		z := rand.NewZipf(r, 1.1, 1, tenants-1)
		return func() int { return int(z.Uint64()) }
	}
	for _, mix := range []struct {
		name string
		pick func(r *rand.Rand) func() int
	}{
		{"uniform", func(r *rand.Rand) func() int { return func() int { return r.IntN(tenants) } }},
		{"zipf", zipf},
	} {
		b.Run(mix.name, func(b *testing.B) {
			var res driveResult
			for b.Loop() {
				res = drive(b, bn, url, auth, clients, duration, mix.pick)
			}
			b.ReportMetric(float64(res.ok)/duration.Seconds(), "req/s")
			// The reference: what the server gives when every request
			// opens a connection of its own, in the same run.
			connects := connectEach(b, targets, clients, connectDuration, mix.pick)
			b.ReportMetric(connects, "connect-req/s")
			b.ReportMetric(float64(res.ok)/duration.Seconds()/connects, "connect-ratio")
			b.ReportMetric(float64(res.failed), "errors")
			b.ReportMetric(float64(res.peakServer), "peak-conns")
			b.ReportMetric(float64(res.peakBudget), "peak-budget-conns")
			b.ReportMetric(float64(budget), "budget-conns")
			b.ReportMetric(float64(maxOpen), "max-open")
			b.ReportMetric(float64(res.served), "tenants-served")
			b.ReportMetric(ms(percentile(res.lat, 0.5)), "p50-ms")
			b.ReportMetric(ms(percentile(res.lat, 0.99)), "p99-ms")
			b.ReportMetric(100*res.hitRate, "pool-hit-%")
			b.ReportMetric(float64(res.evictions), "evictions")
			b.ReportMetric(0, "ns/op")
			if res.failed > 0 {
				b.Logf("first failures: %s", strings.Join(res.failures, "; "))
			}
		})
	}
}

// connectionBudget is pools.max_total_conns for the benchmark: the default
// 80, or three fifths of the server's max_connections when that is less.
func connectionBudget(b *testing.B) int {
	conn := tenancytest.Connect(b, tenancytest.ServerURL())
	var maxConns int
	require.NoError(b, conn.QueryRow(context.Background(), `SELECT current_setting('max_connections')::int`).Scan(&maxConns))
	return min(80, maxConns*3/5)
}

// tenantTarget is a tenant's database and organization, for a client that
// goes to the database directly.
type tenantTarget struct{ dsn, org string }

// manyTenants creates n enterprise organizations with their databases and
// returns each owner's Authorization header and each tenant's target.
func (bn *bundle) manyTenants(b *testing.B, n int) ([]string, []tenantTarget) {
	hash, err := identity.HashPassword("password-many", cheap)
	require.NoError(b, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var g errgroup.Group
	g.SetLimit(4)
	for i := range n {
		g.Go(func() error {
			slug := fmt.Sprintf("many-%04d", i)
			_, err := bn.prov.CreateOrganization(ctx, provisioner.CreateOrganization{Slug: slug, Name: slug,
				Plan: tenancy.PlanEnterprise, OwnerEmail: "owner@" + slug + ".test", OwnerPasswordHash: hash})
			return err
		})
	}
	require.NoError(b, g.Wait())
	auth := make([]string, n)
	targets := make([]tenantTarget, n)
	for i := range n {
		slug := fmt.Sprintf("many-%04d", i)
		r := bn.do(b, "POST", "/api/auth/login", "", map[string]string{"email": "owner@" + slug + ".test", "password": "password-many"})
		require.Equal(b, 200, r.status, r.text)
		auth[i] = "Bearer " + r.json["token"].(string)
		org, err := bn.store.OrganizationBySlug(ctx, slug)
		require.NoError(b, err)
		t, err := bn.store.Tenant(ctx, org.ID)
		require.NoError(b, err)
		db, err := bn.store.Database(ctx, t.Placement.DatabaseID)
		require.NoError(b, err)
		targets[i] = tenantTarget{dsn: db.DSN, org: org.ID}
	}
	return auth, targets
}

// connectEach runs clients closed-loop workers for d, each request a new
// connection to the database of a tenant pick chooses, the plain handler's
// list query for that tenant, and the connection's close: the rate at which
// the server sets up sessions, which bounds a gateway whose requests
// nearly all need a connection. It returns the rate of such requests.
func connectEach(b *testing.B, targets []tenantTarget, clients int, d time.Duration, pick func(*rand.Rand) func() int) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	deadline := time.Now().Add(d)
	var done atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for w := range clients {
		g.Go(func() error {
			next := pick(rand.New(rand.NewPCG(uint64(w), 11)))
			for time.Now().Before(deadline) {
				t := targets[next()]
				conn, err := pgx.Connect(ctx, t.dsn)
				if err != nil {
					return err
				}
				rows, err := conn.Query(ctx, plainList, t.org, tenancy.DefaultLimit+1)
				if err == nil {
					rows.Close()
					err = rows.Err()
				}
				if cerr := conn.Close(ctx); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				done.Add(1)
			}
			return nil
		})
	}
	require.NoError(b, g.Wait(), "the reference's connections")
	return float64(done.Load()) / d.Seconds()
}

type driveResult struct {
	ok, failed int
	failures   []string // the first few, for the log
	lat        []time.Duration
	served     int // distinct tenants answered 200
	peakServer int // gateway connections pg_stat_activity showed
	peakBudget int // the pool cache's own count of its budget in use
	hitRate    float64
	evictions  int64
}

// drive sends GETs from clients closed-loop workers for d, each for a
// tenant pick chooses, while sampling the gateway's server connections.
func drive(b *testing.B, bn *bundle, url string, auth []string, clients int, d time.Duration,
	pick func(*rand.Rand) func() int) driveResult {
	before := bn.pools.Stats()
	stopSampling := sampleConnections(b, bn)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	type worker struct {
		ok, failed int
		failures   []string
		lat        []time.Duration
		served     map[int]bool
	}
	workers := make([]worker, clients)
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			me := &workers[w]
			me.served = map[int]bool{}
			next := pick(rand.New(rand.NewPCG(uint64(w), 7)))
			for time.Now().Before(deadline) {
				t := next()
				start := time.Now()
				status := get(client, url, auth[t])
				if status != http.StatusOK {
					me.failed++
					if len(me.failures) < 3 {
						me.failures = append(me.failures, fmt.Sprintf("tenant %d: status %d", t, status))
					}
					continue
				}
				me.ok++
				me.lat = append(me.lat, time.Since(start))
				me.served[t] = true
			}
		}()
	}
	wg.Wait()
	var r driveResult
	served := map[int]bool{}
	for _, w := range workers {
		r.ok += w.ok
		r.failed += w.failed
		r.lat = append(r.lat, w.lat...)
		if len(r.failures) < 5 {
			r.failures = append(r.failures, w.failures...)
		}
		for t := range w.served {
			served[t] = true
		}
	}
	r.served = len(served)
	r.peakServer, r.peakBudget = stopSampling()
	after := bn.pools.Stats()
	hits, misses := after.Hits-before.Hits, after.Misses-before.Misses
	if hits+misses > 0 {
		r.hitRate = float64(hits) / float64(hits+misses)
	}
	r.evictions = after.Evictions - before.Evictions
	return r
}

// sampleConnections counts the gateway's connections on the server (by
// its application_name) and in the pool cache's budget every 10 ms until
// the returned function is called; that returns both peaks.
func sampleConnections(b *testing.B, bn *bundle) func() (server, budget int) {
	monitor := tenancytest.Connect(b, bn.env.CatalogURL)
	appName := "tgtest-" + bn.env.Prefix
	var peakServer, peakBudget atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var n int64
			err := monitor.QueryRow(context.Background(),
				`SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`, appName).Scan(&n)
			if err == nil && n > peakServer.Load() {
				peakServer.Store(n)
			}
			if t := int64(bn.pools.Stats().TotalConns); t > peakBudget.Load() {
				peakBudget.Store(t)
			}
		}
	}()
	return func() (int, int) {
		close(stop)
		<-done
		return int(peakServer.Load()), int(peakBudget.Load())
	}
}

// get sends one GET and returns its status, 0 when it got no answer.
func get(client *http.Client, url, auth string) int {
	req, err := http.NewRequestWithContext(context.Background(), "GET", url, nil)
	if err != nil {
		return 0
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode
}

// dropDedicated closes the gateway's pools and drops the env's dedicated
// databases sixteen at a time: PostgreSQL checkpoints for each DROP
// DATABASE, and concurrent drops share checkpoints, so this takes seconds
// where one by one (the env's cleanup) would take minutes.
func dropDedicated(b *testing.B, bn *bundle) {
	bn.pools.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	conn := tenancytest.Connect(b, tenancytest.ServerURL())
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, bn.env.DedicatedPrefix)
	require.NoError(b, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(b, err)
	var g errgroup.Group
	g.SetLimit(16)
	for _, name := range names {
		g.Go(func() error { return schema.DropDatabase(ctx, bn.env.ServerURL, name) })
	}
	require.NoError(b, g.Wait())
}
