package router

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/ratelimit"
	"github.com/tenantgate/tenantgate/tenancy/service"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// Load benchmark parameters: rounds alternate the contenders so drift in
// the machine's load hits them alike.
const (
	loadRounds  = 4
	loadRound   = 1500 * time.Millisecond
	loadWarmUp  = 500 * time.Millisecond
	loadWorkers = 16
)

// BenchmarkLoadGatewayVsBare measures GET /api/agents (20 agents) and POST
// /api/tasks through the whole gateway (authentication, tenant resolution,
// Redis rate limit, idempotency check, JSON access log, metrics) against
// two references, for a shared and a dedicated tenant, over real loopback
// HTTP:
//
//   - bare: a Fiber handler making the same store call on the same pool
//     (a transaction that sets app.organization_id, then the query under
//     row-level security), so gateway ÷ bare prices the middleware alone;
//   - plain: a Fiber handler running the same rows' query on a pgxpool of
//     its own as a superuser, with no transaction, no setting and no
//     row-level security, the same size as the gateway's pool: gateway ÷
//     plain is what tenancy costs against the handler a user would write.
//
// The gateway is driven twice, with a session JWT and with an API key. The
// load comes from cmd/loadgen, a process of its own (16 keep-alive
// connections, closed loop), so its CPU and garbage collection are not
// this process's. Each round runs the four contenders one after another,
// starting with a different one each round. It reports each rate,
// gateway ÷ bare (target ≥ 0.8, issues 2 and 4) and gateway ÷ plain
// (target ≥ 0.90, issue 13), and where each contender's CPU went per
// request: this process (the server), the load process, PostgreSQL,
// Redis, and the rest of the machine.
//
//	go test -run '^$' -bench LoadGatewayVsBare -benchtime 1x ./router/
func BenchmarkLoadGatewayVsBare(b *testing.B) {
	r := benchRig(b, "load", false)

	for _, kind := range []string{"shared", "dedicated"} {
		for _, op := range []struct{ name, method, gateway, bare, plain, body string }{
			{"list", "GET", "/api/agents", "/bare/" + kind, "/plain/" + kind, ""},
			{"create", "POST", "/api/tasks", "/bare-create/" + kind, "/plain-create/" + kind, createBody},
		} {
			b.Run(kind+"-"+op.name, func(b *testing.B) {
				contenders := []struct {
					unit string
					t    target
				}{
					{"jwt", target{method: op.method, url: "http://" + r.gateway + op.gateway, auth: "Bearer " + r.tenants[kind].token, body: op.body}},
					{"key", target{method: op.method, url: "http://" + r.gateway + op.gateway, auth: "Key " + r.tenants[kind].key, body: op.body}},
					{"bare", target{method: op.method, url: "http://" + r.bare + op.bare, body: op.body}},
					{"plain", target{method: op.method, url: "http://" + r.plain + op.plain, body: op.body}},
				}
				var m stats
				got := map[string]*stats{}
				for b.Loop() {
					for _, c := range contenders { // warm-up: connections, caches, plans
						r.load.closed(b, c.t, loadWarmUp)
					}
					for round := range loadRounds {
						for i := range contenders {
							c := contenders[(round+i)%len(contenders)]
							sp := r.meters.start(nil)
							res := r.load.closed(b, c.t, loadRound)
							s := sp.stop(res)
							if got[c.unit] == nil {
								got[c.unit] = &stats{}
							}
							got[c.unit].add(s)
							m.add(s)
						}
					}
				}
				rate := func(unit string) float64 { return got[unit].rate() }
				for _, c := range contenders {
					s := got[c.unit]
					b.ReportMetric(s.rate(), c.unit+"-req/s")
					b.ReportMetric(s.perRequest(s.server), c.unit+"-server-us/req")
					b.ReportMetric(s.perRequest(s.client), c.unit+"-client-us/req")
					b.ReportMetric(s.perRequest(s.postgres), c.unit+"-postgres-us/req")
					b.ReportMetric(s.perRequest(s.redis), c.unit+"-redis-us/req")
					b.ReportMetric(s.perRequest(s.rest()), c.unit+"-rest-us/req")
					b.ReportMetric(s.cpuBusy(), c.unit+"-cpu-%")
					b.ReportMetric(float64(s.allocBytes)/float64(max(s.requests, 1)), c.unit+"-alloc-B/req")
				}
				b.ReportMetric(rate("jwt")/rate("bare"), "jwt-ratio")
				b.ReportMetric(rate("key")/rate("bare"), "key-ratio")
				b.ReportMetric(rate("jwt")/rate("plain"), "jwt-plain-ratio")
				b.ReportMetric(rate("key")/rate("plain"), "key-plain-ratio")
				b.ReportMetric(rate("bare")/rate("plain"), "bare-plain-ratio")
				b.ReportMetric(m.share(m.client), "client-cpu-%")
				b.ReportMetric(0, "ns/op") // the rates say it better
			})
		}
	}
}

// rig is a benchmark's servers: the production-like gateway, the bare
// handler over the gateway's pools and the plain handler over pools of
// its own, with a shared and a dedicated tenant, the load client and the
// meters of this process.
type rig struct {
	bn                   *bundle
	gateway, bare, plain string // addresses
	tenants              map[string]benchTenant
	plainPools           map[string]*pgxpool.Pool
	load                 loadgen
	meters               *meters
}

// benchRig serves the three with tenants named after prefix. With probe,
// this process also times a Redis PING and a catalog SELECT 1 every 10 ms
// for the meters.
func benchRig(b *testing.B, prefix string, probe bool) *rig {
	bn, rt := benchGatewayTimed(b, setupOptions{})
	r := &rig{bn: bn, gateway: serveApp(b, bn.app), load: buildLoadgen(b), meters: &meters{redis: rt}}
	r.tenants = map[string]benchTenant{
		"shared":    bn.benchTenant(b, prefix+"-shared", tenancy.PlanPro),
		"dedicated": bn.benchTenant(b, prefix+"-dedicated", tenancy.PlanEnterprise),
	}
	resolved := map[string]tenancy.Tenant{}
	orgs := map[string]string{}
	r.plainPools = map[string]*pgxpool.Pool{}
	for kind, t := range r.tenants {
		resolved[kind] = t.resolved
		orgs[kind] = t.ID
		r.plainPools[kind] = plainPool(b, bn, t.resolved)
	}
	r.bare = serveApp(b, bareApp(bn.data, resolved))
	r.plain = serveApp(b, plainApp(r.plainPools, orgs))
	var except []uint32
	if probe {
		r.meters.probes = startProbes(b, bn.env.CatalogURL)
		except = append(except, r.meters.probes.pid)
	}
	r.meters.backends = backendLister(b, bn.env, except...)
	return r
}

// pool returns the Stat of the pool serving a contender: the gateway's
// pool of the tenant's database for the gateway and bare, the plain
// handler's own for plain.
func (r *rig) pool(contender, kind string) func() *pgxpool.Stat {
	if contender == "plain" {
		return r.plainPools[kind].Stat
	}
	id := r.tenants[kind].resolved.Placement.DatabaseID
	return func() *pgxpool.Stat {
		l, err := r.bn.pools.Lease(context.Background(), id)
		if err != nil {
			return nil
		}
		defer l.Release(nil)
		return l.Pool().Stat()
	}
}

// benchGateway is the gateway as production runs it, for benchmarks: a
// real JSON access log (written nowhere: encoding it is part of the cost)
// and rate limits in Redis, as a multi-replica deployment has them.
func benchGateway(b *testing.B, o setupOptions) *bundle {
	bn, _ := benchGatewayTimed(b, o)
	return bn
}

// benchGatewayTimed is benchGateway with every Redis call the gateway makes
// timed.
func benchGatewayTimed(b *testing.B, o setupOptions) (*bundle, *redisTimer) {
	opts, err := redis.ParseURL(tenancytest.RedisURL())
	require.NoError(b, err)
	rdb := redis.NewClient(opts)
	rt := &redisTimer{}
	rdb.AddHook(rt)
	b.Cleanup(func() { rdb.Close() })
	o.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	o.limiter = ratelimit.NewBatched(ratelimit.NewRedis(rdb, "tgbench:"+uuid.NewString()[:8]+":"), 1000)
	return setup(b, o), rt
}

// benchTenant is an organization with 20 agents, its owner's session
// token, an API key and its resolved placement.
type benchTenant struct {
	org
	key      string
	resolved tenancy.Tenant
}

func (bn *bundle) benchTenant(b *testing.B, slug string, plan tenancy.Plan) benchTenant {
	t := benchTenant{org: bn.org(b, slug, plan)}
	for i := range 20 {
		r := bn.do(b, "POST", "/api/agents", t.token, map[string]string{"name": fmt.Sprintf("agent-%02d", i)})
		require.Equal(b, 201, r.status, r.text)
	}
	r := bn.do(b, "POST", "/api/api-keys", t.token, map[string]string{"name": "bench"})
	require.Equal(b, 201, r.status, r.text)
	t.key = r.json["key"].(string)
	var err error
	t.resolved, err = bn.store.Tenant(context.Background(), t.ID)
	require.NoError(b, err)
	return t
}

const createBody = `{"title":"benchmark task","priority":"normal"}`

// bareApp answers GET /bare/:kind with the tenant's agents, and POST
// /bare-create/:kind by creating a task, through the same stores, scope and
// pool as the gateway, and nothing else.
func bareApp(data tenantdb.Stores, tenants map[string]tenancy.Tenant) *fiber.App {
	agents := data.Agents
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/bare-create/:kind", func(c *fiber.Ctx) error {
		var req service.TaskInput
		if err := json.Unmarshal(c.Body(), &req); err != nil {
			return err
		}
		task, err := data.Tasks.Create(c.UserContext(), tenants[c.Params("kind")], "",
			tenantdb.NewTask{Title: req.Title, Priority: req.Priority})
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusCreated).JSON(task)
	})
	app.Get("/bare/:kind", func(c *fiber.Ctx) error {
		agentList, next, err := agents.List(c.UserContext(), tenants[c.Params("kind")], tenancy.Page{})
		if err != nil {
			return err
		}
		return listed(c, agentList, next, nil)
	})
	return app
}

// The plain handler's statements: the columns, order and page size of
// tenantdb's agent list (first page: 50 and one more to know whether there
// is a next) and the statement tenantdb's task create sends, so the rows
// read and written (a task and its activity-log row) and the answers are
// the same as the gateway's; only the transaction, the setting and
// row-level security are left out.
const (
	plainList = `SELECT id::text, name, description, model, status, created_at, updated_at
		FROM agents WHERE organization_id = $1 AND deleted_at IS NULL ORDER BY created_at, id LIMIT $2`
	plainCreate = `WITH x AS (
			INSERT INTO tasks (organization_id, agent_id, title, description, priority)
			SELECT $1, $2::uuid, $3, $4, $5 RETURNING *
		), log AS (
			INSERT INTO activity_logs (organization_id, actor_id, action, object_type, object_id)
			SELECT organization_id, NULL, 'task.created', 'task', id FROM x)
		SELECT id::text, title, description, status, agent_id::text, priority, result,
			started_at, completed_at, created_at, updated_at, agent_minutes FROM x`
)

// plainApp answers GET /plain/:kind with the tenant's agents and POST
// /plain-create/:kind by creating a task, each with one statement on a
// superuser's pool of the tenant's database: the handler a user would
// write, and the reference of issue 13.
func plainApp(pools map[string]*pgxpool.Pool, orgs map[string]string) *fiber.App {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/plain/:kind", func(c *fiber.Ctx) error {
		kind := c.Params("kind")
		rows, err := pools[kind].Query(c.UserContext(), plainList, orgs[kind], tenancy.DefaultLimit+1)
		if err != nil {
			return err
		}
		agents := make([]tenantdb.Agent, 0, tenancy.DefaultLimit+1)
		for rows.Next() {
			var a tenantdb.Agent
			if err := rows.Scan(&a.ID, &a.Name, &a.Description, &a.Model, &a.Status, &a.CreatedAt, &a.UpdatedAt); err != nil {
				return err
			}
			agents = append(agents, a)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		page, next := tenancy.PageOf(agents, tenancy.DefaultLimit, func(a tenantdb.Agent) (time.Time, string) { return a.CreatedAt, a.ID })
		return listed(c, page, next, nil)
	})
	app.Post("/plain-create/:kind", func(c *fiber.Ctx) error {
		var req service.TaskInput
		if err := json.Unmarshal(c.Body(), &req); err != nil {
			return err
		}
		kind := c.Params("kind")
		var t tenantdb.Task
		var result []byte
		err := pools[kind].QueryRow(c.UserContext(), plainCreate, orgs[kind], req.AgentID, req.Title, req.Description, req.Priority).
			Scan(&t.ID, &t.Title, &t.Description, &t.Status, &t.AgentID, &t.Priority, &result,
				&t.StartedAt, &t.CompletedAt, &t.CreatedAt, &t.UpdatedAt, &t.AgentMinutes)
		if err != nil {
			return err
		}
		t.Result = json.RawMessage("null")
		if result != nil {
			t.Result = result
		}
		return c.Status(fiber.StatusCreated).JSON(t)
	})
	return app
}

// plainPool connects to the tenant's database as its owner, a superuser
// (row-level security does not apply), with as many connections as the
// gateway's pool of that database has, so neither side has more.
func plainPool(b *testing.B, bn *bundle, t tenancy.Tenant) *pgxpool.Pool {
	ctx := testCtx(b)
	db, err := bn.store.Database(ctx, t.Placement.DatabaseID)
	require.NoError(b, err)
	l, err := bn.pools.Lease(ctx, t.Placement.DatabaseID)
	require.NoError(b, err)
	maxConns := l.Pool().Config().MaxConns
	l.Release(nil)

	cfg, err := pgxpool.ParseConfig(db.DSN)
	require.NoError(b, err)
	cfg.MaxConns = maxConns
	cfg.ConnConfig.ConnectTimeout = 2 * time.Second
	cfg.ConnConfig.RuntimeParams["application_name"] = "tgbench-plain"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	var super bool
	require.NoError(b, pool.QueryRow(ctx, `SELECT rolsuper FROM pg_roles WHERE rolname = current_user`).Scan(&super))
	require.True(b, super, "the plain handler connects as a superuser")
	var n int
	require.NoError(b, pool.QueryRow(ctx, `SELECT count(*) FROM agents WHERE organization_id = $1`, t.Organization.ID).Scan(&n))
	require.Equal(b, 20, n, "the plain handler sees the tenant's agents")
	return pool
}

func serveApp(b *testing.B, app *fiber.App) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	go app.Listener(ln)
	b.Cleanup(func() { _ = app.Shutdown() })
	return ln.Addr().String()
}

// target is what the load client sends: method, URL, Authorization header
// and body, and a status counted apart instead of failing the benchmark
// (429 for a tenant over its limit on purpose).
type target struct {
	method, url, auth, body string
	tolerate                int
}

// loadgen is the path of cmd/loadgen, built for a benchmark.
type loadgen string

// buildLoadgen builds cmd/loadgen into a directory of the benchmark's.
func buildLoadgen(b *testing.B) loadgen {
	bin := filepath.Join(b.TempDir(), "loadgen")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/tenantgate/tenantgate/cmd/loadgen").CombinedOutput()
	require.NoError(b, err, "go build: %s", out)
	return loadgen(bin)
}

// loadResult is what a loadgen process printed (cmd/loadgen's Result)
// and the CPU time it used.
type loadResult struct {
	OK, Tolerated, Failed int
	FirstError            string
	Seconds               float64
	Started               int64
	LatenciesMicros       []int64
	SendLagsMicros        []int64
	// CPU is the process's user and system time, from its ProcessState.
	CPU time.Duration `json:"-"`
}

// latencies are the paced latencies as durations.
func (r loadResult) latencies() []time.Duration { return micros(r.LatenciesMicros) }

// sendLags are how late the paced requests left, as durations.
func (r loadResult) sendLags() []time.Duration { return micros(r.SendLagsMicros) }

func micros(us []int64) []time.Duration {
	out := make([]time.Duration, len(us))
	for i, n := range us {
		out[i] = time.Duration(n) * time.Microsecond
	}
	return out
}

// closed runs loadWorkers closed-loop connections against t for d; any
// failed request fails the benchmark.
func (l loadgen) closed(b *testing.B, t target, d time.Duration) loadResult {
	return l.must(b, t, l.start(b, t, "-mode", "closed", "-workers", strconv.Itoa(loadWorkers), "-duration", d.String())())
}

// paced sends to t at rate per second for d, open loop, with up to
// pacedWorkers requests in flight; any failed request fails the
// benchmark.
func (l loadgen) paced(b *testing.B, t target, rate float64, d time.Duration) loadResult {
	return l.must(b, t, l.start(b, t, "-mode", "paced", "-rate", strconv.FormatFloat(rate, 'f', -1, 64),
		"-workers", strconv.Itoa(pacedWorkers), "-duration", d.String())())
}

func (l loadgen) must(b *testing.B, t target, r loadResult) loadResult {
	if r.Failed > 0 {
		b.Fatalf("%s %s: %d failed requests; the first: %s", t.method, t.url, r.Failed, r.FirstError)
	}
	if r.OK == 0 && t.tolerate == 0 {
		b.Fatalf("%s %s: no request succeeded", t.method, t.url)
	}
	return r
}

// start runs loadgen against t with args; the returned function waits for
// it (a run with -duration 0 ends then: its standard input closes) and
// returns its result.
func (l loadgen) start(b *testing.B, t target, args ...string) func() loadResult {
	if t.method == "" {
		t.method = "GET"
	}
	args = append([]string{"-method", t.method, "-url", t.url, "-auth", t.auth, "-body", t.body,
		"-tolerate", strconv.Itoa(t.tolerate)}, args...)
	cmd := exec.Command(string(l), args...)
	stdin, err := cmd.StdinPipe()
	require.NoError(b, err)
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	require.NoError(b, cmd.Start())
	return func() loadResult {
		stdin.Close()
		require.NoError(b, cmd.Wait(), "loadgen: %s", errs.String())
		var r loadResult
		require.NoError(b, json.Unmarshal(out.Bytes(), &r), "loadgen printed: %s", out.String())
		r.CPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		return r
	}
}
