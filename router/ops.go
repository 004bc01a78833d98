package router

import (
	"bufio"
	"context"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
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
	// Follow bounds GET /admin/jobs/{id}?follow=true; zero fields take
	// their defaults.
	Follow FollowLimits
}

// FollowLimits bound the job follows (GET /admin/jobs/{id}?follow=true) of
// one ops app, that is of one process: serve and provisioner run one each.
type FollowLimits struct {
	// Max is how many follows may run at once (default 16): each holds a
	// catalog connection of its own for LISTEN, so a flood of followers
	// must not exhaust the catalog's connections. Past it a follow gets
	// 429 rate_limited with Retry-After.
	Max int
	// Duration is the longest a follow lasts (default 10 min). Then its
	// stream ends, its last line being the newest state, and the client
	// follows again if it still cares.
	Duration time.Duration
	// Heartbeat is the longest a follow stays silent (default 15 s): then
	// it sends the newest state again, so that idle proxies keep the
	// connection open and a client that went away is noticed (by the
	// failing write) and its follow ended.
	Heartbeat time.Duration
	// Poll is how often a follow re-reads the job in case a notification
	// was lost (default 5 s, as --wait).
	Poll time.Duration
}

func (l FollowLimits) withDefaults() FollowLimits {
	if l.Max <= 0 {
		l.Max = 16
	}
	if l.Duration <= 0 {
		l.Duration = 10 * time.Minute
	}
	if l.Heartbeat <= 0 {
		l.Heartbeat = 15 * time.Second
	}
	if l.Poll <= 0 {
		l.Poll = 5 * time.Second
	}
	return l
}

// NewOps returns the ops app: health, readiness, metrics and the admin API.
func NewOps(d OpsDeps) *fiber.App {
	app := newApp(d.Log)
	d.Follow = d.Follow.withDefaults()
	o := &ops{OpsDeps: d, followers: make(chan struct{}, d.Follow.Max)}
	o.stopping, o.stopFollows = context.WithCancel(context.Background())
	// Shutdown closes the listeners first, and fasthttp's shutdown signal
	// ends every follow then (see followJob); this hook, which Fiber runs
	// once the server has stopped, also ends the follows of connections
	// that outlived the shutdown's timeout, and returns once all have
	// stopped, their catalog connections closed.
	var stopOnce sync.Once
	app.Hooks().OnShutdown(func() error {
		stopOnce.Do(o.stopFollowing)
		return nil
	})
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

type ops struct {
	OpsDeps
	// followers holds a token for each running follow (cap: Follow.Max).
	followers chan struct{}
	// stopping ends when the app shuts down; every follow runs under it.
	stopping    context.Context
	stopFollows context.CancelFunc
}

// stopFollowing ends every follow and waits for them: it takes every
// follower token, which also refuses any follow from now on. The wait is
// short but for a follow whose client stopped reading: its write fails
// within the server's WriteTimeout.
func (o *ops) stopFollowing() {
	o.stopFollows()
	for range cap(o.followers) {
		o.followers <- struct{}{}
	}
}

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

// handleJob answers GET /admin/jobs/{id}: the job as JSON or, with
// ?follow=true (or 1), as a stream of it (see followJob).
func (o *ops) handleJob(c *fiber.Ctx) error {
	id, err := pathID(c)
	if err != nil {
		return err
	}
	follow := false
	if c.Context().QueryArgs().Has("follow") {
		switch c.Query("follow") {
		case "true", "1":
			follow = true
		default:
			return tenancy.Errorf(tenancy.CodeInvalid, "follow: must be true or 1")
		}
	}
	j, err := o.Catalog.Job(c.UserContext(), id)
	if err != nil {
		return err
	}
	if !follow {
		return c.JSON(j)
	}
	return o.followJob(c, j)
}

// followJob streams job j as newline-delimited JSON: one line (the object
// GET /admin/jobs/{id} answers) at once, then one for each change of its
// state, step, attempts or error, and ends after the line of its end.
// Lines are states, not events: every Follow.Heartbeat of silence the
// newest state is sent again (a line may repeat the one before it), and a
// client that reconnects loses nothing by starting over. A follow ends,
// its last line the newest state, after Follow.Duration, when the client
// goes away (noticed by a failing write, at the latest at the next
// heartbeat), or when the server shuts down.
//
// The job exists (j was read) before anything is streamed: an unknown job
// is a plain 404. A job that has ended is one line, without a follower.
func (o *ops) followJob(c *fiber.Ctx, j catalog.Job) error {
	encode := c.App().Config().JSONEncoder
	c.Set(fiber.HeaderContentType, "application/x-ndjson")
	if j.Ended() {
		line, err := encode(j)
		if err != nil {
			return err
		}
		return c.Send(append(line, '\n'))
	}
	select {
	case o.followers <- struct{}{}:
	default:
		return &tenancy.Error{Code: tenancy.CodeRateLimited, RetryAfter: 10 * time.Second,
			Message: fmt.Sprintf("this process already streams %d job follows; retry later, or read the job without follow", cap(o.followers))}
	}
	// The stream writer runs in a goroutine of its own once the handler
	// has returned, when fasthttp may have reused c: it holds nothing of
	// c's but values it owns (j was scanned from the catalog) and these.
	stream := &jobStream{
		ops: o, job: j, encode: encode,
		// Closed when the server starts shutting down: nil under app.Test.
		shutdown: c.Context().Done(),
		// fasthttp sets one write deadline per response, WriteTimeout after
		// it starts: a follow outlives it, so each line extends it instead,
		// which keeps the slow-reader bound per line.
		conn: c.Context().Conn(), writeTimeout: c.App().Server().WriteTimeout,
	}
	c.Context().SetBodyStreamWriter(stream.run)
	return nil
}

// jobStream is one follow's stream writer.
type jobStream struct {
	ops          *ops
	job          catalog.Job
	encode       func(any) ([]byte, error)
	shutdown     <-chan struct{}
	conn         net.Conn
	writeTimeout time.Duration
}

// run streams the job to w. It owns the follower token taken for it, and
// the goroutine that follows the job in the catalog: both are given back
// before it returns.
func (s *jobStream) run(w *bufio.Writer) {
	o := s.ops
	defer func() { <-o.followers }()
	ctx, cancel := context.WithTimeout(o.stopping, o.Follow.Duration)
	states := make(chan catalog.Job)
	followed := make(chan struct{})
	var followErr error
	go func() {
		defer close(followed)
		followErr = o.Catalog.FollowJob(ctx, s.job.ID, o.Follow.Poll, func(j catalog.Job) error {
			select {
			case states <- j:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	defer func() { cancel(); <-followed }()

	last := s.job
	if err := s.send(w, last); err != nil {
		return
	}
	heartbeat := time.NewTicker(o.Follow.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case j := <-states:
			if j.SameState(last) { // FollowJob's first read, as j was
				continue
			}
			last = j
			if err := s.send(w, j); err != nil || j.Ended() {
				return
			}
			heartbeat.Reset(o.Follow.Heartbeat)
		case <-heartbeat.C:
			if err := s.send(w, last); err != nil {
				return
			}
		case <-followed:
			// Without the end: Duration is over, the app stops, or a read
			// failed.
			if followErr != nil && ctx.Err() == nil {
				o.Log.Warn("following a job failed", "job", s.job.ID, "err", followErr)
			}
			return
		case <-s.shutdown:
			return
		}
	}
}

// send writes one line and flushes it to the client. An error means the
// client has gone away (or stopped reading for WriteTimeout).
func (s *jobStream) send(w *bufio.Writer, j catalog.Job) error {
	line, err := s.encode(j)
	if err != nil {
		return err
	}
	if s.writeTimeout > 0 && s.conn != nil {
		// Safe from this goroutine: a net.Conn takes concurrent calls, and
		// fasthttp closes the connection rather than reuse it while this
		// stream runs.
		_ = s.conn.SetWriteDeadline(time.Now().Add(s.writeTimeout))
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return err
	}
	return w.Flush()
}
