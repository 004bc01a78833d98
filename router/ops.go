package router

import (
	"context"
	"crypto/subtle"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/service"
)

// OpsDeps is what the ops listener needs.
type OpsDeps struct {
	Catalog *catalog.Store
	Pools   *poolcache.Cache
	// Degradable are dependencies whose loss degrades but does not stop
	// the gateway (Redis), by name.
	Degradable map[string]func(context.Context) error
	AdminToken string
	Gatherer   prometheus.Gatherer
	Log        *slog.Logger
}

// NewOps returns the ops app: health, readiness, metrics and the admin API.
func NewOps(d OpsDeps) *fiber.App {
	app := newApp(d.Log)
	o := &ops{d}
	app.Use(func(c *fiber.Ctx) error {
		requestID(c)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.SetUserContext(ctx)
		return c.Next()
	})
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", o.handleReady)
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(d.Gatherer, promhttp.HandlerOpts{})))
	admin := app.Group("/admin", o.requireAdmin)
	admin.Get("/pools", o.handlePools)
	admin.Get("/tenants", o.handleTenants)
	admin.Get("/tenants/:slug", o.handleTenant)
	admin.Get("/databases", o.handleDatabases)
	admin.Get("/jobs/:id", o.handleJob)
	return app
}

type ops struct{ OpsDeps }

func (o *ops) handleReady(c *fiber.Ctx) error {
	ctx := c.UserContext()
	degraded := []string{}
	for name, check := range o.Degradable {
		if err := check(ctx); err != nil {
			degraded = append(degraded, name)
		}
	}
	if err := o.Catalog.Ping(ctx); err != nil {
		// ?catalog=optional is for load balancers' readiness: every
		// replica loses the catalog at once, and cached tenants are still
		// served, so taking them all out of rotation would only make it
		// worse.
		if c.Query("catalog") != "optional" {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "failing": []string{"catalog"}, "degraded": degraded})
		}
		degraded = append(degraded, "catalog")
	}
	return c.JSON(fiber.Map{"status": "ready", "degraded": degraded})
}

// requireAdmin admits only the configured admin token; with none set, the
// admin API is closed to everyone.
func (o *ops) requireAdmin(c *fiber.Ctx) error {
	if o.AdminToken == "" {
		return tenancy.Errorf(tenancy.CodeForbidden, "the admin API is disabled: set admin_token to enable it")
	}
	scheme, token, _ := strings.Cut(c.Get(fiber.HeaderAuthorization), " ")
	if !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare([]byte(token), []byte(o.AdminToken)) != 1 {
		return service.ErrUnauthorized
	}
	return c.Next()
}

type poolView struct {
	DatabaseID  string `json:"databaseId"`
	Server      string `json:"server"`
	Pinned      bool   `json:"pinned"`
	Dropped     bool   `json:"dropped"`
	Leases      int    `json:"leases"`
	InUse       int    `json:"inUse"`
	Idle        int    `json:"idle"`
	Total       int    `json:"total"`
	BreakerOpen bool   `json:"breakerOpen"`
}

func (o *ops) handlePools(c *fiber.Ctx) error {
	s := o.Pools.Stats()
	pools := make([]poolView, 0, len(s.Pools))
	for _, p := range s.Pools {
		pools = append(pools, poolView(p))
	}
	return c.JSON(fiber.Map{
		"open": s.Open, "hits": s.Hits, "misses": s.Misses, "evictions": s.Evictions, "opens": s.Opens,
		"inUse": s.InUse, "idle": s.Idle, "totalConns": s.TotalConns, "waits": s.Waits, "breakersOpen": s.BreakersOpen,
		"pools": pools,
	})
}

func (o *ops) handleTenants(c *fiber.Ctx) error {
	orgs, err := o.Catalog.Organizations(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"data": orgs})
}

func (o *ops) handleTenant(c *fiber.Ctx) error {
	org, err := o.Catalog.OrganizationDetailBySlug(c.UserContext(), c.Params("slug"))
	if err != nil {
		return err
	}
	return c.JSON(org)
}

type databaseView struct {
	ID            string `json:"id"`
	Name          string `json:"name"`
	Kind          string `json:"kind"`
	State         string `json:"state"`
	Dirty         bool   `json:"dirty"`
	SchemaVersion int64  `json:"schemaVersion"`
	Tenants       int    `json:"tenants"`
}

func (o *ops) handleDatabases(c *fiber.Ctx) error {
	dbs, err := o.Catalog.Databases(c.UserContext())
	if err != nil {
		return err
	}
	out := make([]databaseView, 0, len(dbs))
	for _, d := range dbs {
		// The DSN stays out: it may carry a password.
		out = append(out, databaseView{d.ID, d.Name, d.Kind, d.State, d.Dirty, d.SchemaVersion, d.Tenants})
	}
	return c.JSON(fiber.Map{"data": out})
}

func (o *ops) handleJob(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	j, err := o.Catalog.Job(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(j)
}
