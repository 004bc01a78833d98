package router

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestRefusalsAreLoggedSparingly: a client flooding past its rate limit
// gets a 429 for every refused request, each counted in the metrics, but
// the access log carries at most refusalLogsPerSecond lines of them a
// second; answered requests are all logged.
func TestRefusalsAreLoggedSparingly(t *testing.T) {
	t.Parallel()
	log, buf := tenancytest.NewLog()
	plans := contractPlans()
	plans[tenancy.PlanFree] = tenancy.Limits{MaxAgents: 5, MaxAgentMinutes: 1000, RPS: 2}
	b := setup(t, setupOptions{log: log, plans: plans})
	o := b.org(t, "flooder", tenancy.PlanFree)
	refused, served := 0, 0
	start := time.Now()
	for range 300 {
		switch r := b.do(t, "GET", "/api/agents", o.token, nil); r.status {
		case 429:
			refused++
		case 200:
			served++
		default:
			t.Fatalf("unexpected %d %s", r.status, r.text)
		}
	}
	elapsed := time.Since(start)
	logged429, logged200 := 0, 0
	for _, line := range strings.Split(buf.String(), "\n") {
		switch {
		case strings.Contains(line, "msg=request") && strings.Contains(line, "status=429"):
			logged429++
		case strings.Contains(line, "msg=request") && strings.Contains(line, "route=/api/agents") && strings.Contains(line, "status=200"):
			logged200++
		}
	}
	// Upper bounds that hold however slowly the flood ran (a slower run only
	// raises them): the tenant's bucket grants its burst (= RPS) and RPS a
	// second, the log limiter refusalLogsPerSecond and as many a second.
	t.Logf("%d served, %d refused, %d refusals logged in %v", served, refused, logged429, elapsed)
	require.LessOrEqual(t, served, 2+int(2*elapsed.Seconds())+1, "the flood is held to the limit")
	require.Positive(t, refused)
	require.Positive(t, logged429, "refusals are still logged")
	require.LessOrEqual(t, logged429, refusalLogsPerSecond+int(refusalLogsPerSecond*elapsed.Seconds())+1,
		"but no more of them than the log's own limit")
	require.Equal(t, served, logged200, "every answered request is logged")
}
