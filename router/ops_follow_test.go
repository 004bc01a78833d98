package router

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

const opsToken = "ops-test-admin-token"

// opsFollow is an ops app over a catalog of the test's own, served on a
// real listener: a follow is a stream read while the test changes the
// job, which app.Test (it returns once the response has ended) cannot do.
type opsFollow struct {
	env    *tenancytest.Env
	store  *catalog.Store
	app    *fiber.App
	url    string // http://host:port of the ops listener
	dbName string // the catalog database
	client *http.Client
	server *pgx.Conn // to the test server, for pg_stat_activity
}

// newOpsFollow serves an ops app with limits; before, if not nil, adjusts
// the app before it listens.
func newOpsFollow(t *testing.T, limits FollowLimits, before func(*fiber.App)) *opsFollow {
	t.Helper()
	ctx := testCtx(t)
	e := tenancytest.NewEnv(t)
	require.NoError(t, schema.CreateDatabase(ctx, e.ServerURL, e.Prefix+"catalog"))
	_, err := schema.Migrate(ctx, e.CatalogURL, migrations.Catalog, "catalog", 0)
	require.NoError(t, err)
	pool, err := pgxpool.New(ctx, e.CatalogURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	pools := poolcache.New(poolcache.Config{}, nil, quiet)
	t.Cleanup(pools.Close)
	f := &opsFollow{env: e, store: catalog.New(pool), dbName: e.Prefix + "catalog", server: tenancytest.Connect(t, e.ServerURL)}
	f.app = NewOps(OpsDeps{Catalog: f.store, Pools: pools, AdminToken: opsToken, Log: quiet, Follow: limits})
	if before != nil {
		before(f.app)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.url = "http://" + ln.Addr().String()
	served := make(chan struct{})
	go func() { defer close(served); _ = f.app.Listener(ln) }()
	tr := &http.Transport{DisableKeepAlives: true}
	f.client = &http.Client{Transport: tr}
	// Before the catalog pool closes (cleanups run last first): the
	// shutdown ends every follow and waits for them.
	t.Cleanup(func() {
		_ = f.app.ShutdownWithTimeout(30 * time.Second)
		<-served
		tr.CloseIdleConnections()
	})
	return f
}

// queued enqueues a job.
func (f *opsFollow) queued(t *testing.T) catalog.Job {
	t.Helper()
	j, err := f.store.EnqueueJob(testCtx(t), catalog.JobDelete, "", catalog.DeletePayload{})
	require.NoError(t, err)
	return j
}

// get sends GET path with the admin token (none if token is empty).
func (f *opsFollow) get(t *testing.T, path, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", f.url+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := f.client.Do(req)
	require.NoError(t, err)
	return res
}

// followers counts the catalog connections that follows hold.
func (f *opsFollow) followers(t *testing.T) int {
	t.Helper()
	var n int
	require.NoError(t, f.server.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = $1 AND application_name = $2`, f.dbName, catalog.JobFollowerName).Scan(&n))
	return n
}

// listening waits until n follows listen (their LISTEN done, now idle),
// and returns their backend pids.
func (f *opsFollow) listening(t *testing.T, n int) []int {
	t.Helper()
	var pids []int
	require.Eventually(t, func() bool {
		rows, err := f.server.Query(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE datname = $1 AND application_name = $2 AND state = 'idle' AND query LIKE 'LISTEN%'`,
			f.dbName, catalog.JobFollowerName)
		require.NoError(t, err)
		pids, err = pgx.CollectRows(rows, pgx.RowTo[int])
		require.NoError(t, err)
		return len(pids) == n
	}, 30*time.Second, 10*time.Millisecond, "%d follows listen", n)
	return pids
}

// noFollowers waits until no follow holds a catalog connection.
func (f *opsFollow) noFollowers(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool { return f.followers(t) == 0 }, 30*time.Second, 10*time.Millisecond,
		"every follow's catalog connection is closed")
}

// stream is a follow's response, read line by line in the background.
type stream struct {
	res   *http.Response
	lines chan string // closed at the end of the body
}

// follow starts GET /admin/jobs/{id}?follow=true and checks it streams.
func (f *opsFollow) follow(t *testing.T, id string) *stream {
	t.Helper()
	res := f.get(t, "/admin/jobs/"+id+"?follow=true", opsToken)
	if res.StatusCode != 200 {
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("follow: %d %s", res.StatusCode, raw)
	}
	require.Equal(t, "application/x-ndjson", res.Header.Get("Content-Type"))
	s := &stream{res: res, lines: make(chan string)}
	quit := make(chan struct{})
	read := make(chan struct{})
	go func() {
		defer close(read)
		defer close(s.lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			case <-quit:
				return
			}
		}
	}()
	t.Cleanup(func() { close(quit); res.Body.Close(); <-read })
	return s
}

// next waits for the stream's next line, a job.
func (s *stream) next(t *testing.T, what string) catalog.Job {
	t.Helper()
	select {
	case line, ok := <-s.lines:
		require.True(t, ok, "the stream ended before %s", what)
		var j catalog.Job
		require.NoError(t, json.Unmarshal([]byte(line), &j), line)
		return j
	case <-time.After(30 * time.Second):
		t.Fatalf("no line for %s", what)
	}
	return catalog.Job{}
}

// end waits for the stream to end, with no line before.
func (s *stream) end(t *testing.T) {
	t.Helper()
	select {
	case line, ok := <-s.lines:
		require.False(t, ok, "the stream ends, with no more lines: %s", line)
	case <-time.After(30 * time.Second):
		t.Fatal("the stream did not end")
	}
}

// finish moves a job as a worker does, through the catalog store: claimed,
// at a step, then succeeded.
func finish(t *testing.T, store *catalog.Store, id string) {
	t.Helper()
	ctx := testCtx(t)
	_, err := store.ClaimJob(ctx, "hand", time.Minute)
	require.NoError(t, err)
	require.NoError(t, store.ExtendJob(ctx, id, "hand", "copy", time.Minute))
	require.NoError(t, store.FinishJob(ctx, id, "hand", "", nil, 0))
}

// TestJobFollowSeesEachStep: a follow streams the job at once, then each
// change a worker makes, woken by the catalog's notifications alone (its
// poll is an hour away), and ends after the end; each line is the object
// the plain GET answers.
func TestJobFollowSeesEachStep(t *testing.T) {
	t.Parallel()
	f := newOpsFollow(t, FollowLimits{Poll: time.Hour, Heartbeat: time.Hour}, nil)
	job := f.queued(t)
	ctx := testCtx(t)

	s := f.follow(t, job.ID)
	j := s.next(t, "the job as it is")
	require.Equal(t, catalog.JobQueued, j.State)
	f.listening(t, 1)

	_, err := f.store.ClaimJob(ctx, "hand", time.Minute)
	require.NoError(t, err)
	j = s.next(t, "the claim")
	require.Equal(t, catalog.JobRunning, j.State)
	require.Equal(t, 1, j.Attempts)
	require.NoError(t, f.store.ExtendJob(ctx, job.ID, "hand", "copy", time.Minute))
	require.Equal(t, "copy", s.next(t, "the step").Step)
	require.NoError(t, f.store.ExtendJob(ctx, job.ID, "hand", "verify", time.Minute))
	require.Equal(t, "verify", s.next(t, "the next step").Step)
	require.NoError(t, f.store.FinishJob(ctx, job.ID, "hand", "", nil, 0))
	j = s.next(t, "the end")
	require.Equal(t, catalog.JobSucceeded, j.State)
	s.end(t)
	f.noFollowers(t)

	// The lines are the plain answer's object, field for field.
	plain := f.get(t, "/admin/jobs/"+job.ID, opsToken)
	defer plain.Body.Close()
	require.Equal(t, 200, plain.StatusCode)
	var want map[string]any
	require.NoError(t, json.NewDecoder(plain.Body).Decode(&want))
	ended := f.get(t, "/admin/jobs/"+job.ID+"?follow=1", opsToken)
	defer ended.Body.Close()
	raw, err := io.ReadAll(ended.Body)
	require.NoError(t, err)
	var got map[string]any
	require.NoError(t, json.Unmarshal(raw, &got))
	require.Equal(t, want, got)
}

// TestJobFollowRefusals: an ended job is one line and the end; an unknown
// or malformed id, or a follow value other than true or 1, gets the plain
// error answer, not a stream; the admin token is required as for every
// admin call.
func TestJobFollowRefusals(t *testing.T) {
	t.Parallel()
	f := newOpsFollow(t, FollowLimits{Poll: time.Hour}, nil)
	job := f.queued(t)
	finish(t, f.store, job.ID)

	res := f.get(t, "/admin/jobs/"+job.ID+"?follow=true", opsToken)
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
	require.Equal(t, "application/x-ndjson", res.Header.Get("Content-Type"))
	var j catalog.Job
	require.NoError(t, json.Unmarshal(raw, &j))
	require.Equal(t, catalog.JobSucceeded, j.State)
	require.Equal(t, 1, strings.Count(string(raw), "\n"), "one line: %s", raw)
	require.True(t, strings.HasSuffix(string(raw), "\n"), "one line: %s", raw)

	refused := func(path, token string, status int, code string) {
		t.Helper()
		res := f.get(t, path, token)
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		require.Equal(t, status, res.StatusCode, "%s: %s", path, raw)
		require.Equal(t, "application/json", res.Header.Get("Content-Type"), "%s is not streamed", path)
		var body map[string]any
		require.NoError(t, json.Unmarshal(raw, &body), string(raw))
		require.Equal(t, code, body["error"].(map[string]any)["code"], string(raw))
		require.Equal(t, res.Header.Get("X-Request-Id"), body["requestId"])
	}
	refused("/admin/jobs/00000000-0000-0000-0000-000000000000?follow=true", opsToken, 404, "not_found")
	refused("/admin/jobs/not-a-uuid?follow=true", opsToken, 400, "invalid_request")
	for _, v := range []string{"yes", "false", "0", "", "TRUE"} {
		refused("/admin/jobs/"+job.ID+"?follow="+v, opsToken, 400, "invalid_request")
	}
	refused("/admin/jobs/"+job.ID+"?follow=true", "", 401, "unauthorized")
	refused("/admin/jobs/"+job.ID+"?follow=true", "wrong-token", 401, "unauthorized")
	require.Zero(t, f.followers(t))

	// With no admin token configured the admin API is closed: 403.
	closed := NewOps(OpsDeps{Catalog: f.store, Log: quiet})
	res, err = closed.Test(httptest.NewRequest("GET", "/admin/jobs/"+job.ID+"?follow=true", nil), -1)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, 403, res.StatusCode)
}

// TestJobFollowCap: past Follow.Max running follows a follow gets 429 with
// Retry-After; the follows give their slots back when they end.
func TestJobFollowCap(t *testing.T) {
	t.Parallel()
	f := newOpsFollow(t, FollowLimits{Max: 2, Poll: time.Hour}, nil)
	job := f.queued(t)
	for range 2 {
		f.follow(t, job.ID).next(t, "the job as it is")
	}
	res := f.get(t, "/admin/jobs/"+job.ID+"?follow=true", opsToken)
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	require.Equal(t, 429, res.StatusCode, string(raw))
	require.NotEmpty(t, res.Header.Get("Retry-After"))
	require.Contains(t, string(raw), `"code":"rate_limited"`)
	res = f.get(t, "/admin/jobs/"+job.ID, opsToken)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode, "reading a job without follow is not capped")

	// Both end with the job; then a follow of another job is admitted.
	f.listening(t, 2)
	finish(t, f.store, job.ID)
	f.noFollowers(t)
	other := f.queued(t)
	require.Eventually(t, func() bool {
		res := f.get(t, "/admin/jobs/"+other.ID+"?follow=true", opsToken)
		res.Body.Close()
		return res.StatusCode == 200
	}, 30*time.Second, 10*time.Millisecond, "the ended follows gave their slots back")
}

// TestJobFollowClientGoesAway: a client that disconnects mid-follow is
// noticed at the next write (a heartbeat), and its follow ends: its slot
// and its catalog connection are given back.
func TestJobFollowClientGoesAway(t *testing.T) {
	t.Parallel()
	f := newOpsFollow(t, FollowLimits{Max: 1, Poll: time.Hour, Heartbeat: 20 * time.Millisecond}, nil)
	job := f.queued(t)

	res := f.get(t, "/admin/jobs/"+job.ID+"?follow=true", opsToken)
	require.Equal(t, 200, res.StatusCode)
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, line, `"state":"queued"`)
	f.listening(t, 1)
	require.NoError(t, res.Body.Close()) // the client goes away

	f.noFollowers(t)
	require.Eventually(t, func() bool {
		res := f.get(t, "/admin/jobs/"+job.ID+"?follow=true", opsToken)
		res.Body.Close()
		return res.StatusCode == 200
	}, 30*time.Second, 10*time.Millisecond, "the slot is free again")
}

// TestJobFollowSurvivesTheCatalogConnection: the follow's listening
// connection is terminated and the job ends while the catalog refuses new
// connections, so no notification of it reaches the follow; once the
// catalog takes connections again the follow listens again, reads once
// (its poll is an hour away) and streams the end.
func TestJobFollowSurvivesTheCatalogConnection(t *testing.T) {
	t.Parallel()
	f := newOpsFollow(t, FollowLimits{Poll: time.Hour, Heartbeat: time.Hour}, nil)
	job := f.queued(t)
	ctx := testCtx(t)
	// The hand that moves the job has its one connection open before the
	// catalog refuses new ones.
	cfg, err := pgxpool.ParseConfig(f.env.CatalogURL)
	require.NoError(t, err)
	cfg.MaxConns = 1
	handPool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(handPool.Close)
	require.NoError(t, handPool.Ping(ctx))

	s := f.follow(t, job.ID)
	require.Equal(t, catalog.JobQueued, s.next(t, "the job as it is").State)
	pid := f.listening(t, 1)[0]

	allow := func(yes bool) {
		_, err := f.server.Exec(context.Background(), `ALTER DATABASE `+pgx.Identifier{f.dbName}.Sanitize()+
			` ALLOW_CONNECTIONS `+map[bool]string{true: "true", false: "false"}[yes])
		require.NoError(t, err)
	}
	allow(false)
	t.Cleanup(func() { allow(true) })
	var killed bool
	require.NoError(t, f.server.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&killed))
	require.True(t, killed)
	f.noFollowers(t)

	finish(t, catalog.New(handPool), job.ID)
	allow(true)
	j := s.next(t, "the end, read once listening again")
	require.Equal(t, catalog.JobSucceeded, j.State)
	require.Equal(t, "copy", j.Step)
	s.end(t)
	f.noFollowers(t)
}

// TestJobFollowBounds: a follow sends the newest state again while the job
// is quiet (the heartbeat), outlives the server's write timeout, and ends
// by itself after Follow.Duration with the newest state as its last line.
func TestJobFollowBounds(t *testing.T) {
	t.Parallel()
	t.Run("heartbeat", func(t *testing.T) {
		t.Parallel()
		// A write timeout far shorter than the 50 heartbeats below take
		// (at least 50 × 20 ms): the stream must not be cut by it.
		f := newOpsFollow(t, FollowLimits{Poll: time.Hour, Heartbeat: 20 * time.Millisecond},
			func(app *fiber.App) { app.Server().WriteTimeout = 300 * time.Millisecond })
		job := f.queued(t)
		s := f.follow(t, job.ID)
		first := s.next(t, "the job as it is")
		for i := range 50 {
			require.Equal(t, first, s.next(t, "a heartbeat"), "heartbeat %d repeats the newest state", i)
		}
		finish(t, f.store, job.ID)
		for {
			if j := s.next(t, "the end"); j.State == catalog.JobSucceeded {
				break
			}
		}
		s.end(t)
	})
	t.Run("duration", func(t *testing.T) {
		t.Parallel()
		f := newOpsFollow(t, FollowLimits{Poll: time.Hour, Heartbeat: time.Hour, Duration: 200 * time.Millisecond}, nil)
		job := f.queued(t)
		s := f.follow(t, job.ID)
		require.Equal(t, catalog.JobQueued, s.next(t, "the job as it is").State)
		s.end(t)
		f.noFollowers(t)
	})
}

// TestJobFollowEndsAtShutdown: shutting the ops app down ends its follows,
// and returns once they have closed their catalog connections.
func TestJobFollowEndsAtShutdown(t *testing.T) {
	t.Parallel()
	f := newOpsFollow(t, FollowLimits{Poll: time.Hour, Heartbeat: time.Hour}, nil)
	job := f.queued(t)
	s := f.follow(t, job.ID)
	s.next(t, "the job as it is")
	f.listening(t, 1)

	require.NoError(t, f.app.ShutdownWithTimeout(30*time.Second))
	s.end(t)
	f.noFollowers(t)
}
