package router

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

// TestOrganizationUsage: a tenant's requests, database time, rows and
// tokens are metered and shown to its owners and admins, per day or hour;
// another tenant's usage is not in its figures; members get 403.
func TestOrganizationUsage(t *testing.T) {
	t.Parallel()
	b := setup(t)
	busy := b.org(t, "metered", tenancy.PlanPro)
	idle := b.org(t, "unmetered", tenancy.PlanPro)
	for i := range 5 {
		b.create(t, busy.token, "/api/agents", map[string]string{"name": "a" + string(rune('0'+i))})
	}
	task := b.create(t, busy.token, "/api/tasks", map[string]any{"title": "t"})
	require.Equal(t, 200, b.do(t, "POST", "/api/tasks/"+task["id"].(string)+"/start", busy.token, nil).status)
	require.Equal(t, 200, b.do(t, "POST", "/api/tasks/"+task["id"].(string)+"/complete", busy.token,
		map[string]any{"usage": map[string]int{"inputTokens": 70, "outputTokens": 30}}).status)
	require.NoError(t, b.meter.Flush(testCtx(t)))

	total := func(token, granularity string) map[string]float64 {
		r := b.do(t, "GET", "/api/organization/usage?granularity="+granularity, token, nil)
		require.Equal(t, 200, r.status, r.text)
		sum := map[string]float64{}
		for _, d := range r.json["data"].([]any) {
			for k, v := range d.(map[string]any) {
				if n, ok := v.(float64); ok {
					sum[k] += n
				}
			}
		}
		return sum
	}
	for _, g := range []string{"day", "hour"} {
		got := total(busy.token, g)
		require.GreaterOrEqual(t, got["requests"], float64(8), g)
		require.Positive(t, got["dbTimeMs"], g)
		require.GreaterOrEqual(t, got["rowsWritten"], float64(5), g)
		require.Positive(t, got["bytesSent"], g)
		require.Equal(t, float64(100), got["tokens"], g)
	}
	other := total(idle.token, "day")
	require.Less(t, other["requests"], float64(5), "only its own requests: %v", other)
	require.Zero(t, other["tokens"])

	member := b.member(t, busy, "member")
	require.Equal(t, 403, b.do(t, "GET", "/api/organization/usage", member, nil).status)
	require.Equal(t, 400, b.do(t, "GET", "/api/organization/usage?granularity=minute", busy.token, nil).status)
	require.Equal(t, 400, b.do(t, "GET", "/api/organization/usage?from=yesterday", busy.token, nil).status)
	require.Equal(t, 400, b.do(t, "GET", "/api/organization/usage?from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", busy.token, nil).status)
}
