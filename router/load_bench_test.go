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
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// Load benchmark parameters: rounds alternate gateway and bare so drift in
// the machine's load hits both alike.
const (
	loadRounds  = 4
	loadRound   = 2 * time.Second
	loadWorkers = 16
)

// BenchmarkLoadGatewayVsBare measures GET /api/agents through the whole
// gateway (JWT, tenant resolution, middleware, JSON access log, metrics)
// against a bare Fiber handler that runs the same tenant-scoped query on
// the same pool, for a shared and a dedicated tenant, over real loopback
// HTTP. It reports both rates and their ratio (target ≥ 0.8).
func BenchmarkLoadGatewayVsBare(b *testing.B) {
	// A real JSON logger writing nowhere: encoding the access log is part
	// of the gateway's cost.
	// Rate limits in Redis, as a multi-replica deployment runs them.
	opts, err := redis.ParseURL(tenancytest.RedisURL())
	require.NoError(b, err)
	rdb := redis.NewClient(opts)
	b.Cleanup(func() { rdb.Close() })
	bn := setup(b, setupOptions{log: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		limiter: ratelimit.NewBatched(ratelimit.NewRedis(rdb, "tgbench:"+uuid.NewString()[:8]+":"), 1000)})
	gateway := serveApp(b, bn.app)
	tenants := map[string]org{
		"shared":    bn.org(b, "load-shared", tenancy.PlanPro),
		"dedicated": bn.org(b, "load-dedicated", tenancy.PlanEnterprise),
	}
	resolved := map[string]tenancy.Tenant{}
	for kind, o := range tenants {
		for i := range 20 {
			r := bn.do(b, "POST", "/api/agents", o.token, map[string]string{"name": fmt.Sprintf("agent-%02d", i)})
			require.Equal(b, 201, r.status)
		}
		t, err := bn.store.Tenant(context.Background(), o.ID)
		require.NoError(b, err)
		resolved[kind] = t
	}
	bare := serveApp(b, bareApp(bn.data, resolved))

	for b.Loop() {
		for _, kind := range []string{"shared", "dedicated"} {
			for _, op := range []struct{ name, method, gateway, bare string }{
				{"list", "GET", "/api/agents", "/bare/" + kind},
				{"create", "POST", "/api/tasks", "/bare-create/" + kind},
			} {
				gw, br := 0.0, 0.0
				for range loadRounds {
					gw += hammer(b, op.method, "http://"+gateway+op.gateway, tenants[kind].token)
					br += hammer(b, op.method, "http://"+bare+op.bare, "")
				}
				gw, br = gw/loadRounds, br/loadRounds
				name := kind + "-" + op.name
				b.ReportMetric(gw, name+"-gateway-req/s")
				b.ReportMetric(br, name+"-bare-req/s")
				b.ReportMetric(gw/br, name+"-ratio")
			}
		}
	}
}

const createBody = `{"title":"benchmark task","priority":"normal"}`

// bareApp answers GET /bare/:kind with the tenant's agents, and POST
// /bare-create/:kind by creating a task, through the same stores, scope and
// pool as the gateway, and nothing else.
func bareApp(data tenantdb.Stores, tenants map[string]tenancy.Tenant) *fiber.App {
	agents := data.Agents
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Post("/bare-create/:kind", func(c *fiber.Ctx) error {
		var req taskCreate
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
		return c.JSON(list(agentList, next))
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

// hammer sends GETs from loadWorkers keep-alive clients for loadRound and
// returns successful requests per second; any non-200 fails the benchmark.
func hammer(b *testing.B, method, url, token string) float64 {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: loadWorkers}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	var ok, bad atomic.Int64
	deadline := time.Now().Add(loadRound)
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
				if token != "" {
					req.Header.Set("Authorization", "Bearer "+token)
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
	return float64(ok.Load()) / loadRound.Seconds()
}
