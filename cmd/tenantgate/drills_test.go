package main

// Failure drills: a dependency fails for real (a PostgreSQL server is
// stopped, Redis is killed, the provisioner gets SIGKILL) while the drill
// drives traffic, and each checks what the contract promises in that
// failure and after the recovery.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestDrillDedicatedServerDown: the PostgreSQL server holding one
// enterprise tenant's database stops. That tenant gets 503
// tenant_unavailable with Retry-After within 2 s, a shared tenant driven
// through the whole drill never sees an error, and once the server is back
// the tenant is served again by the same gateway.
func TestDrillDedicatedServerDown(t *testing.T) {
	env(t)
	pg := tenancytest.NewCluster(t)
	t.Setenv("TENANTGATE_JWT_SECRET", "drill-secret-drill-secret-drill-secret")
	mustTG(t, "init")
	mustTG(t, "servers", "add", "private", "--dsn", pg.URL, "--capacity", "5")
	stopProvisioner := background(t, "provisioner")
	mustTG(t, "tenants", "create", "--slug", "solo", "--name", "Solo", "--plan", "enterprise",
		"--owner-email", "o@solo.test", "--owner-password", "solo-password", "--wait")
	stopProvisioner()
	mustTG(t, "tenants", "create", "--slug", "crowd", "--name", "Crowd", "--plan", "pro",
		"--owner-email", "o@crowd.test", "--owner-password", "crowd-password")
	var servers []struct {
		Name      string
		Databases int
	}
	require.NoError(t, json.Unmarshal([]byte(mustTG(t, "servers", "list", "--output", "json")), &servers))
	require.Equal(t, []struct {
		Name      string
		Databases int
	}{{"private", 1}}, servers, "the dedicated database is on the private server")

	base, _ := serveHTTP(t)
	solo := login(t, base, "o@solo.test", "solo-password")
	crowd := login(t, base, "o@crowd.test", "crowd-password")
	require.Equal(t, 201, do(base, "POST", "/api/agents", solo, `{"name":"before"}`).status)
	require.Equal(t, 200, do(base, "GET", "/api/agents", solo, "").status, "the dedicated pool is open and warm")

	shared := driveTraffic(t, base, crowd, 10*time.Millisecond)
	pg.Stop()
	stopped := time.Now()
	// The very first answer after the stop is the 503: no 500, no hang.
	first := waitForStatus(t, base, solo, 503, 5*time.Second, "the tenant of the stopped server gets 503")
	toFirst503 := time.Since(stopped)
	t.Logf("stop → first 503: %v", toFirst503)
	require.Less(t, toFirst503, 2*time.Second, "503 within 2 s of the stop")
	require.Equal(t, "tenant_unavailable", first.code)
	require.NotEmpty(t, first.retryAfter, "503 carries Retry-After")
	for range 5 {
		r := do(base, "GET", "/api/agents", solo, "")
		require.Equal(t, 503, r.status, r.body)
		require.Equal(t, "tenant_unavailable", r.code)
		require.NotEmpty(t, r.retryAfter)
		require.Less(t, r.took, 2*time.Second, "a refusal is fast")
	}

	pg.Start()
	restarted := time.Now()
	// Until the breaker lets a probe through, the tenant is refused the
	// same way; then it is served, by the same gateway.
	waitForStatus(t, base, solo, 200, 20*time.Second, "the tenant is served again after the restart", 503)
	t.Logf("restart → first 200: %v", time.Since(restarted))
	r := do(base, "GET", "/api/agents", solo, "")
	require.Equal(t, 200, r.status)
	require.Contains(t, r.body, `"before"`, "its data is there")

	sent, failed, examples := shared.stop()
	t.Logf("shared tenant: %d requests during the drill, %d not 2xx", sent, failed)
	require.Greater(t, sent, 50, "the shared tenant was driven through the drill")
	require.Zero(t, failed, "the shared tenant never noticed; first failures: %v", examples)
}

// mustTG runs a tenantgate command that must succeed and returns its output.
func mustTG(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := tg(t, args...)
	require.NoError(t, err, "tenantgate %s: %s%s", strings.Join(args, " "), out, errOut)
	return out
}

// serveHTTP runs `tenantgate serve` on free ports until the test ends and
// returns the public and ops base URLs once it is healthy.
func serveHTTP(t *testing.T, extra ...string) (base, ops string) {
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	stop := background(t, append([]string{"serve", "--http-addr", httpAddr, "--admin-addr", adminAddr}, extra...)...)
	t.Cleanup(stop)
	waitHealthy(t, "http://"+adminAddr+"/healthz")
	return "http://" + httpAddr, "http://" + adminAddr
}

// drillClient bounds every drill request: a hang is a failure, not a wait.
var drillClient = &http.Client{Timeout: 15 * time.Second}

// answer is what a drill request got.
type answer struct {
	status     int
	code       string // error.code of an error body
	retryAfter string
	body       string
	took       time.Duration
	err        error // transport error; status is 0
}

func (a answer) String() string {
	if a.err != nil {
		return a.err.Error()
	}
	return fmt.Sprintf("%d %s", a.status, a.body)
}

// do makes one request; safe from any goroutine (it never fails the test).
func do(base, method, path, token, body string) answer {
	start := time.Now()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		return answer{err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := drillClient.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), body: string(raw), took: time.Since(start)}
	var e struct{ Error struct{ Code string } }
	if json.Unmarshal(raw, &e) == nil {
		a.code = e.Error.Code
	}
	return a
}

// waitForStatus polls GET /api/agents as token until it answers status,
// and returns that answer. Answers before it must have one of the statuses
// in meanwhile; any other answer, or none within timeout, fails the test.
func waitForStatus(t *testing.T, base, token string, status int, timeout time.Duration, what string, meanwhile ...int) answer {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last answer
	for time.Now().Before(deadline) {
		last = do(base, "GET", "/api/agents", token, "")
		if last.status == status {
			return last
		}
		if !slices.Contains(meanwhile, last.status) {
			t.Fatalf("%s: waiting for %d, got %v", what, status, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: no %d within %v; last answer: %v", what, status, timeout, last)
	return last
}

// traffic is requests driven in the background by driveTraffic.
type traffic struct {
	cancel   context.CancelFunc
	done     chan struct{}
	n        atomic.Int64
	mu       sync.Mutex
	failed   int
	failures []string // the first few
}

// driveTraffic sends GET /api/agents as token every interval until stop
// (or the test's end), recording every answer that is not a 2xx.
func driveTraffic(t *testing.T, base, token string, interval time.Duration) *traffic {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() { tr.stop() })
	go func() {
		defer close(tr.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			a := do(base, "GET", "/api/agents", token, "")
			tr.n.Add(1)
			if a.err != nil || a.status < 200 || a.status > 299 {
				tr.mu.Lock()
				tr.failed++
				if len(tr.failures) < 10 {
					tr.failures = append(tr.failures, a.String())
				}
				tr.mu.Unlock()
			}
		}
	}()
	return tr
}

// waitSent waits until the traffic has sent n more requests than when it
// was called, so that it spans whatever happens meanwhile.
func (tr *traffic) waitSent(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	want := tr.n.Load() + int64(n)
	deadline := time.Now().Add(timeout)
	for tr.n.Load() < want {
		require.True(t, time.Now().Before(deadline), "the traffic did not send %d requests within %v", n, timeout)
		time.Sleep(10 * time.Millisecond)
	}
}

// stop ends the traffic and returns how many requests it sent, how many
// of them did not get a 2xx, and the first few of those answers.
func (tr *traffic) stop() (sent, failed int, examples []string) {
	tr.cancel()
	<-tr.done
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return int(tr.n.Load()), tr.failed, tr.failures
}

// TestDrillCatalogDown: the catalog's server first hangs, then stops.
// Tenants the gateway has already cached keep being served, reads and
// writes; logins fail with 503 tenant_unavailable within the request
// timeout, and the ops listener reports the catalog as failing. Once the
// catalog is back, logins work again.
func TestDrillCatalogDown(t *testing.T) {
	e := env(t)
	pg := tenancytest.NewCluster(t)
	// The catalog on a server of its own, so it can be stopped; tenant data
	// stays on the machine's server.
	t.Setenv("TENANTGATE_DATABASE_URL", pg.DatabaseURL(e.Prefix+"catalog"))
	t.Setenv("TENANTGATE_JWT_SECRET", "drill-secret-drill-secret-drill-secret")
	const requestTimeout = 3 * time.Second
	t.Setenv("TENANTGATE_REQUEST_TIMEOUT", requestTimeout.String())
	ensureAppRole(t, e.ServerURL, e.AppRole)
	mustTG(t, "init")
	mustTG(t, "tenants", "create", "--slug", "steady", "--name", "Steady", "--plan", "pro",
		"--owner-email", "o@steady.test", "--owner-password", "steady-password")
	base, ops := serveHTTP(t)
	token := login(t, base, "o@steady.test", "steady-password")
	require.Equal(t, 201, do(base, "POST", "/api/agents", token, `{"name":"cached"}`).status)
	require.Equal(t, 200, do(base, "GET", "/api/agents", token, "").status, "the tenant is cached")
	const credentials = `{"email":"o@steady.test","password":"steady-password"}`
	traffic := driveTraffic(t, base, token, 10*time.Millisecond)

	// The catalog hangs: a login waits for it no longer than the request.
	pg.Freeze()
	t.Cleanup(pg.Thaw) // before the gateway's shutdown, should the drill fail here
	r := do(base, "POST", "/api/auth/login", "", credentials)
	t.Logf("login with the catalog hanging: %d %s in %v", r.status, r.code, r.took)
	require.Equal(t, 503, r.status, "login with a hanging catalog: %v", r)
	require.Equal(t, "tenant_unavailable", r.code)
	require.NotEmpty(t, r.retryAfter)
	require.Less(t, r.took, requestTimeout+time.Second, "no hang beyond the request timeout")
	r = do(base, "POST", "/api/agents", token, `{"name":"written-while-catalog-hangs"}`)
	require.Equal(t, 201, r.status, "a cached tenant still writes: %v", r)
	pg.Thaw()

	// The catalog is down: logins are refused at once.
	pg.Stop()
	r = do(base, "POST", "/api/agents", token, `{"name":"written-while-catalog-down"}`)
	require.Equal(t, 201, r.status, "a cached tenant still writes: %v", r)
	for range 3 {
		r := do(base, "POST", "/api/auth/login", "", credentials)
		require.Equal(t, 503, r.status, "login without a catalog: %v", r)
		require.Equal(t, "tenant_unavailable", r.code)
		require.NotEmpty(t, r.retryAfter)
		require.Less(t, r.took, time.Second, "a refused catalog connection is answered at once")
	}
	ready := do(ops, "GET", "/readyz", "", "")
	require.Equal(t, 503, ready.status, ready.body)
	require.Contains(t, ready.body, `"failing":["catalog"]`)
	traffic.waitSent(t, 100, 10*time.Second)
	sent, failed, examples := traffic.stop()
	t.Logf("cached tenant through the catalog's outage: %d requests, %d not 2xx", sent, failed)
	require.Zero(t, failed, "the cached tenant is served; first failures: %v", examples)

	pg.Start()
	restarted := time.Now()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := do(base, "POST", "/api/auth/login", "", credentials)
		if r.status == 200 {
			break
		}
		require.Equal(t, 503, r.status, "until the catalog answers, logins get 503: %v", r)
		require.True(t, time.Now().Before(deadline), "logins did not recover within 20 s: %v", r)
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("catalog restart → first login: %v", time.Since(restarted))
	require.Equal(t, 200, do(ops, "GET", "/readyz", "", "").status)
	r = do(base, "GET", "/api/agents", token, "")
	require.Equal(t, 200, r.status)
	require.Contains(t, r.body, "written-while-catalog-hangs")
	require.Contains(t, r.body, "written-while-catalog-down")
}

// ensureAppRole creates the application role on a server: init creates it
// only on the catalog's server.
func ensureAppRole(t *testing.T, serverURL, role string) {
	conn := tenancytest.Connect(t, serverURL)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, schema.EnsureAppRole(ctx, conn, role, ""))
}
