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
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
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
	stopProvisioner := sync.OnceFunc(background(t, "provisioner"))
	t.Cleanup(stopProvisioner)
	mustTG(t, "tenants", "create", "--slug", "solo", "--name", "Solo", "--plan", "enterprise",
		"--owner-email", "o@solo.test", "--owner-password", "solo-password", "--wait")
	stopProvisioner()
	mustTG(t, "tenants", "create", "--slug", "crowd", "--name", "Crowd", "--plan", "pro",
		"--owner-email", "o@crowd.test", "--owner-password", "crowd-password")
	type serverRow struct {
		Name      string
		Databases int
	}
	var servers []serverRow
	require.NoError(t, json.Unmarshal([]byte(mustTG(t, "servers", "list", "--output", "json")), &servers))
	require.Equal(t, []serverRow{{"private", 1}}, servers, "the dedicated database is on the private server")

	base, _ := serveHTTP(t)
	solo := login(t, base, "o@solo.test", "solo-password")
	crowd := login(t, base, "o@crowd.test", "crowd-password")
	require.Equal(t, 201, do(base, "POST", "/api/agents", solo, `{"name":"before"}`).status)
	require.Equal(t, 200, do(base, "GET", "/api/agents", solo, "").status, "the dedicated pool is open and warm")

	shared := driveTraffic(t, base, crowd, 10*time.Millisecond)
	pg.Stop()
	stopped := time.Now()
	// The very first answer after the stop is the 503: no 500, no hang.
	// (No meanwhile statuses: the first answer must be the 503.)
	first := waitForStatus(t, base, solo, 503, 5*time.Second, "the tenant of the stopped server gets 503")
	t.Logf("stop → first 503: %v", time.Since(stopped))
	requireRefusal(t, first, 503, "tenant_unavailable")
	// Refusals, not hangs: a request left hanging would end in the
	// client's own timeout, an error requireRefusal rejects. How fast they
	// are is not asserted (a loaded machine decides that); that an open
	// breaker tries no connection is poolcache's TestBreakerOpensForOneDatabase.
	for range 5 {
		requireRefusal(t, do(base, "GET", "/api/agents", solo, ""), 503, "tenant_unavailable")
	}
	// The shared tenant's traffic spans the outage.
	shared.waitSent(t, 3, time.Minute)

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
	header     http.Header
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
	a := answer{status: res.StatusCode, retryAfter: res.Header.Get("Retry-After"), header: res.Header, body: string(raw), took: time.Since(start)}
	var e struct{ Error struct{ Code string } }
	if json.Unmarshal(raw, &e) == nil {
		a.code = e.Error.Code
	}
	return a
}

// waitForStatus polls GET /api/agents as token until it answers status
// (see waitForAnswer).
func waitForStatus(t *testing.T, base, token string, status int, timeout time.Duration, what string, meanwhile ...int) answer {
	t.Helper()
	return waitForAnswer(t, func() answer { return do(base, "GET", "/api/agents", token, "") }, status, timeout, what, meanwhile...)
}

// waitForAnswer makes request until it answers status, and returns that
// answer. Answers before it must have one of the statuses in meanwhile;
// any other answer, or none within timeout, fails the test.
func waitForAnswer(t *testing.T, request func() answer, status int, timeout time.Duration, what string, meanwhile ...int) answer {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last answer
	for time.Now().Before(deadline) {
		last = request()
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

// requireRefusal checks an answer is the contract's error: status, code,
// and for 429 and 503 a Retry-After of whole seconds, at least 1.
func requireRefusal(t *testing.T, a answer, status int, code string) {
	t.Helper()
	require.Equal(t, status, a.status, "%v", a)
	require.Equal(t, code, a.code, "%v", a)
	if status == 429 || status == 503 {
		seconds, err := strconv.Atoi(a.retryAfter)
		require.NoError(t, err, "Retry-After %q", a.retryAfter)
		require.Positive(t, seconds, "Retry-After")
	}
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
	// Placements expire during the outage: the expired one is served.
	t.Setenv("TENANTGATE_PLACEMENT_TTL", "1s")
	ensureAppRole(t, e.ServerURL, e.AppRole)
	mustTG(t, "init")
	mustTG(t, "tenants", "create", "--slug", "steady", "--name", "Steady", "--plan", "pro",
		"--owner-email", "o@steady.test", "--owner-password", "steady-password")
	base, ops := serveHTTP(t)
	const credentials = `{"email":"o@steady.test","password":"steady-password"}`
	// Before the outage a login works; on a loaded machine the first may
	// outlast the drill's short request timeout (503), so it is retried.
	first := waitForAnswer(t, func() answer { return do(base, "POST", "/api/auth/login", "", credentials) },
		200, time.Minute, "a login before the outage", 503)
	var out struct{ Token string }
	require.NoError(t, json.Unmarshal([]byte(first.body), &out))
	token := out.Token
	require.Equal(t, 201, do(base, "POST", "/api/agents", token, `{"name":"cached"}`).status)
	require.Equal(t, 200, do(base, "GET", "/api/agents", token, "").status, "the tenant is cached")
	traffic := driveTraffic(t, base, token, 10*time.Millisecond)

	// The catalog hangs: a login waits for it no longer than the request.
	pg.Freeze()
	t.Cleanup(pg.Thaw) // before the gateway's shutdown, should the drill fail here
	r := do(base, "POST", "/api/auth/login", "", credentials)
	t.Logf("login with the catalog hanging: %d %s in %v", r.status, r.code, r.took)
	// An answer at all, before the client's own 15 s timeout, shows the
	// request's deadline (3 s) ended the wait; its exact length is the
	// machine's.
	requireRefusal(t, r, 503, "tenant_unavailable")
	r = do(base, "POST", "/api/agents", token, `{"name":"written-while-catalog-hangs"}`)
	require.Equal(t, 201, r.status, "a cached tenant still writes: %v", r)
	pg.Thaw()

	// The catalog is down: logins are refused at once.
	pg.Stop()
	r = do(base, "POST", "/api/agents", token, `{"name":"written-while-catalog-down"}`)
	require.Equal(t, 201, r.status, "a cached tenant still writes: %v", r)
	for range 3 {
		requireRefusal(t, do(base, "POST", "/api/auth/login", "", credentials), 503, "tenant_unavailable")
	}
	ready := do(ops, "GET", "/readyz", "", "")
	require.Equal(t, 503, ready.status, ready.body)
	require.Contains(t, ready.body, `"failing":["catalog"]`)
	ready = do(ops, "GET", "/readyz?catalog=optional", "", "")
	require.Equal(t, 200, ready.status, "a load balancer keeps the gateway: %s", ready.body)
	require.Contains(t, ready.body, `"catalog"`)
	// Well past the placement TTL: about 3 s of traffic at 10 ms.
	traffic.waitSent(t, 300, 20*time.Second)
	sent, failed, examples := traffic.stop()
	t.Logf("cached tenant through the catalog's outage: %d requests, %d not 2xx", sent, failed)
	require.Zero(t, failed, "the cached tenant is served; first failures: %v", examples)

	pg.Start()
	restarted := time.Now()
	waitForAnswer(t, func() answer { return do(base, "POST", "/api/auth/login", "", credentials) },
		200, 20*time.Second, "logins work again once the catalog is back", 503)
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

// TestDrillRedisDown: the replicas' Redis dies and comes back. Meanwhile
// both replicas go on serving, rate limits hold per replica, a logout is
// refused on both replicas, a suspension reaches the other replica (through
// the catalog's change feed), and /readyz names Redis as degraded. When
// Redis returns, an event made on one replica reaches a WebSocket on the
// other again: the socket opened before the outage, resubscribed.
func TestDrillRedisDown(t *testing.T) {
	rs := startRedis(t)
	r := twoReplicas(t, rs.url)
	a, b, opsA := listen(t, r.a.public), listen(t, r.b.public), listen(t, r.a.ops)
	mustTG(t, "tenants", "set-limits", "replicated", "--rps", "1000")
	mustTG(t, "tenants", "create", "--slug", "bursty", "--name", "Bursty", "--plan", "free",
		"--owner-email", "o@bursty.test", "--owner-password", "bursty-password")
	mustTG(t, "tenants", "set-limits", "bursty", "--rps", "5")
	steady := login(t, a, "o@replicated.test", "replica-password")  // drives the traffic
	leaving := login(t, a, "o@replicated.test", "replica-password") // logs out during the outage
	bursty := login(t, a, "o@bursty.test", "bursty-password")
	for _, base := range []string{a, b} {
		waitFor(t, 5*time.Second, "both replicas apply the new limits", func() bool {
			return do(base, "GET", "/api/agents", steady, "").header.Get("RateLimit-Limit") == "1000"
		})
		require.Equal(t, 200, do(base, "GET", "/api/agents", leaving, "").status)
		require.Equal(t, 200, do(base, "GET", "/api/agents", bursty, "").status)
	}
	sock := openEvents(t, b, steady)
	sock.awaitMessageFrom(t, a, steady, 5*time.Second, "control: with Redis up, an event made on a reaches b")
	ready := do(opsA, "GET", "/readyz", "", "")
	require.Equal(t, 200, ready.status)
	require.Contains(t, ready.body, `"degraded":[]`)
	trafficA := driveTraffic(t, a, steady, 10*time.Millisecond)
	trafficB := driveTraffic(t, b, steady, 10*time.Millisecond)

	rs.stop()
	ready = do(opsA, "GET", "/readyz", "", "")
	require.Equal(t, 200, ready.status, "Redis degrades the gateway, it does not make it unready: %v", ready)
	require.Contains(t, ready.body, `"degraded":["redis"]`)

	// Rate limits hold without Redis, per replica.
	var served, limited int
	start := time.Now()
	for range 25 {
		switch r := do(a, "GET", "/api/agents", bursty, ""); r.status {
		case 200:
			served++
		case 429:
			limited++
			requireRefusal(t, r, 429, "rate_limited")
		default:
			t.Fatalf("bursty tenant without Redis: %v", r)
		}
	}
	elapsed := time.Since(start)
	t.Logf("bursty tenant (5 rps) without Redis, 25 requests in %v: %d served, %d refused", elapsed, served, limited)
	require.Positive(t, served)
	// At most the burst (5) and 5 a second while they ran: a bound that a
	// slower run only raises, unlike a count of refusals.
	require.LessOrEqual(t, served, 5+int(5*elapsed.Seconds())+1, "the local limiter holds the limit")

	// Revocations hold: a logout through a is refused by both replicas.
	require.Equal(t, 204, do(a, "POST", "/api/auth/logout", leaving, "").status)
	require.Equal(t, 401, do(a, "GET", "/api/agents", leaving, "").status)
	waitFor(t, 5*time.Second, "b refuses the logged-out token, learnt from the catalog", func() bool {
		return do(b, "GET", "/api/agents", leaving, "").status == 401
	})
	// Changes reach the other replica: a suspension through the CLI.
	mustTG(t, "tenants", "suspend", "bursty")
	waitFor(t, 5*time.Second, "b refuses the suspended tenant", func() bool {
		return do(b, "GET", "/api/agents", bursty, "").status == 403
	})
	trafficA.waitSent(t, 50, 10*time.Second)
	trafficB.waitSent(t, 50, 10*time.Second)

	back := time.Now()
	rs.start()
	waitFor(t, 10*time.Second, "/readyz no longer names Redis", func() bool {
		return strings.Contains(do(opsA, "GET", "/readyz", "", "").body, `"degraded":[]`)
	})
	took := sock.awaitMessageFrom(t, a, steady, 10*time.Second, "with Redis back, an event made on a reaches b's socket again")
	t.Logf("Redis back → first cross-replica event: %v (this probe %v)", time.Since(back), took)
	for _, tr := range []*traffic{trafficA, trafficB} {
		sent, failed, examples := tr.stop()
		t.Logf("steady tenant through the Redis outage: %d requests, %d not 2xx", sent, failed)
		require.Zero(t, failed, "requests are served without Redis; first failures: %v", examples)
	}
}

// redisServer is a redis-server of the test's own, which the test can kill
// and start again on the same port.
type redisServer struct {
	t    *testing.T
	port string
	url  string
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	addr := freeAddr(t)
	rs := &redisServer{t: t, port: addr[strings.LastIndex(addr, ":")+1:]}
	rs.url = "redis://127.0.0.1:" + rs.port + "/0"
	rs.start()
	t.Cleanup(rs.stop)
	return rs
}

// start runs the server and waits until it answers.
func (rs *redisServer) start() {
	rs.t.Helper()
	rs.cmd = exec.Command("redis-server", "--port", rs.port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	require.NoError(rs.t, rs.cmd.Start(), "redis-server must be installed for the tests")
	opts, err := redis.ParseURL(rs.url)
	require.NoError(rs.t, err)
	client := redis.NewClient(opts)
	defer client.Close()
	waitFor(rs.t, 10*time.Second, "redis-server answers", func() bool { return client.Ping(context.Background()).Err() == nil })
}

// stop kills the server (SIGKILL: Redis vanishes, as in a crash).
func (rs *redisServer) stop() {
	if rs.cmd != nil {
		_ = rs.cmd.Process.Kill()
		_ = rs.cmd.Wait()
		rs.cmd = nil
	}
}

// listen serves app on a free port until the test ends.
func listen(t *testing.T, app *fiber.App) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go func() { _ = app.Listener(ln) }()
	t.Cleanup(func() { _ = app.Shutdown() })
	return "http://" + ln.Addr().String()
}

// waitFor polls cond until it holds; it fails the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventSocket is a client of /api/events whose events are read in the
// background.
type eventSocket struct {
	events chan map[string]any
	probes atomic.Int64
}

func openEvents(t *testing.T, base, token string) *eventSocket {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial("ws"+strings.TrimPrefix(base, "http")+"/api/events?access_token="+token, nil)
	require.NoError(t, err)
	s := &eventSocket{events: make(chan map[string]any, 256)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			_, raw, err := conn.ReadMessage()
			if err != nil {
				return
			}
			var e map[string]any
			if json.Unmarshal(raw, &e) == nil {
				select {
				case s.events <- e:
				default: // the drill reads only what it waits for
				}
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// awaitMessageFrom posts messages through base as token until the socket
// receives the message.created of one of them, and returns how long that
// took. Posting again covers the time the socket's replica needs to
// (re)subscribe, without a blind sleep.
func (s *eventSocket) awaitMessageFrom(t *testing.T, base, token string, timeout time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	sent := map[string]bool{}
	for time.Since(start) < timeout {
		content := fmt.Sprintf("probe-%d", s.probes.Add(1))
		r := do(base, "POST", "/api/messages", token, `{"role":"user","content":"`+content+`"}`)
		require.Equal(t, 201, r.status, r.String())
		sent[content] = true
		wait := time.NewTimer(250 * time.Millisecond)
	read:
		for {
			select {
			case e := <-s.events:
				data, _ := e["data"].(map[string]any)
				if c, _ := data["content"].(string); e["type"] == "message.created" && sent[c] {
					wait.Stop()
					return time.Since(start)
				}
			case <-wait.C:
				break read
			}
		}
	}
	t.Fatalf("%s: no event within %v", what, timeout)
	return 0
}

// TestDrillNoisyNeighbour: one tenant sends ten times its rate limit while
// another, on the same gateway, stays under its own. The noisy one gets
// 429 rate_limited with Retry-After for most of its requests; the quiet one
// gets no 429 and no 5xx. Behaviour only: latency targets are benchmarks'.
func TestDrillNoisyNeighbour(t *testing.T) {
	e := env(t)
	t.Setenv("TENANTGATE_JWT_SECRET", "drill-secret-drill-secret-drill-secret")
	t.Setenv("TENANTGATE_REDIS_URL", tenancytest.RedisURL()) // limits as in production: Redis buckets
	t.Setenv("TENANTGATE_REDIS_PREFIX", e.RedisPrefix)
	mustTG(t, "init")
	for _, slug := range []string{"noisy", "quiet"} {
		mustTG(t, "tenants", "create", "--slug", slug, "--name", slug, "--plan", "pro",
			"--owner-email", "o@"+slug+".test", "--owner-password", slug+"-password")
	}
	const noisyRPS, quietRPS = 5, 20
	mustTG(t, "tenants", "set-limits", "noisy", "--rps", fmt.Sprint(noisyRPS))
	mustTG(t, "tenants", "set-limits", "quiet", "--rps", fmt.Sprint(quietRPS))
	base, _ := serveHTTP(t)
	noisy := login(t, base, "o@noisy.test", "noisy-password")
	quiet := login(t, base, "o@quiet.test", "quiet-password")

	// The quiet tenant at a quarter of its limit, throughout.
	calm := driveTraffic(t, base, quiet, time.Second/(quietRPS/4))
	// The noisy one at ten times its limit: 150 requests (3 s if the
	// machine keeps up), and on until the quiet one has sent 10 meanwhile.
	statuses := map[int]int{}
	var badRefusals []string
	interval := time.Second / (10 * noisyRPS)
	tick := time.NewTicker(interval)
	start, quietStart := time.Now(), calm.n.Load()
	for i := 0; i < 150 || calm.n.Load() < quietStart+10; i++ {
		<-tick.C
		r := do(base, "GET", "/api/agents", noisy, "")
		statuses[r.status]++
		if seconds, err := strconv.Atoi(r.retryAfter); r.status == 429 && (r.code != "rate_limited" || err != nil || seconds < 1) {
			badRefusals = append(badRefusals, r.String()+" Retry-After: "+r.retryAfter)
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	sent, failed, examples := calm.stop()

	t.Logf("noisy tenant (%d rps) at ~%d rps: %v; quiet tenant (%d rps): %d requests, %d not 2xx",
		noisyRPS, 10*noisyRPS, statuses, quietRPS, sent, failed)
	total := statuses[200] + statuses[429]
	require.Equal(t, total, sum(statuses), "the noisy tenant gets only 200 or 429: %v", statuses)
	require.Positive(t, statuses[200], "it is slowed down, not shut out")
	// What is always true, however fast the requests went out: no more
	// than its burst and its rate over the flood's length was served.
	require.LessOrEqual(t, statuses[200], noisyRPS+int(noisyRPS*elapsed.Seconds())+1, "the noisy tenant is held to its limit")
	require.Empty(t, badRefusals, "a 429 is rate_limited with Retry-After")
	require.Zero(t, failed, "the quiet tenant gets no 429 and no 5xx; first failures: %v", examples)
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// TestDrillProvisionerKilled: a provisioner, a real process, is killed with
// SIGKILL in the middle of a provisioning and, later, of a move. Once its
// lease has run out, a new provisioner completes each job: the tenant
// serves, a moved tenant's rows are all there, and no database is orphaned
// or made twice.
func TestDrillProvisionerKilled(t *testing.T) {
	e := env(t)
	t.Setenv("TENANTGATE_JWT_SECRET", "drill-secret-drill-secret-drill-secret")
	mustTG(t, "init")
	cat := tenancytest.Connect(t, e.CatalogURL)
	server := tenancytest.Connect(t, e.ServerURL)
	ctx := context.Background()
	base, _ := serveHTTP(t)

	// A provisioning, killed once the job is claimed and the first database
	// (the server's template, then the tenant's) exists.
	out := mustTG(t, "tenants", "create", "--slug", "fresh", "--name", "Fresh", "--plan", "enterprise",
		"--owner-email", "o@fresh.test", "--owner-password", "fresh-password", "--output", "json")
	var created struct{ JobID string }
	require.NoError(t, json.Unmarshal([]byte(out), &created))
	require.NotEmpty(t, created.JobID)
	template, freshDB := e.DedicatedPrefix+"_template", e.DedicatedPrefix+"fresh"
	first := startCommand(t, "provisioner")
	pollUntil(t, 30*time.Second, 2*time.Millisecond, "the provisioner starts on the job", func() bool {
		return jobOf(t, cat, created.JobID).State == "running" && len(databasesNamed(t, server, template, freshDB)) > 0
	})
	first.kill()
	killed := jobOf(t, cat, created.JobID)
	t.Logf("provisioner killed during the provisioning: job %s at attempt %d; databases then: %v; template: %s",
		killed.State, killed.Attempts, databasesNamed(t, server, template, freshDB), schemaState(t, e.DatabaseURL(t, template)))
	require.Equal(t, "running", killed.State, "killed before the job ended")
	require.Equal(t, "creating", databaseState(t, cat, freshDB), "killed before the database was ready")
	require.Equal(t, 503, do(base, "GET", "/api/agents", login(t, base, "o@fresh.test", "fresh-password"), "").status,
		"meanwhile its tenant is refused")

	expireLease(t, cat, created.JobID)
	resumed := time.Now()
	second := startCommand(t, "provisioner")
	done := awaitJob(t, cat, created.JobID, second)
	t.Logf("provisioning resumed and done in %v; template: %s", time.Since(resumed), schemaState(t, e.DatabaseURL(t, template)))
	require.Equal(t, 2, done.Attempts, "the second provisioner resumed the job the first left")
	require.Equal(t, "ready", databaseState(t, cat, freshDB))
	require.Equal(t, []string{freshDB}, dedicatedDatabases(t, cat), "one database in the catalog")
	fresh := login(t, base, "o@fresh.test", "fresh-password")
	waitForStatus(t, base, fresh, 200, 5*time.Second, "the gateway learns the database is ready", 503)
	require.Equal(t, 201, do(base, "POST", "/api/agents", fresh, `{"name":"after-the-crash"}`).status)

	// A move of a tenant with 100k rows, killed while its rows are copied.
	out = mustTG(t, "tenants", "create", "--slug", "mover", "--name", "Mover", "--plan", "pro",
		"--owner-email", "o@mover.test", "--owner-password", "mover-password", "--output", "json")
	var org struct{ Organization struct{ ID string } }
	require.NoError(t, json.Unmarshal([]byte(out), &org))
	orgID, moverDB := org.Organization.ID, e.DedicatedPrefix+"mover"
	shared := tenancytest.Connect(t, e.SharedURL)
	seedRows(t, shared, orgID, 30_000, 70_000)
	before := fingerprint(t, shared, orgID)
	mover := login(t, base, "o@mover.test", "mover-password")
	require.Equal(t, 200, do(base, "GET", "/api/agents", mover, "").status)

	mustTG(t, "tenants", "move", "mover", "--to", "dedicated")
	var moveJob string
	require.NoError(t, cat.QueryRow(ctx, `SELECT id::text FROM jobs WHERE organization_id = $1 AND kind = 'move'`, orgID).Scan(&moveJob))
	pollUntil(t, 30*time.Second, 2*time.Millisecond, "the second provisioner copies the rows", func() bool {
		var copying bool
		require.NoError(t, server.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = $1 AND state = 'active' AND query LIKE 'COPY %FROM STDIN%')`, moverDB).Scan(&copying))
		return copying
	})
	second.kill()
	killed = jobOf(t, cat, moveJob)
	var placement, placementState string
	require.NoError(t, cat.QueryRow(ctx, `SELECT d.kind, p.state FROM placements p JOIN databases d ON d.id = p.database_id
		WHERE p.organization_id = $1`, orgID).Scan(&placement, &placementState))
	t.Logf("provisioner killed during the move: job %s at attempt %d, placement %s %s", killed.State, killed.Attempts, placement, placementState)
	require.Equal(t, "running", killed.State)
	require.Equal(t, "shared moving", placement+" "+placementState, "killed after the mark, before the switch")
	// Meanwhile the tenant reads from where it was, and cannot write there.
	require.Equal(t, 200, do(base, "GET", "/api/agents", mover, "").status)
	requireRefusal(t, do(base, "POST", "/api/tasks", mover, `{"title":"written-in-limbo"}`), 503, "tenant_unavailable")

	expireLease(t, cat, moveJob)
	resumed = time.Now()
	third := startCommand(t, "provisioner")
	done = awaitJob(t, cat, moveJob, third)
	t.Logf("move resumed and done in %v", time.Since(resumed))
	require.Equal(t, 2, done.Attempts, "the third provisioner resumed the move the second left")
	require.Contains(t, mustTG(t, "tenants", "show", "mover", "--output", "json"), `"placement": "dedicated"`)
	dedicated := tenancytest.Connect(t, e.DatabaseURL(t, moverDB))
	require.Equal(t, before, fingerprint(t, dedicated, orgID), "every row arrived, unchanged")
	require.Equal(t, rowPrint{}, fingerprint(t, shared, orgID), "none is left in the shared database")
	require.Equal(t, []string{freshDB, moverDB}, dedicatedDatabases(t, cat), "one database per dedicated tenant")
	require.Contains(t, mustTG(t, "servers", "sweep"), "no orphan databases")

	waitFor(t, 5*time.Second, "the gateway follows the tenant to its database", func() bool {
		r := do(base, "GET", "/api/organization", mover, "")
		return r.status == 200 && strings.Contains(r.body, `"placement":"dedicated"`)
	})
	r := do(base, "GET", "/api/organization", mover, "")
	require.Contains(t, r.body, `"agents":30000`, "the moved agents are served: %s", r.body)
	require.Equal(t, 201, do(base, "POST", "/api/tasks", mover, `{"title":"after-the-move"}`).status)
}

// asCommandEnv makes the test binary run as the tenantgate command (see
// TestMain).
const asCommandEnv = "TENANTGATE_TEST_AS_COMMAND"

// command is tenantgate running as a child process: the test binary run
// again as the command.
type command struct {
	cmd  *exec.Cmd
	out  *tenancytest.LogBuffer
	done chan struct{}
}

// startCommand runs tenantgate args in a process of its own, with the
// test's environment, until kill or the test's end.
func startCommand(t *testing.T, args ...string) *command {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), asCommandEnv+"=1")
	c := &command{cmd: cmd, out: &tenancytest.LogBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	require.NoError(t, cmd.Start())
	go func() {
		_ = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		c.kill()
		if strings.Contains(c.out.String(), "WARNING: DATA RACE") {
			t.Errorf("tenantgate %s raced:\n%s", strings.Join(args, " "), c.out)
		}
	})
	return c
}

// kill sends SIGKILL and waits for the process to end.
func (c *command) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.done
}

// pollUntil checks cond every interval until it holds; it fails the test
// after timeout.
func pollUntil(t *testing.T, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(interval)
	}
}

type jobRow struct {
	State    string
	Attempts int
	Error    string
}

func jobOf(t *testing.T, cat *pgx.Conn, id string) jobRow {
	var j jobRow
	require.NoError(t, cat.QueryRow(context.Background(), `SELECT state, attempts, error FROM jobs WHERE id = $1`, id).
		Scan(&j.State, &j.Attempts, &j.Error))
	return j
}

// expireLease ends the lease a killed provisioner held on a job, as the
// clock would after 30 s (the worker's lease, not configurable), so that
// the drill need not wait for it.
func expireLease(t *testing.T, cat *pgx.Conn, id string) {
	tag, err := cat.Exec(context.Background(), `UPDATE jobs SET locked_until = now() - interval '1 second'
		WHERE id = $1 AND state = 'running'`, id)
	require.NoError(t, err)
	require.EqualValues(t, 1, tag.RowsAffected(), "the killed provisioner still holds job %s", id)
}

// awaitJob waits for a job to succeed under the provisioner p.
func awaitJob(t *testing.T, cat *pgx.Conn, id string, p *command) jobRow {
	t.Helper()
	var j jobRow
	pollUntil(t, 60*time.Second, 50*time.Millisecond, "job "+id+" ends", func() bool {
		j = jobOf(t, cat, id)
		return j.State == "succeeded" || j.State == "failed"
	})
	require.Equal(t, "succeeded", j.State, "job %s: %s\nprovisioner output:\n%s", id, j.Error, p.out)
	return j
}

// databasesNamed returns those of names that exist on the server.
func databasesNamed(t *testing.T, server *pgx.Conn, names ...string) []string {
	rows, err := server.Query(context.Background(), `SELECT datname FROM pg_database WHERE datname = ANY($1) ORDER BY datname`, names)
	require.NoError(t, err)
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return found
}

func databaseState(t *testing.T, cat *pgx.Conn, name string) string {
	var state string
	require.NoError(t, cat.QueryRow(context.Background(), `SELECT state FROM databases WHERE name = $1`, name).Scan(&state))
	return state
}

// dedicatedDatabases lists the dedicated databases the catalog knows.
func dedicatedDatabases(t *testing.T, cat *pgx.Conn) []string {
	rows, err := cat.Query(context.Background(), `SELECT name FROM databases WHERE kind = 'dedicated' ORDER BY name`)
	require.NoError(t, err)
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return names
}

// schemaState describes the schema of a database that a killed
// provisioner may have left half-made.
func schemaState(t *testing.T, dsn string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer conn.Close(ctx)
	var version int64
	var dirty bool
	if err := conn.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations`).Scan(&version, &dirty); err != nil {
		return "no schema version: " + err.Error()
	}
	return fmt.Sprintf("version %d, dirty %t", version, dirty)
}

// seedRows writes agents and tasks of an organization straight into a tenant
// database, as its owner: fast, and as if they had been made through the
// API.
func seedRows(t *testing.T, db *pgx.Conn, orgID string, agents, tasks int) {
	ctx := context.Background()
	_, err := db.Exec(ctx, `INSERT INTO agents (organization_id, name, model)
		SELECT $1, 'agent-' || g, 'model-' || (g % 7) FROM generate_series(1, $2) g`, orgID, agents)
	require.NoError(t, err)
	_, err = db.Exec(ctx, `INSERT INTO tasks (organization_id, title, priority)
		SELECT $1, 'task-' || g, (ARRAY['low','normal','high','urgent'])[1 + g % 4] FROM generate_series(1, $2) g`, orgID, tasks)
	require.NoError(t, err)
}

// rowPrint is an organization's row counts and a digest of its agents and
// tasks, to compare a moved tenant with its source.
type rowPrint struct {
	Agents, Tasks       int
	AgentsMD5, TasksMD5 string
}

func fingerprint(t *testing.T, db *pgx.Conn, orgID string) rowPrint {
	var p rowPrint
	err := db.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM agents WHERE organization_id = $1),
		(SELECT count(*) FROM tasks WHERE organization_id = $1),
		(SELECT coalesce(md5(string_agg(id::text || name || model || created_at::text, ',' ORDER BY id)), '') FROM agents WHERE organization_id = $1),
		(SELECT coalesce(md5(string_agg(id::text || title || priority || created_at::text, ',' ORDER BY id)), '') FROM tasks WHERE organization_id = $1)`,
		orgID).Scan(&p.Agents, &p.Tasks, &p.AgentsMD5, &p.TasksMD5)
	require.NoError(t, err)
	return p
}
