package provisioner

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// BenchmarkFleetCreate (issue 13, item 4): a fleet of enterprise tenants
// (TENANTGATE_BENCH_FLEET_TENANTS, default 100; `make bench` asks for
// 1,000) created as an operator's script would: 10 loops at once, each
// running the real binary's `tenants create --plan enterprise --wait` one
// tenant after another, against the real binary's provisioner running in
// another process. The bound is what PostgreSQL alone would need if it
// could use every core for copies of the template: the tenants × the floor
// (a bare CREATE DATABASE … TEMPLATE, median of rounds measured before and
// after the fleet in the same run) ÷ the cores.
//
// It reports the wall time, the bound and their ratio, the mean per
// tenant, and the slowest single command.
//
//	TENANTGATE_BENCH_FLEET_TENANTS=1000 go test -run '^$' -bench FleetCreate -benchtime 1x -timeout 30m ./provisioner/
func BenchmarkFleetCreate(b *testing.B) {
	const loops, floorRounds = 10, 5
	tenants := 100
	if s := os.Getenv("TENANTGATE_BENCH_FLEET_TENANTS"); s != "" {
		var err error
		tenants, err = strconv.Atoi(s)
		require.NoError(b, err, "TENANTGATE_BENCH_FLEET_TENANTS")
	}
	f := newFleet(b)
	bin := buildCommand(b)
	env := commandEnv(f)
	provisioner := startCommand(b, bin, env, "provisioner")
	defer provisioner.stop()

	create := func(slug string) (time.Duration, error) {
		start := time.Now()
		out, err := command(bin, env, "tenants", "create", "--slug", slug, "--name", slug, "--plan", "enterprise", "--wait").CombinedOutput()
		if err == nil && !succeeded.Match(out) {
			err = fmt.Errorf("--wait did not see the job succeed")
		}
		if err != nil {
			return 0, fmt.Errorf("tenants create %s: %w\n%s", slug, err, out)
		}
		return time.Since(start), nil
	}
	server := tenancytest.Connect(b, f.env.ServerURL)
	template := pgx.Identifier{f.cfg.TemplateName()}.Sanitize()
	var floors []time.Duration
	floor := func(round string) {
		for i := range floorRounds {
			name := pgx.Identifier{fmt.Sprintf("%sfloor_%s_%d", f.env.DedicatedPrefix, round, i)}.Sanitize()
			start := time.Now()
			_, err := server.Exec(context.Background(), "CREATE DATABASE "+name+" TEMPLATE "+template)
			floors = append(floors, time.Since(start))
			require.NoError(b, err)
		}
	}

	// The first creation makes the server's template.
	_, err := create("fleet-first")
	require.NoError(b, err)
	var wall, slowest time.Duration
	for b.Loop() {
		floor("before")
		var mu sync.Mutex
		var wg sync.WaitGroup
		start := time.Now()
		for l := range loops {
			wg.Go(func() {
				for i := l; i < tenants; i += loops {
					took, err := create(fmt.Sprintf("fleet-%d", i))
					if err != nil {
						b.Error(err)
						return
					}
					mu.Lock()
					slowest = max(slowest, took)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		wall = time.Since(start)
		floor("after")
	}
	var ready int
	require.NoError(b, tenancytest.Connect(b, f.env.CatalogURL).QueryRow(context.Background(),
		`SELECT count(*) FROM databases WHERE kind = 'dedicated' AND state = 'ready'`).Scan(&ready))
	require.Equal(b, tenants+1, ready, "every tenant's database is ready")

	fl := median(floors)
	bound := time.Duration(tenants) * fl / time.Duration(runtime.NumCPU())
	b.ReportMetric(wall.Seconds(), "wall-s")
	b.ReportMetric(bound.Seconds(), "bound-s")
	b.ReportMetric(float64(wall)/float64(bound), "wall/bound")
	b.ReportMetric(ms(fl), "floor-ms")
	b.ReportMetric(ms(wall)/float64(tenants), "ms/tenant")
	b.ReportMetric(ms(slowest), "slowest-ms")
	b.ReportMetric(float64(tenants), "tenants")
	b.ReportMetric(float64(runtime.NumCPU()), "cores")
	b.ReportMetric(0, "ns/op") // the wall time says it better
	b.Logf("%d tenants by %d loops in %v; floor %v (%v); bound %v", tenants, loops, wall, fl, floors, bound)
}
