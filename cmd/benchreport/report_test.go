package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const sample = `load: 0.52 0.40 0.31 1/200 999
command: go test -run '^$' -bench . -benchtime 1s ./tenancy/...
goos: linux
goarch: amd64
pkg: github.com/tenantgate/tenantgate/tenancy/identity
cpu: Intel(R) Xeon(R) Processor
BenchmarkKeyVerify/cached-2         	 2455906	       481.3 ns/op	      48 B/op	       1 allocs/op
BenchmarkKeyVerify/miss-2           	  565521	      2104 ns/op
PASS
load: 1.90 0.80 0.41 1/200 999
command: go test -run '^$' -bench 'LoadGatewayVsBare|ThousandTenants' -benchtime 1x ./router/
pkg: github.com/tenantgate/tenantgate/router
BenchmarkLoadGatewayVsBare/shared-list-2 	       1	         0 ns/op	      6000 bare-req/s	         0.8300 jwt-ratio	      4980 jwt-req/s	         0.7500 key-ratio	      4500 key-req/s
--- BENCH: BenchmarkLoadGatewayVsBare/shared-list-2
    load_bench_test.go:80: a log line, not a failure
BenchmarkThousandTenants/uniform-2 	       1	        60.00 budget-conns	         0 errors	        60.00 peak-conns	       229.0 req/s
BenchmarkThousandTenants/zipf-2    	       1	        60.00 budget-conns	         2.000 errors	        61.00 peak-conns	       449.0 req/s
--- FAIL: BenchmarkNoisyNeighbour/noisy-pro
    latency_bench_test.go:120: http://127.0.0.1:1/api/agents: 3 failed requests
FAIL	github.com/tenantgate/tenantgate/router	99.1s
`

func parsed(t *testing.T) *Run {
	t.Helper()
	run, err := parse(strings.NewReader(sample), "sample")
	require.NoError(t, err)
	return run
}

func TestParse(t *testing.T) {
	t.Parallel()
	run := parsed(t)
	require.Equal(t, []string{"KeyVerify/cached", "KeyVerify/miss", "LoadGatewayVsBare/shared-list",
		"ThousandTenants/uniform", "ThousandTenants/zipf"}, run.Order, "names without Benchmark and -GOMAXPROCS")
	require.Len(t, run.Commands, 2)
	require.Equal(t, "go test -run '^$' -bench . -benchtime 1s ./tenancy/...", run.Commands[0])
	require.Equal(t, []string{"0.52 0.40 0.31 1/200 999", "1.90 0.80 0.41 1/200 999"}, run.Loads)

	key := run.Results["KeyVerify/cached"]
	require.Equal(t, "github.com/tenantgate/tenantgate/tenancy/identity", key.Pkg)
	v, ok := key.Value("ns/op")
	require.True(t, ok, "ns/op is kept as reported, not tidied to sec/op")
	require.InDelta(t, 481.3, v, 1e-9)
	peak, ok := run.Results["ThousandTenants/zipf"].Value("peak-conns")
	require.True(t, ok, "a unit containing \"ns\" is not mistaken for nanoseconds")
	require.InDelta(t, 61, peak, 1e-9)

	require.Equal(t, []string{
		"--- FAIL: BenchmarkNoisyNeighbour/noisy-pro",
		"    latency_bench_test.go:120: http://127.0.0.1:1/api/agents: 3 failed requests",
		"FAIL\tgithub.com/tenantgate/tenantgate/router\t99.1s",
	}, run.Failures, "failures with their messages; benchmark logs are not failures")
	require.Contains(t, run.Raw, "BenchmarkKeyVerify/cached-2")
}

func TestParseAveragesRepeats(t *testing.T) {
	t.Parallel()
	run, err := parse(strings.NewReader("BenchmarkX-2 10 100 ns/op 1 ratio\nBenchmarkX-2 10 300 ns/op 2 ratio\n"), "repeats")
	require.NoError(t, err)
	v, _ := run.Results["X"].Value("ns/op")
	require.InDelta(t, 200, v, 1e-9)
	r, _ := run.Results["X"].Value("ratio")
	require.InDelta(t, 1.5, r, 1e-9)
}

func TestEvaluate(t *testing.T) {
	t.Parallel()
	specs := []Spec{
		{Bench: "LoadGatewayVsBare/shared-list", Unit: "jwt-ratio", Cmp: "≥", Target: 0.8, Detail: "{jwt-req/s} vs {bare-req/s} req/s"},
		{Bench: "LoadGatewayVsBare/shared-list", Unit: "key-ratio", Cmp: "≥", Target: 0.8, Miss: "key path at {key-req/s} req/s"},
		{Bench: "KeyVerify/cached", Unit: "ns/op", Cmp: "≤", Target: 5000, Scale: 0.001, Suffix: "µs"},
		{Bench: "ThousandTenants/uniform", Unit: "errors", Cmp: "=", Target: 0},
		{Bench: "ThousandTenants/zipf", Unit: "errors", Cmp: "=", Target: 0},
		{Bench: "ThousandTenants/uniform", Unit: "peak-conns", Cmp: "≤", Ref: "budget-conns"},
		{Bench: "ThousandTenants/zipf", Unit: "peak-conns", Cmp: "≤", Ref: "budget-conns"},
		{Bench: "ThousandTenants/zipf", Unit: "peak-conns", Cmp: "≤", Ref: "no-such-unit"},
		{Bench: "NoisyNeighbour/noisy-pro", Unit: "p99-ratio", Cmp: "≤", Target: 1.1},
		{Bench: "ThousandTenants/uniform", Unit: "req/s", Suffix: "req/s"}, // no target
	}
	rows := evaluate(parsed(t), specs)
	met := []bool{true, false, true, true, false, true, false, false, false, true}
	for i, r := range rows {
		require.Equal(t, met[i], r.Met, "%s %s", r.Bench, r.Unit)
	}
	require.Equal(t, "4980 vs 6000 req/s", rows[0].Context)
	require.Equal(t, "0.48 µs", rows[2].show(rows[2].Value))
	require.Equal(t, "≤ 60 (budget-conns)", rows[5].target(), "a bound read from the run itself")
	require.Equal(t, "not measured", rows[8].measured())
	require.Equal(t, "**not measured**", rows[8].verdict())
	require.Equal(t, "", rows[9].verdict(), "a figure without a target has no verdict")
	m, total := tally(rows)
	require.Equal(t, 4, m)
	require.Equal(t, 9, total)
}

func TestCompare(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		v     float64
		cmp   string
		bound float64
		want  bool
	}{
		{0.8, "≥", 0.8, true}, {0.79, "≥", 0.8, false},
		{5, "≤", 5, true}, {5.01, "≤", 5, false},
		{2.99, "<", 3, true}, {3, "<", 3, false},
		{0, "=", 0, true}, {1, "=", 0, false},
		{42, "", 0, true},
	} {
		require.Equal(t, c.want, compare(c.v, c.cmp, c.bound), "%v %s %v", c.v, c.cmp, c.bound)
	}
}

func TestNum(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]string{60: "60", 5727.4: "5727", 13.25: "13.2", 0.834: "0.83", 1.5: "1.50",
		0.8: "0.80", 0.0123: "0.01", 0.00123: "0.0012"} {
		require.Equal(t, want, num(v), "%v", v)
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	run := parsed(t)
	run.Machine = Machine{CPU: "Test CPU", Cores: 2, Memory: "1.0 GiB", Go: "go1.26.8", Postgres: "15", Redis: "7"}
	specs := []Spec{
		{Bench: "LoadGatewayVsBare/shared-list", Unit: "key-ratio", Label: "key ratio", Issue: 3, Cmp: "≥", Target: 0.8,
			Miss: "the key path ran at {key-req/s} req/s."},
		{Bench: "ThousandTenants/zipf", Unit: "errors", Label: "zipf errors", Issue: 7, Cmp: "=", Target: 0},
		{Bench: "NoisyNeighbour/noisy-pro", Unit: "p99-ratio", Label: "noisy", Issue: 7, Cmp: "≤", Target: 1.1},
		{Bench: "KeyVerify/cached", Unit: "ns/op", Label: "key verify", Issue: 3, Cmp: "≤", Target: 5000, Scale: 0.001, Suffix: "µs"},
	}
	var out bytes.Buffer
	render(&out, run, evaluate(run, specs))
	md := out.String()
	require.Contains(t, md, "**1 of 4 targets met.**")
	require.Contains(t, md, "| key verify | `KeyVerify/cached` | 0.48 µs | ≤ 5 µs | #3 | met |")
	require.Contains(t, md, "| key ratio | `LoadGatewayVsBare/shared-list` | 0.75 | ≥ 0.80 | #3 | **missed** |")
	require.Contains(t, md, "the key path ran at 4500 req/s.", "the miss explained, with the run's own figures")
	require.Contains(t, md, "zipf errors** (`ThousandTenants/zipf`): 2 against = 0. No cause is recorded",
		"a miss without a recorded cause says so")
	require.Contains(t, md, "The benchmark did not report it")
	require.Contains(t, md, "## Failures")
	require.Contains(t, md, "go test -run '^$' -bench . -benchtime 1s ./tenancy/...")
	require.Contains(t, md, "just before each: 0.52 0.40 0.31; 1.90 0.80 0.41.")
	require.Contains(t, md, "Test CPU, 2 cores")
}

func TestRunWritesReportAndFailsOnFailures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "bench.out"), filepath.Join(dir, "BENCHMARKS.md")
	require.NoError(t, os.WriteFile(in, []byte(sample), 0o644))
	unreachable := func(key string) string {
		return map[string]string{
			"TENANTGATE_TEST_DATABASE_URL": "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1",
			"TENANTGATE_TEST_REDIS_URL":    "redis://127.0.0.1:1/0",
		}[key]
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-in", in, "-out", out}, unreachable, &stdout, &stderr)
	require.ErrorContains(t, err, "failure lines", "a run with failures exits non-zero")
	md, rerr := os.ReadFile(out)
	require.NoError(t, rerr, "the report is written all the same")
	require.Contains(t, string(md), "| PostgreSQL | unknown (")

	clean := strings.Split(sample, "--- FAIL")[0]
	require.NoError(t, os.WriteFile(in, []byte(clean), 0o644))
	require.NoError(t, run(context.Background(), []string{"-in", in, "-out", out}, unreachable, &stdout, &stderr))

	require.NoError(t, os.WriteFile(in, []byte("no results here\n"), 0o644))
	require.ErrorContains(t, run(context.Background(), []string{"-in", in, "-out", out}, unreachable, &stdout, &stderr),
		"no benchmark results")
}
