package router

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"
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
	loadRound   = 2 * time.Second
	loadWorkers = 16
)

// BenchmarkLoadGatewayVsBare measures GET /api/agents (20 agents) and POST
// /api/tasks through the whole gateway (authentication, tenant resolution,
// Redis rate limit, idempotency check, JSON access log, metrics) against a
// bare Fiber handler that runs the same store call on the same pool, for a
// shared and a dedicated tenant, over real loopback HTTP. The gateway is
// driven twice, with a session JWT and with an API key; each round runs
// the three contenders one after another, starting with a different one
// each round. It reports each rate and gateway ÷ bare (target ≥ 0.8,
// issues 2 and 4).
//
//	go test -run '^$' -bench LoadGatewayVsBare -benchtime 1x ./router/
func BenchmarkLoadGatewayVsBare(b *testing.B) {
	gateway, bare, tenants := benchPair(b, "load")

	for _, kind := range []string{"shared", "dedicated"} {
		for _, op := range []struct{ name, method, gateway, bare string }{
			{"list", "GET", "/api/agents", "/bare/" + kind},
			{"create", "POST", "/api/tasks", "/bare-create/" + kind},
		} {
			b.Run(kind+"-"+op.name, func(b *testing.B) {
				contenders := []struct{ unit, url, auth string }{
					{"jwt", "http://" + gateway + op.gateway, "Bearer " + tenants[kind].token},
					{"key", "http://" + gateway + op.gateway, "Key " + tenants[kind].key},
					{"bare", "http://" + bare + op.bare, ""},
				}
				rates := map[string]float64{}
				for b.Loop() {
					for _, c := range contenders { // warm-up: connections, caches, plans
						hammer(b, op.method, c.url, c.auth, time.Second)
					}
					for round := range loadRounds {
						for i := range contenders {
							c := contenders[(round+i)%len(contenders)]
							rates[c.unit] += hammer(b, op.method, c.url, c.auth, loadRound) / loadRounds
						}
					}
				}
				for _, c := range contenders {
					b.ReportMetric(rates[c.unit], c.unit+"-req/s")
				}
				b.ReportMetric(rates["jwt"]/rates["bare"], "jwt-ratio")
				b.ReportMetric(rates["key"]/rates["bare"], "key-ratio")
				b.ReportMetric(0, "ns/op") // the rates say it better
			})
		}
	}
}

// benchPair serves the production-like gateway and, beside it, a bare
// handler over the same pools, with a shared and a dedicated tenant named
// after prefix; it returns both addresses and the tenants by kind.
func benchPair(b *testing.B, prefix string) (gateway, bare string, tenants map[string]benchTenant) {
	bn := benchGateway(b, setupOptions{})
	gateway = serveApp(b, bn.app)
	tenants = map[string]benchTenant{
		"shared":    bn.benchTenant(b, prefix+"-shared", tenancy.PlanPro),
		"dedicated": bn.benchTenant(b, prefix+"-dedicated", tenancy.PlanEnterprise),
	}
	resolved := map[string]tenancy.Tenant{}
	for kind, t := range tenants {
		resolved[kind] = t.resolved
	}
	return gateway, serveApp(b, bareApp(bn.data, resolved)), tenants
}

// benchGateway is the gateway as production runs it, for benchmarks: a
// real JSON access log (written nowhere: encoding it is part of the cost)
// and rate limits in Redis, as a multi-replica deployment has them.
func benchGateway(b *testing.B, o setupOptions) *bundle {
	opts, err := redis.ParseURL(tenancytest.RedisURL())
	require.NoError(b, err)
	rdb := redis.NewClient(opts)
	b.Cleanup(func() { rdb.Close() })
	o.log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	o.limiter = ratelimit.NewBatched(ratelimit.NewRedis(rdb, "tgbench:"+uuid.NewString()[:8]+":"), 1000)
	return setup(b, o)
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

func serveApp(b *testing.B, app *fiber.App) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	go app.Listener(ln)
	b.Cleanup(func() { _ = app.Shutdown() })
	return ln.Addr().String()
}

// hammer sends requests from loadWorkers keep-alive clients, each waiting
// for its answer before the next (closed loop), for d and returns
// successful requests per second; any failure fails the benchmark. auth is
// the Authorization header, if any.
func hammer(b *testing.B, method, url, auth string, d time.Duration) float64 {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: loadWorkers}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	var ok, bad atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for range loadWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				var body io.Reader
				if method == "POST" {
					body = strings.NewReader(createBody)
				}
				req, _ := http.NewRequest(method, url, body)
				if auth != "" {
					req.Header.Set("Authorization", auth)
				}
				res, err := client.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 && res.StatusCode != 201 {
					bad.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		b.Fatalf("%s: %d failed requests", url, bad.Load())
	}
	return float64(ok.Load()) / d.Seconds()
}
