package router

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestFirstRequestsOpenOnePool: a burst of first requests for a tenant
// opens its pool once.
func TestFirstRequestsOpenOnePool(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "burst", tenancy.PlanEnterprise)
	before := b.pools.Stats().Opens
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := b.do(t, "GET", "/api/agents", o.token, nil); r.status != 200 {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	require.Zero(t, failed.Load())
	require.EqualValues(t, 1, b.pools.Stats().Opens-before, "100 concurrent first requests open one pool")
}

// TestConnectionBudgetAcrossTenants drives more dedicated tenants than
// pools.max_open through the gateway and samples the server: the gateway
// never holds more connections than pools.max_total_conns.
func TestConnectionBudgetAcrossTenants(t *testing.T) {
	t.Parallel()
	const budget = 5
	b := setup(t, setupOptions{pools: poolcache.Config{MaxOpen: 2, MaxTotalConns: budget, SharedConns: 3, DedicatedConns: 3}})
	var tenants []org
	for i := range 5 {
		tenants = append(tenants, b.org(t, fmt.Sprintf("budget-%d", i), tenancy.PlanEnterprise))
	}
	tenants = append(tenants, b.org(t, "budget-shared", tenancy.PlanPro))

	monitor := tenancytest.Connect(t, b.env.CatalogURL)
	stop := make(chan struct{})
	var peak atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			var n int64
			err := monitor.QueryRow(testCtx(t), `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1`,
				"tgtest-"+b.env.Prefix).Scan(&n)
			if err == nil && n > peak.Load() {
				peak.Store(n)
			}
		}
	}()

	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	// A fixed amount of work, not a time window: 24 clients, each asking
	// for every tenant in turn from its own starting point, so every tenant
	// is asked for (more of them than max_open: pools must be evicted)
	// however slowly the machine runs them.
	for w := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3 * len(tenants) {
				o := tenants[(w+i)%len(tenants)]
				if r := b.do(t, "GET", "/api/agents", o.token, nil); r.status == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled
	require.Zero(t, failed.Load(), "every request is served, waiting for a connection if it must")
	require.Positive(t, ok.Load())
	require.Positive(t, peak.Load(), "the sampler saw the gateway's connections")
	require.LessOrEqual(t, peak.Load(), int64(budget), "never more server connections than the budget")
	require.Positive(t, b.pools.Stats().Evictions, "more tenants than max_open: pools were evicted")
	t.Logf("%d requests, peak %d connections, %d evictions", ok.Load(), peak.Load(), b.pools.Stats().Evictions)
}
