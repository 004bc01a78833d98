package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/tenantgate/tenantgate/config"
	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/router"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/broadcast"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/changes"
	"github.com/tenantgate/tenantgate/tenancy/events"
	"github.com/tenantgate/tenantgate/tenancy/metering"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/service"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

func (c *cli) provisionerCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "provisioner",
		Short: "Run the provisioner service: provisioning, move and delete jobs, and due schedules",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.config()
			if err != nil {
				return err
			}
			log := c.logger(cfg)
			reg := newRegistry()
			svc, err := newProvisionerService(cmd.Context(), cfg, log, nil, reg)
			if err != nil {
				return err
			}
			defer svc.close()
			// Not in newProvisionerService: dev registers the gateway's
			// pool cache in the same registry.
			reg.MustRegister(router.PoolCollector{Pools: svc.pools})
			// The ops listener gives probes and Prometheus the same
			// endpoints as a gateway's: /healthz, /readyz, /metrics.
			opsErr := make(chan error, 1)
			if addr := cfg.Provisioner.AdminAddr; addr != "" {
				ops := router.NewOps(router.OpsDeps{Catalog: svc.store, Pools: svc.pools, Degradable: redisCheck(svc.redis),
					AdminToken: cfg.AdminToken, Gatherer: reg, Log: log})
				go func() { opsErr <- ops.Listen(addr) }()
				defer func() { _ = ops.ShutdownWithTimeout(5 * time.Second) }()
			}
			log.Info("provisioner running", "admin", cfg.Provisioner.AdminAddr)
			stop := runInBackground(svc.run)
			defer stop()
			select {
			case <-cmd.Context().Done():
			case err = <-opsErr:
				err = fmt.Errorf("ops listener: %w", err)
			}
			log.Info("provisioner stopping")
			return err
		},
	}
	c.flag(cmd.Flags(), "provisioner.admin_addr", "ops listen address (/healthz, /readyz, /metrics); empty for none")
	return cmd
}

// provisionerService is a job worker and a schedule firer with everything
// they need.
type provisionerService struct {
	worker    *provisioner.Worker
	scheduler *provisioner.Scheduler
	audits    *provisioner.Audits
	usage     *provisioner.UsageCollector // storage figures, usage rollup and retention, hourly
	auditsRun time.Duration               // how often the whole fleet is audited
	store     *catalog.Store
	pools     *poolcache.Cache
	redis     *redis.Client // nil without Redis or with a shared bus
	close     func()
}

// run runs the worker and the scheduler until ctx ends.
func (s *provisionerService) run(ctx context.Context) {
	stop := runInBackground(s.scheduler.Run)
	stopAudits := runInBackground(func(ctx context.Context) { s.audits.Run(ctx, s.auditsRun) })
	stopUsage := runInBackground(func(ctx context.Context) { s.usage.Run(ctx, time.Hour) })
	s.worker.Run(ctx)
	stopUsage()
	stopAudits()
	stop()
}

// newProvisionerService builds the service, registering its metrics with
// reg; shared, when not nil, is the bus of a gateway in the same process
// (dev without Redis), so that the gateway hears the service's changes and
// events.
func newProvisionerService(ctx context.Context, cfg config.Config, log *slog.Logger, shared broadcast.Bus, reg prometheus.Registerer) (*provisionerService, error) {
	pool, store, err := openCatalog(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// The scheduler fires into a tenant's database only where the gateway
	// would serve it: not below the schema this binary's queries need.
	if err := requireTenantSchema(store); err != nil {
		pool.Close()
		return nil, err
	}
	bus, client := shared, (*redis.Client)(nil)
	if bus == nil {
		if bus, client, err = openBus(cfg, log); err != nil {
			pool.Close()
			return nil, err
		}
	}
	ownBus := shared == nil
	feed := changes.New(store, bus, log)
	p := provisioner.New(provisionerConfig(cfg), store, log)
	p.Publish = func(ctx context.Context, orgID string) error {
		return feed.Publish(ctx, tenancy.ChangeOrganization, orgID, time.Time{})
	}
	// A move job that carries a plan sets it through the one ChangePlan,
	// which finds the placement now matches the plan.
	svc := service.New(service.Deps{Catalog: store, Changes: feed, Log: log})
	p.ChangePlan = func(ctx context.Context, orgID string, plan tenancy.Plan) error {
		_, err := svc.ChangePlan(ctx, orgID, plan)
		return err
	}
	metrics := provisioner.NewMetrics(reg)
	p.Metrics = metrics
	handlers := p.Handlers()
	// The isolation audit follows every provision and move, and runs over
	// the fleet every audit.interval; an unsafe database is quarantined.
	audits := provisioner.NewAudits(provisionerConfig(cfg), store, log)
	audits.Publish = p.Publish
	for _, kind := range []string{catalog.JobProvision, catalog.JobMove} {
		handlers[kind] = audits.AuditAfter(handlers[kind])
	}
	// Schedules fire through the tenant scope, as the application role.
	pools := poolcache.New(poolcache.Config{
		MaxOpen: cfg.Pools.MaxOpen, MaxTotalConns: cfg.Pools.MaxTotalConns / 2, SharedConns: 4, DedicatedConns: 2,
		ConnectTimeout: cfg.Pools.ConnectTimeout, AppName: "tenantgate-scheduler", MaxServerConns: cfg.Pools.MaxServerConns,
	}, poolSource(store, cfg), log)
	schedules := tenantdb.NewSchedules(tenantdb.NewScope(leaseFunc(pools)))
	scheduler := provisioner.NewScheduler(store, schedules, log)
	hub := events.NewHub(bus, log)
	scheduler.Created = func(ctx context.Context, t tenancy.Tenant, task tenantdb.Task) {
		metrics.ScheduleFired()
		hub.Publish(ctx, events.Event{Type: "task.created", OrganizationID: t.Organization.ID, Data: task})
	}
	reg.MustRegister(provisioner.CatalogCollector{Store: store, Log: log})
	worker := provisioner.NewWorker(store, log, handlers)
	worker.Metrics = metrics
	return &provisionerService{
		worker:    worker,
		scheduler: scheduler,
		audits:    audits,
		usage:     provisioner.NewUsageCollector(store, metering.NewStore(pool, nil), cfg.Usage.Retention, log),
		auditsRun: cfg.Audit.Interval,
		store:     store,
		pools:     pools,
		redis:     client,
		close: func() {
			p.Close()
			pools.Close()
			if ownBus {
				bus.Close()
			}
			if client != nil {
				client.Close()
			}
			pool.Close()
		},
	}, nil
}

// requireTenantSchema makes store treat tenants on databases below the
// newest tenant migration this binary embeds as not ready (see
// catalog.Store.RequireTenantVersion). The gateway and the provisioner
// both call it, so a database is ready for both or for neither.
func requireTenantSchema(store *catalog.Store) error {
	versions, err := schema.Versions(migrations.Tenant, "tenant")
	if err != nil {
		return err
	}
	store.RequireTenantVersion(versions[len(versions)-1])
	return nil
}

// followJob waits for a job to end, printing its steps, and fails if the
// job did. It says so when no provisioner has picked the job up.
func followJob(ctx context.Context, store *catalog.Store, id string, out io.Writer) error {
	return followJobPolling(ctx, store, id, out, 5*time.Second)
}

// followerName is the application_name of followJob's listening
// connection in pg_stat_activity.
const followerName = catalog.JobFollowerName

// followJobPolling is followJob over catalog.Store.FollowJob: the job is
// re-read when the catalog announces a change of it, once whenever the
// listener has (re)connected, and every poll in case an announcement was
// lost. If, once a poll has passed, the newest state seen is still queued
// and never tried, it warns once.
func followJobPolling(ctx context.Context, store *catalog.Store, id string, out io.Writer, poll time.Duration) error {
	// FollowJob runs beside the loop below, which alone writes to out: the
	// warning comes from a timer, not from a change of the job.
	followCtx, stopFollowing := context.WithCancel(ctx)
	states := make(chan catalog.Job)
	followed := make(chan struct{})
	var followErr error
	go func() {
		defer close(followed)
		followErr = store.FollowJob(followCtx, id, poll, func(j catalog.Job) error {
			select {
			case states <- j:
				return nil
			case <-followCtx.Done():
				return followCtx.Err()
			}
		})
	}()
	defer func() { stopFollowing(); <-followed }()

	warn := time.NewTimer(poll)
	defer warn.Stop()
	var last catalog.Job
	polled, warned := false, false
	for {
		select {
		case j := <-states:
			if j.Step != last.Step && j.Step != "" {
				fmt.Fprintf(out, "  %s\n", j.Step)
			}
			last = j
			switch j.State {
			case catalog.JobSucceeded:
				fmt.Fprintf(out, "job %s succeeded\n", id)
				return nil
			case catalog.JobFailed:
				return fmt.Errorf("job %s failed after %d attempts: %s", id, j.Attempts, j.Error)
			}
		case <-warn.C:
			polled = true
		case <-followed:
			if ctx.Err() != nil {
				return fmt.Errorf("stopped waiting; job %s goes on (see /admin/jobs/%s): %w", id, id, ctx.Err())
			}
			return followErr
		}
		if polled && !warned && last.State == catalog.JobQueued && last.Attempts == 0 {
			fmt.Fprintln(out, "  still queued: is a provisioner running? (`tenantgate provisioner`, or `tenantgate dev`)")
			warned = true
		}
	}
}
