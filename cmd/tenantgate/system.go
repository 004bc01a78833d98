package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
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
	"github.com/tenantgate/tenantgate/tenancy/identity"
	"github.com/tenantgate/tenantgate/tenancy/placement"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

// placementChannel carries organization ids whose cached tenant is stale.
const placementChannel = "placement"

func provisionerConfig(cfg config.Config) provisioner.Config {
	return provisioner.Config{
		CatalogURL: cfg.DatabaseURL, SharedURL: cfg.SharedDatabaseURL,
		DedicatedServerURL: cfg.Dedicated.ServerURL, DedicatedPrefix: cfg.Dedicated.DatabasePrefix,
		AppRole: cfg.AppRole, AppRolePassword: cfg.AppRolePassword,
	}
}

// openCatalog connects to the catalog database.
func openCatalog(ctx context.Context, cfg config.Config) (*pgxpool.Pool, *catalog.Store, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, nil, fmt.Errorf("database_url: %w", err)
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
	catalogPool      *pgxpool.Pool
	store            *catalog.Store
	pools            *poolcache.Cache
	bus              broadcast.Bus
	redis            *redis.Client
	public, ops      *fiber.App
	stopInvalidation func()
}

func newGateway(ctx context.Context, cfg config.Config, log *slog.Logger) (*gateway, error) {
	g := &gateway{}
	var err error
	if g.catalogPool, g.store, err = openCatalog(ctx, cfg); err != nil {
		return nil, err
	}
	tokens, err := identity.NewTokens(cfg.JWTSecret, cfg.JWTPrevious, cfg.JWTTTL)
	if err != nil {
		g.close()
		return nil, err
	}
	g.pools = poolcache.New(poolcache.Config{
		MaxOpen: cfg.Pools.MaxOpen, MaxTotalConns: cfg.Pools.MaxTotalConns,
		SharedConns: int32(cfg.Pools.SharedConns), DedicatedConns: int32(cfg.Pools.DedicatedConns),
		ConnectTimeout: cfg.Pools.ConnectTimeout, AppName: "tenantgate",
	}, poolSource(g.store, cfg), log)
	placements := placement.New(100_000, cfg.Placement.TTL, g.store.Tenant)
	degradable := map[string]func(context.Context) error{}
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			g.close()
			return nil, fmt.Errorf("redis_url: %w", err)
		}
		g.redis = redis.NewClient(opts)
		g.bus = broadcast.NewRedis(g.redis, cfg.RedisPrefix, log)
		degradable["redis"] = func(ctx context.Context) error { return g.redis.Ping(ctx).Err() }
	} else {
		g.bus = broadcast.NewLocal()
	}
	g.stopInvalidation = g.bus.Subscribe(placementChannel, func(orgID []byte) { placements.Invalidate(string(orgID)) })

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		router.PoolCollector{Pools: g.pools})
	scope := tenantdb.NewScope(leaseFunc(g.pools))
	g.public = router.New(router.Deps{
		Catalog: g.store, Tenants: placements.Lookup, Agents: tenantdb.NewAgents(scope), Tokens: tokens, Log: log,
		Metrics: router.NewMetrics(reg), RequestTimeout: cfg.RequestTimeout, BaseDomain: cfg.BaseDomain,
		PasswordParams: identity.DefaultPasswordParams,
	})
	g.ops = router.NewOps(router.OpsDeps{
		Catalog: g.store, Pools: g.pools, Degradable: degradable, AdminToken: cfg.AdminToken, Gatherer: reg, Log: log,
	})
	return g, nil
}

// poolSource tells the pool cache how to reach a database: as the
// application role, never as the owner the catalog records.
func poolSource(store *catalog.Store, cfg config.Config) poolcache.Source {
	return func(ctx context.Context, id string) (poolcache.Target, error) {
		db, err := store.Database(ctx, id)
		if err != nil {
			return poolcache.Target{}, err
		}
		if db.Dirty || db.State != "ready" {
			return poolcache.Target{}, tenancy.Unavailable(fmt.Errorf("database %s is dirty or %s", db.Name, db.State), 30*time.Second)
		}
		dsn, err := schema.WithUser(db.DSN, cfg.AppRole, cfg.AppRolePassword)
		if err != nil {
			return poolcache.Target{}, err
		}
		return poolcache.Target{DSN: dsn, Pinned: db.Kind == tenancy.KindShared}, nil
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
	if g.stopInvalidation != nil {
		g.stopInvalidation()
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
