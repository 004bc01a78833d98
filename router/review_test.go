package router

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
)

// TestOddInputsNever5xx covers inputs that once reached Postgres unchecked.
func TestOddInputsNever5xx(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "odd", tenancy.PlanFree)
	id := uuid.NewString()
	for _, path := range []string{"/api/agents/urn:uuid:" + id, "/api/agents/{" + id + "}", "/api/agents/" + strings.ToUpper(id)} {
		for _, m := range []string{"GET", "PATCH", "DELETE"} {
			r := b.do(t, m, path, o.token, `{"name":"x"}`)
			require.Less(t, r.status, 500, "%s %s: %s", m, path, r.text)
		}
	}
	r := b.do(t, "POST", "/api/auth/login", "", `{"email":"a\u0000@b.c","password":"whatever-long"}`)
	require.Equal(t, 400, r.status, r.text)
	r = b.do(t, "POST", "/api/auth/login", "", `{"email":"`+strings.Repeat("e", 400)+`@b.c","password":"whatever-long"}`)
	require.Equal(t, 400, r.status, r.text)

	r = b.do(t, "FOO", "/api/agents", o.token, nil)
	require.Equal(t, 400, r.status, r.text)
	require.Equal(t, "invalid_request", r.errorCode())
	require.Equal(t, r.header.Get("X-Request-Id"), r.json["requestId"])
	require.NotEmpty(t, r.json["requestId"])
}

// TestMetricLabelsSurviveKeepAlive: label values taken from a request are
// copied, so buffers fasthttp reuses on a keep-alive connection cannot
// corrupt them (which once made /metrics fail).
func TestMetricLabelsSurviveKeepAlive(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	b := setup(t, setupOptions{metrics: NewMetrics(reg, 10)})
	o := b.org(t, "labels", tenancy.PlanFree)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go b.app.Listener(ln)
	t.Cleanup(func() { _ = b.app.Shutdown() })
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1}}
	defer client.CloseIdleConnections()
	for i := range 12 {
		method := []string{"DELETE", "GET", "PATCH", "PUT"}[i%4]
		req, _ := http.NewRequest(method, fmt.Sprintf("http://%s/api/agents/%s", ln.Addr(), uuid.NewString()), strings.NewReader(`{"name":"x"}`))
		req.Header.Set("Authorization", "Bearer "+o.token)
		res, err := client.Do(req)
		require.NoError(t, err)
		res.Body.Close()
	}
	families, err := reg.Gather()
	require.NoError(t, err, "the registry gathers without duplicate series")
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" {
					require.Contains(t, []string{"DELETE", "GET", "PATCH", "PUT", "POST"}, l.GetValue())
				}
			}
		}
	}
}

// TestDirtyDatabaseRefused: a tenant whose database a failed migration
// left dirty is refused with 503, never served against the wrong schema.
func TestDirtyDatabaseRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "dirty", tenancy.PlanEnterprise)
	conn := tenancyConn(t, b)
	_, err := conn.Exec(testCtx(t), `UPDATE databases SET dirty = true
		WHERE id = (SELECT database_id FROM placements WHERE organization_id = $1)`, o.ID)
	require.NoError(t, err)
	r := b.do(t, "GET", "/api/agents", o.token, nil)
	require.Equal(t, 503, r.status, r.text)
	require.Equal(t, "tenant_unavailable", r.errorCode())
	require.NotEmpty(t, r.header.Get("Retry-After"))
}

// TestBusyTenantDoesNotTripBreaker: requests that time out waiting for a
// busy shared pool get 503, and the shared database's breaker stays closed
// for everyone else.
func TestBusyTenantDoesNotTripBreaker(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{pools: poolcache.Config{SharedConns: 1}, timeout: 300 * time.Millisecond})
	noisy := b.org(t, "noisy", tenancy.PlanFree)
	quiet := b.org(t, "quiet", tenancy.PlanFree)
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", quiet.token, nil).status)

	tn, err := b.store.Tenant(testCtx(t), noisy.ID)
	require.NoError(t, err)
	l, err := b.pools.Lease(testCtx(t), tn.Placement.DatabaseID)
	require.NoError(t, err)
	held, err := l.Pool().Acquire(testCtx(t)) // the pool's only connection
	require.NoError(t, err)
	for range 5 {
		r := b.do(t, "GET", "/api/agents", noisy.token, nil)
		require.Equal(t, 503, r.status, r.text)
		require.Equal(t, "tenant_unavailable", r.errorCode())
	}
	held.Release()
	l.Release(nil)
	r := b.do(t, "GET", "/api/agents", quiet.token, nil)
	require.Equal(t, 200, r.status, "the breaker did not open: %s", r.text)
	for _, p := range b.pools.Stats().Pools {
		require.False(t, p.BreakerOpen)
	}
}

// TestStaleSchemaRefused: a database below the schema this gateway's
// queries need (not yet migrated after an upgrade) answers 503, not 500.
func TestStaleSchemaRefused(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "stale", tenancy.PlanEnterprise)
	_, err := tenancyConn(t, b).Exec(testCtx(t), `UPDATE databases SET schema_version = 1
		WHERE id = (SELECT database_id FROM placements WHERE organization_id = $1)`, o.ID)
	require.NoError(t, err)
	b.refresh(t, o.ID)
	r := b.do(t, "GET", "/api/tasks", o.token, nil)
	require.Equal(t, 503, r.status, r.text)
	require.Equal(t, "tenant_unavailable", r.errorCode())
}
