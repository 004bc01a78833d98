package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/tenantgate/tenantgate/config"
	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/router"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/broadcast"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/changes"
	"github.com/tenantgate/tenantgate/tenancy/events"
	"github.com/tenantgate/tenantgate/tenancy/identity"
	"github.com/tenantgate/tenantgate/tenancy/metering"
	"github.com/tenantgate/tenantgate/tenancy/placement"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/ratelimit"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/service"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
	"github.com/tenantgate/tenantgate/tenancy/throttle"
)

func provisionerConfig(cfg config.Config) provisioner.Config {
	return provisioner.Config{
		CatalogURL: cfg.DatabaseURL, SharedURL: cfg.SharedDatabaseURL,
		DedicatedServerURL: cfg.Dedicated.ServerURL, DedicatedPrefix: cfg.Dedicated.DatabasePrefix,
		AppRole: cfg.AppRole, AppRolePassword: cfg.AppRolePassword,
	}
}

// openCatalog connects to the catalog database.
func openCatalog(ctx context.Context, cfg config.Config) (*pgxpool.Pool, *catalog.Store, error) {
	return openTracedCatalog(ctx, cfg, nil)
}

// openTracedCatalog connects to the catalog database, tracing its queries
// with tracer when not nil.
func openTracedCatalog(ctx context.Context, cfg config.Config, tracer pgx.QueryTracer) (*pgxpool.Pool, *catalog.Store, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("database_url: %w", err)
	}
	if tracer != nil {
		pc.ConnConfig.Tracer = tracer
	}
	pc.ConnConfig.ConnectTimeout = cfg.Pools.ConnectTimeout
	pc.MaxConns = 8
	pc.ConnConfig.RuntimeParams["application_name"] = "tenantgate-catalog"
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("catalog %s is not reachable (run `tenantgate init` first?): %w", schema.Redact(cfg.DatabaseURL), err)
	}
	return pool, catalog.New(pool), nil
}

// gateway is everything `serve` runs, built from the configuration.
type gateway struct {
	catalogPool *pgxpool.Pool
	store       *catalog.Store
	usage       *metering.Store
	pools       *poolcache.Cache
	bus         broadcast.Bus
	redis       *redis.Client
	feed        *changes.Feed
	public, ops *fiber.App
	// reg holds the gateway's metrics; dev adds the provisioner's.
	reg *prometheus.Registry
	// stop ends the gateway's background work: following the change feed
	// and recording API key use.
	stop []func()
}

func newGateway(ctx context.Context, cfg config.Config, log *slog.Logger) (*gateway, error) {
	g := &gateway{}
	if err := g.open(ctx, cfg, log); err != nil {
		g.close()
		return nil, err
	}
	return g, nil
}

func (g *gateway) open(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	tr, err := newTracing(ctx, cfg, log)
	if err != nil {
		return err
	}
	g.stop = append(g.stop, func() {
		// close runs after the listeners drained: every request's span
		// has ended and is flushed here.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tr.shutdown(ctx); err != nil {
			log.Warn("flushing traces failed", "err", err)
		}
	})
	if g.catalogPool, g.store, err = openTracedCatalog(ctx, cfg, tr.pgx); err != nil {
		return err
	}
	if err := requireTenantSchema(g.store); err != nil {
		return err
	}
	tokens, err := identity.NewTokens(cfg.JWTSecret, cfg.JWTPrevious, cfg.JWTTTL)
	if err != nil {
		return err
	}
	if g.bus, g.redis, err = openBus(cfg, log); err != nil {
		return err
	}
	g.feed = changes.New(g.store, g.bus, log)
	// Usage per tenant: requests and bytes from the router, database time
	// and rows from every tenant pool's queries, flushed to the catalog.
	g.usage = metering.NewStore(g.catalogPool, nil)
	meter := g.usage.NewMeter(metering.Config{Log: log})
	g.stop = append(g.stop, runInBackground(func(ctx context.Context) { meter.Run(ctx, 10*time.Second) }))
	g.pools = poolcache.New(poolcache.Config{
		MaxOpen: cfg.Pools.MaxOpen, MaxTotalConns: cfg.Pools.MaxTotalConns,
		SharedConns: int32(cfg.Pools.SharedConns), DedicatedConns: int32(cfg.Pools.DedicatedConns),
		ConnectTimeout: cfg.Pools.ConnectTimeout, AppName: "tenantgate", MaxServerConns: cfg.Pools.MaxServerConns,
		Tracer: tracers(tr.pgx, meter.Tracer()),
	}, poolSource(g.store, cfg), log)
	hub := events.NewHub(g.bus, log)
	c := router.Caches{
		Events:      hub,
		Placements:  placement.New(100_000, cfg.Placement.TTL, g.store.Tenant),
		Keys:        identity.NewKeys(keySource(g.store), 100_000, time.Minute, 10*time.Second),
		Principals:  identity.NewPrincipals(g.store.User, 100_000, 5*time.Minute),
		Revocations: identity.NewRevocations(),
	}
	if err := loadRevocations(ctx, c, g.store); err != nil {
		return err
	}
	g.stop = append(g.stop, g.feed.Follow(c.Apply))
	touches := g.store.NewKeyTouches(log)
	g.stop = append(g.stop, runInBackground(func(ctx context.Context) { touches.Run(ctx, 5*time.Second) }))

	reg := newRegistry()
	g.reg = reg
	reg.MustRegister(router.PoolCollector{Pools: g.pools}, router.PlacementCollector{Placements: c.Placements})
	hub.MaxPerOrganization = cfg.Events.MaxSocketsPerOrganization
	svc := service.New(service.Deps{
		Catalog: g.store, Tenants: c.Placements.Lookup, Data: tenantdb.NewStores(tenantdb.NewScope(leaseFunc(g.pools))), Plans: planLimits(cfg),
		Tokens: tokens, Keys: c.Keys, Principals: c.Principals, Revocations: c.Revocations, Changes: g.feed, Events: hub,
		Throttle: g.throttle(cfg.RedisPrefix, log), RateLimiter: g.rateLimiter(cfg.RedisPrefix, log),
		LoginThrottle: service.LoginPolicy(cfg.Login), SignupMode: cfg.Signup.Mode,
		CreateOrganization: signupCreator(cfg, g.store, log), KeyUsed: touches.Touch, Billing: billing(cfg),
		IdempotencySecret: idempotencySecret(cfg.JWTSecret), ExportsPerDay: cfg.Export.PerDay, Usage: g.usage, PasswordParams: identity.DefaultPasswordParams, Log: log,
	})
	g.public = router.New(router.Deps{
		Service: svc, Events: hub, AllowedOrigins: cfg.Events.AllowedOrigins, Usage: meter,
		Log: log, Metrics: router.NewMetrics(reg, cfg.Metrics.TopTenants), RequestTimeout: cfg.RequestTimeout, BaseDomain: cfg.BaseDomain,
		ProxyHeader: cfg.ProxyHeader, TrustedProxies: cfg.TrustedProxies, Tracer: tr.provider,
	})
	g.ops = router.NewOps(router.OpsDeps{
		Catalog: g.store, Pools: g.pools, Degradable: g.degradable(), AdminToken: cfg.AdminToken, Gatherer: reg, Log: log,
	})
	return nil
}

// newRegistry is a metrics registry with the Go runtime's and the
// process's series.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// loadRevocations makes a starting replica refuse every logged-out token
// that has not expired yet.
func loadRevocations(ctx context.Context, c router.Caches, store *catalog.Store) error {
	revoked, err := store.RevokedTokens(ctx)
	if err != nil {
		return err
	}
	for _, r := range revoked {
		c.Revocations.Add(r.JTI, r.Expires)
	}
	return nil
}

func keySource(store *catalog.Store) identity.KeySource {
	return func(ctx context.Context, prefix string) (identity.KeyRecord, error) {
		k, err := store.APIKeyByPrefix(ctx, prefix)
		return identity.KeyRecord(k), err
	}
}

// idempotencySecret keys the HMAC of Idempotency-Key fingerprints: derived
// from jwt_secret, so every replica has the same one and nothing new needs
// configuring; the label keeps it apart from the signing key itself.
func idempotencySecret(jwtSecret string) []byte {
	m := hmac.New(sha256.New, []byte(jwtSecret))
	m.Write([]byte("tenantgate idempotency fingerprints v1"))
	return m.Sum(nil)
}

// signupCreator places signups on the free plan.
func signupCreator(cfg config.Config, store *catalog.Store, log *slog.Logger) service.OrganizationCreator {
	p := provisioner.New(provisionerConfig(cfg), store, log)
	return func(ctx context.Context, slug, name, email, hash string, status tenancy.Status) (tenancy.Organization, error) {
		return p.CreateOrganization(ctx, provisioner.CreateOrganization{Slug: slug, Name: name, Plan: tenancy.PlanFree,
			Status: status, OwnerEmail: email, OwnerPasswordHash: hash})
	}
}

// throttle counts in Redis when there is one, so limits hold across
// replicas, and in process when there is none or it is down.
func (g *gateway) throttle(prefix string, log *slog.Logger) throttle.Counter {
	local := throttle.NewLocal(100_000)
	if g.redis == nil {
		return local
	}
	return throttle.WithFallback(throttle.NewRedis(g.redis, prefix+"throttle:"), local, log)
}

// rateLimiter enforces plan rps across replicas through Redis, and in
// process when there is none or it is down.
func (g *gateway) rateLimiter(prefix string, log *slog.Logger) ratelimit.Limiter {
	local := ratelimit.NewLocal(100_000)
	if g.redis == nil {
		return local
	}
	return ratelimit.WithFallback(ratelimit.NewBatched(ratelimit.NewRedis(g.redis, prefix), 100_000), local, log)
}

func (g *gateway) degradable() map[string]func(context.Context) error { return redisCheck(g.redis) }

// redisCheck names Redis as a dependency whose loss degrades, when there
// is one.
func redisCheck(client *redis.Client) map[string]func(context.Context) error {
	if client == nil {
		return nil
	}
	return map[string]func(context.Context) error{"redis": func(ctx context.Context) error { return client.Ping(ctx).Err() }}
}

// openBus connects to Redis when redis_url is set, with short timeouts so
// a Redis that hangs degrades requests by milliseconds, not seconds.
func openBus(cfg config.Config, log *slog.Logger) (broadcast.Bus, *redis.Client, error) {
	if cfg.RedisURL == "" {
		return broadcast.NewLocal(), nil, nil
	}
	opts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("redis_url: %w", err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	// One dial attempt and no command retries: callers have in-process
	// fallbacks, so a fast failure is worth more than a late success.
	opts.DialerRetries, opts.MaxRetries = 1, -1
	client := redis.NewClient(opts)
	return broadcast.NewRedis(client, cfg.RedisPrefix, log), client, nil
}

// runInBackground starts fn and returns a stop that cancels it and waits.
func runInBackground(fn func(ctx context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// poolSource tells the pool cache how to reach a database: as the
// application role, never as the owner the catalog records.
func poolSource(store *catalog.Store, cfg config.Config) poolcache.Source {
	return func(ctx context.Context, id string) (poolcache.Target, error) {
		db, err := store.Database(ctx, id)
		if err != nil {
			return poolcache.Target{}, err
		}
		if db.Dirty || db.Quarantined || db.State != "ready" {
			return poolcache.Target{}, tenancy.Unavailable(fmt.Errorf("database %s is dirty, quarantined or %s", db.Name, db.State), 30*time.Second)
		}
		dsn, err := schema.WithUser(db.DSN, cfg.AppRole, cfg.AppRolePassword)
		if err != nil {
			return poolcache.Target{}, err
		}
		return poolcache.Target{DSN: dsn, Pinned: db.Kind == tenancy.KindShared, Server: schema.ServerOf(db.DSN)}, nil
	}
}

func leaseFunc(pools *poolcache.Cache) tenantdb.LeaseFunc {
	return func(ctx context.Context, id string) (*pgxpool.Pool, func(error), error) {
		l, err := pools.Lease(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		return l.Pool(), l.Release, nil
	}
}

// serve listens until ctx ends, then drains HTTP before closing pools, so no
// request loses its connection mid-query.
func (g *gateway) serve(ctx context.Context, httpAddr, adminAddr string, log *slog.Logger) error {
	errc := make(chan error, 2)
	go func() { errc <- g.public.Listen(httpAddr) }()
	go func() { errc <- g.ops.Listen(adminAddr) }()
	log.Info("gateway listening", "http", httpAddr, "admin", adminAddr)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("listen: %w", err)
	}
	log.Info("shutting down: draining requests")
	_ = g.public.ShutdownWithTimeout(20 * time.Second)
	_ = g.ops.ShutdownWithTimeout(5 * time.Second)
	g.close()
	log.Info("stopped")
	return err
}

func (g *gateway) close() {
	for _, stop := range g.stop {
		stop()
	}
	if g.bus != nil {
		g.bus.Close()
	}
	if g.redis != nil {
		g.redis.Close()
	}
	if g.pools != nil {
		g.pools.Close()
	}
	if g.catalogPool != nil {
		g.catalogPool.Close()
	}
}

// planLimits are the configured limits of each plan.
func planLimits(cfg config.Config) map[tenancy.Plan]tenancy.Limits {
	out := map[tenancy.Plan]tenancy.Limits{}
	for _, p := range tenancy.Plans {
		l := cfg.Plans[string(p)]
		out[p] = tenancy.Limits{MaxAgents: l.MaxAgents, MaxAgentMinutes: l.MaxAgentMinutes, RPS: l.RPS, MaxSchedules: l.MaxSchedules, MaxTokens: l.MaxTokens}
	}
	return out
}

// billing is the Stripe side of the configuration.
func billing(cfg config.Config) service.Billing {
	prices := map[string]tenancy.Plan{}
	for price, plan := range cfg.Stripe.Prices {
		prices[price] = tenancy.Plan(plan)
	}
	return service.Billing{WebhookSecret: cfg.Stripe.WebhookSecret, Prices: prices, GracePeriod: cfg.Stripe.GracePeriod}
}

// tracers is every non-nil tracer in one (multitracer panics on a nil).
func tracers(ts ...pgx.QueryTracer) pgx.QueryTracer {
	var live []pgx.QueryTracer
	for _, t := range ts {
		if t != nil {
			live = append(live, t)
		}
	}
	switch len(live) {
	case 0:
		return nil
	case 1:
		return live[0]
	}
	return multitracer.New(live...)
}
