package main

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEnterpriseCreateTargets: the figures of issue 13's provisioning
// benchmark, read from a line it printed, are judged against their
// targets, and every figure their texts quote is one it reports.
func TestEnterpriseCreateTargets(t *testing.T) {
	t.Parallel()
	const line = "BenchmarkEnterpriseCreate-2   	       1	19037737012 ns/op	       155.5 c10-ms/tenant	         3.078 c10/floor	" +
		"       626.7 cli-max-ms	       249.2 cli-ms	        30.07 cli-shared-ms	         4.934 cli/floor	        50.51 floor-ms	" +
		"       195.7 job-ms	       115.4 psql-ms	        75.00 step-create-ms	" +
		"         5.000 step-ready-ms	        12.00 step-verify-ms\n"
	run, err := parse(strings.NewReader(line), "sample")
	require.NoError(t, err)
	rows := evaluate(run, []Spec{enterpriseCreate, enterpriseCreateMany})
	require.False(t, rows[0].Met, "4.93× is not ≤ 2×")
	require.False(t, rows[1].Met, "3.08× is not ≤ 1.5×")
	require.Equal(t, "4.93 ×", rows[0].show(rows[0].Value))
	for _, r := range rows {
		require.True(t, r.Have, r.Unit)
		require.NotContains(t, r.Context, "?", "every figure of %s's detail is reported: %s", r.Unit, r.Context)
		require.NotContains(t, r.Miss, "?", "every figure of %s's miss is reported: %s", r.Unit, r.Miss)
	}
	require.Contains(t, rows[0].Miss, "marking it ready 5 ms")
	require.Contains(t, rows[1].Context, "156 ms per tenant against 50.5 ms")

	var noted bool
	for _, n := range notes {
		noted = noted || n.bench == "EnterpriseCreate"
	}
	require.True(t, noted, "the report says how the benchmark measures")
	require.Contains(t, targetFigures, enterpriseCreate)
	require.Contains(t, targetFigures, enterpriseCreateMany)
}

// TestUpgradeAndFleetTargets: the figures of issue 13's upgrade and fleet
// benchmarks, read from lines they printed, are judged (the fleet's has no
// target), and every figure their texts quote is one they report.
func TestUpgradeAndFleetTargets(t *testing.T) {
	t.Parallel()
	const lines = "BenchmarkUpgradeToDedicated-2   	       1	3051603444 ns/op	        57.87 floor-ms	       202.4 job-ms	" +
		"        38.68 resolve-connect-ms	        60.00 resolve-provision-ms	        29.27 resolve-register-ms	       255.0 signup-ms	" +
		"         4.407 signup/floor	        16.00 step-cleanup-ms	        19.00 step-copy-ms	         4.000 step-fence-ms	" +
		"         3.000 step-mark-moving-ms	        19.00 step-plan-enterprise-ms	       127.0 step-resolve-ms	" +
		"         4.000 step-switch-ms	         4.000 step-verify-ms	       249.1 upgrade-max-ms	       219.7 upgrade-ms	" +
		"         3.797 upgrade/floor\n" +
		"BenchmarkFleetCreate-2   	       1	         1.559 bound-s	         2.000 cores	       104.0 floor-ms	" +
		"       151.3 ms/tenant	      2052 slowest-ms	        30.00 tenants	         4.538 wall-s	         2.910 wall/bound\n"
	run, err := parse(strings.NewReader(lines), "sample")
	require.NoError(t, err)
	var specs []Spec
	for _, s := range targets {
		if s.Bench == "UpgradeToDedicated" || s.Bench == "FleetCreate" {
			specs = append(specs, s)
		}
	}
	rows := evaluate(run, specs)
	require.Len(t, rows, 2)
	require.False(t, rows[0].Met, "3.8× is not ≤ 2×")
	require.Equal(t, 13, rows[0].Issue)
	require.Empty(t, rows[1].Cmp, "the fleet's figure has no target of its own")
	for _, r := range rows {
		require.True(t, r.Have, r.Unit)
		require.NotContains(t, r.Context, "?", "every figure of %s's detail is reported: %s", r.Unit, r.Context)
		require.NotContains(t, r.Miss, "?", "every figure of %s's miss is reported: %s", r.Unit, r.Miss)
	}
	require.Contains(t, rows[0].Miss, "resolve 127 ms")
	require.Contains(t, rows[0].Miss, "29.3 ms reading the source's fence")
	require.Contains(t, rows[1].Context, "4.54 s against 1.56 s")
	for _, bench := range []string{"UpgradeToDedicated", "FleetCreate"} {
		var noted bool
		for _, n := range notes {
			noted = noted || n.bench == bench
		}
		require.True(t, noted, "the report says how %s measures", bench)
	}
}

// TestThousandTenantsTargets: the many-tenants figures, read from lines
// the benchmark printed, quote only figures it reports, its reference's
// among them.
func TestThousandTenantsTargets(t *testing.T) {
	t.Parallel()
	lines := "BenchmarkThousandTenants/uniform-2         \t       1\t        60.00 budget-conns\t         0.7800 connect-ratio\t        40.00 connect-req/s\t         0 errors\t       374.0 evictions\t        64.00 max-open\t      1084 p50-ms\t      1415 p99-ms\t        60.00 peak-budget-conns\t        58.00 peak-conns\t         6.410 pool-hit-%\t        31.20 req/s\t       368.0 tenants-served\n" +
		"BenchmarkThousandTenants/zipf-2            \t       1\t        60.00 budget-conns\t         1.316 connect-ratio\t        42.60 connect-req/s\t         0 errors\t       335.0 evictions\t        64.00 max-open\t       869.2 p50-ms\t      1412 p99-ms\t        60.00 peak-budget-conns\t        58.00 peak-conns\t        58.74 pool-hit-%\t        56.07 req/s\t       234.0 tenants-served\n"
	run, err := parse(strings.NewReader(lines), "sample")
	require.NoError(t, err)
	var specs []Spec
	for _, s := range targets {
		if strings.HasPrefix(s.Bench, "ThousandTenants/") {
			specs = append(specs, s)
		}
	}
	rows := evaluate(run, specs)
	require.Len(t, rows, 6, "errors, connections and throughput of each distribution")
	for _, r := range rows {
		require.True(t, r.Have, "%s %s", r.Bench, r.Unit)
		require.NotContains(t, r.Context, "?", "every figure of %s %s's detail is reported: %s", r.Bench, r.Unit, r.Context)
		require.NotContains(t, r.Miss, "?", "every figure of %s %s's miss is reported: %s", r.Bench, r.Unit, r.Miss)
		if r.Unit == "req/s" {
			require.Contains(t, r.Context, "the reference in the same run")
		}
	}
}

// TestRouterTargets: the figures of the router's load and latency
// benchmarks, read from a run of them (testdata/router.txt, as go test
// printed it), are all reported, and every figure their texts quote is one
// the benchmarks report.
func TestRouterTargets(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/router.txt")
	require.NoError(t, err)
	defer f.Close()
	run, err := parse(f, "router.txt")
	require.NoError(t, err)
	var specs []Spec
	for _, s := range targets {
		if strings.HasPrefix(s.Bench, "LoadGatewayVsBare/") || strings.HasPrefix(s.Bench, "AddedLatency/") {
			specs = append(specs, s)
		}
	}
	require.Len(t, specs, 8+8+2+2+2+2+4, "issues 2 and 4, 13 (throughput), 7, 13 (p50, p99), added p50, isolation")
	issue13 := 0
	for _, r := range evaluate(run, specs) {
		require.True(t, r.Have, "%s reports %s", r.Bench, r.Unit)
		require.NotContains(t, r.Context, "?", "every figure of %s %s's detail is reported: %s", r.Bench, r.Unit, r.Context)
		require.NotContains(t, r.Miss, "?", "every figure of %s %s's miss is reported: %s", r.Bench, r.Unit, r.Miss)
		if r.Issue == 13 {
			issue13++
		}
	}
	require.Equal(t, 12, issue13, "8 throughput ratios and 4 latency figures against the plain query")

	for _, bench := range []string{"LoadGatewayVsBare", "AddedLatency"} {
		var text string
		for _, n := range notes {
			if n.bench == bench {
				text = n.text
			}
		}
		require.Contains(t, text, "cmd/loadgen", "the report says the client is a process of its own")
		require.Contains(t, text, "plain", "the report says what the plain handler is")
	}
}
