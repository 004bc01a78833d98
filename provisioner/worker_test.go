package provisioner

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

type fleet struct {
	env   *tenancytest.Env
	store *catalog.Store
	prov  *Provisioner
	cfg   Config
}

func newFleet(t testing.TB) *fleet {
	e := tenancytest.NewEnv(t)
	cfg := configFor(e)
	ctx := context.Background()
	require.NoError(t, Init(ctx, cfg, quiet))
	pool, err := pgxpool.New(ctx, e.CatalogURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store := catalog.New(pool)
	prov := New(cfg, store, quiet)
	t.Cleanup(prov.Close)
	return &fleet{env: e, store: store, prov: prov, cfg: cfg}
}

// worker runs a worker with short timings until the test ends.
func (f *fleet) worker(t *testing.T, handlers map[string]Handler) {
	w := NewWorker(f.store, quiet, handlers)
	w.Lease, w.Poll = 300*time.Millisecond, 20*time.Millisecond
	run(t, w)
}

// run runs w until the test ends, and waits for it to stop.
func run(t *testing.T, w *Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// server is a connection to the test's PostgreSQL server, closed when the
// test ends.
func (f *fleet) server(t *testing.T) *pgx.Conn { return tenancytest.Connect(t, f.env.ServerURL) }

// listening waits until one connection named appName listens on the
// catalog (its LISTEN done, now idle) other than those in not, and
// returns its backend pid.
func (f *fleet) listening(t *testing.T, appName string, not ...int) int {
	t.Helper()
	name, err := schema.DatabaseName(f.env.CatalogURL)
	require.NoError(t, err)
	conn := f.server(t)
	var pid int
	require.Eventually(t, func() bool {
		err := conn.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE datname = $1 AND application_name = $2 AND state = 'idle' AND query LIKE 'LISTEN%'
				AND NOT pid = ANY($3)`, name, appName, append(not, 0)).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return false
		}
		require.NoError(t, err)
		return true
	}, 30*time.Second, 10*time.Millisecond, "a %s listens", appName)
	return pid
}

// TestIdleWorkerWakesOnNotification: a job enqueued while the worker idles
// is run although the worker's poll is an hour away: the catalog's
// notification woke it.
func TestIdleWorkerWakesOnNotification(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	w := NewWorker(f.store, quiet, f.prov.Handlers())
	w.Poll = time.Hour
	run(t, w)
	f.listening(t, ListenerName) // idle: its first claim found nothing

	_, jobID, err := f.prov.EnqueueOrganization(context.Background(), CreateOrganization{Slug: "woken", Name: "W", Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	j := f.waitJob(t, jobID)
	require.Equal(t, catalog.JobSucceeded, j.State, j.Error)
}

// TestWorkerListensAgainAfterItsConnectionDies: the listening connection
// is terminated, and a job enqueued before the worker listens again (its
// notification reaches nobody) is still run, with the poll an hour away:
// after reconnecting, the worker claims once as if notified.
func TestWorkerListensAgainAfterItsConnectionDies(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	w := NewWorker(f.store, quiet, f.prov.Handlers())
	w.Poll = time.Hour
	// Reconnections wait for the gate, so the job below is surely
	// enqueued while nobody listens.
	gate := make(chan struct{})
	var connects atomic.Int64
	connect := w.Listen
	w.Listen = func(ctx context.Context) (*pgx.Conn, error) {
		if connects.Add(1) > 1 {
			select {
			case <-gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return connect(ctx)
	}
	run(t, w)
	pid := f.listening(t, ListenerName)

	var killed bool
	require.NoError(t, f.server(t).QueryRow(context.Background(),
		`SELECT pg_terminate_backend($1)`, pid).Scan(&killed))
	require.True(t, killed)
	require.Eventually(t, func() bool { return connects.Load() >= 2 }, 30*time.Second, 10*time.Millisecond,
		"the worker notices its connection died and connects again")
	_, jobID, err := f.prov.EnqueueOrganization(context.Background(), CreateOrganization{Slug: "missed", Name: "M", Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	close(gate)

	j := f.waitJob(t, jobID)
	require.Equal(t, catalog.JobSucceeded, j.State, j.Error)
	f.listening(t, ListenerName, pid) // and it listens again
}

// TestRetryRunsWhenDue: a failed job queued again after its backoff is
// run once the backoff is over, with the poll an hour away and nothing
// notifying the worker then: an idle worker sleeps only until the next job
// comes due.
func TestRetryRunsWhenDue(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	var calls atomic.Int64
	w := NewWorker(f.store, quiet, map[string]Handler{catalog.JobDelete: func(ctx context.Context, job catalog.Job, step func(string)) error {
		if calls.Add(1) == 1 {
			return errors.New("transient")
		}
		return nil
	}})
	w.Poll = time.Hour
	run(t, w)
	f.listening(t, ListenerName)
	j, err := f.store.EnqueueJob(context.Background(), catalog.JobDelete, "", catalog.DeletePayload{})
	require.NoError(t, err)
	done := f.waitJob(t, j.ID)
	require.Equal(t, catalog.JobSucceeded, done.State, done.Error)
	require.Equal(t, 2, done.Attempts, "failed once, then retried")
}

// TestEachStepIsAnnounced: a follower listening on a job's channel hears
// of each step as it starts, not at the next lease renewal (an hour away
// here): the handler goes on to its next step only once the follower has
// read the current one.
func TestEachStepIsAnnounced(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	seen := make(chan string)
	steps := []string{"one", "two", "three"}
	w := NewWorker(f.store, quiet, map[string]Handler{catalog.JobDelete: func(ctx context.Context, job catalog.Job, step func(string)) error {
		for _, s := range steps {
			step(s)
			select {
			case got := <-seen:
				if got != s {
					return fmt.Errorf("the follower read step %q, want %q", got, s)
				}
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	}})
	w.Lease, w.Poll = time.Hour, time.Hour
	j, err := f.store.EnqueueJob(context.Background(), catalog.JobDelete, "", map[string]string{})
	require.NoError(t, err)

	follower := tenancytest.Connect(t, f.env.CatalogURL)
	_, err = follower.Exec(context.Background(), "LISTEN "+pgx.Identifier{catalog.JobChannel(j.ID)}.Sanitize())
	require.NoError(t, err)
	run(t, w)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var states []string
	last := ""
	for {
		n, err := follower.WaitForNotification(ctx)
		require.NoError(t, err, "notified so far: %v", states)
		states = append(states, n.Payload)
		got, err := f.store.Job(ctx, j.ID)
		require.NoError(t, err)
		if got.State == catalog.JobSucceeded || got.State == catalog.JobFailed {
			require.Equal(t, catalog.JobSucceeded, got.State, got.Error)
			require.Equal(t, "three", got.Step)
			break
		}
		if got.Step != last {
			last = got.Step
			select {
			case seen <- got.Step:
			case <-ctx.Done():
				t.Fatalf("the handler did not take step %q", got.Step)
			}
		}
	}
	require.Equal(t, catalog.JobRunning, states[0], "the claim is announced")
	require.Equal(t, catalog.JobSucceeded, states[len(states)-1], "and the end")
}

func (f *fleet) waitJob(t *testing.T, id string) catalog.Job {
	var j catalog.Job
	require.Eventually(t, func() bool {
		var err error
		j, err = f.store.Job(context.Background(), id)
		require.NoError(t, err)
		return j.State == catalog.JobSucceeded || j.State == catalog.JobFailed
	}, 30*time.Second, 20*time.Millisecond)
	return j
}

func (f *fleet) databases(t *testing.T, name string) int {
	var n int
	conn := tenancytest.Connect(t, f.env.ServerURL)
	require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_database WHERE datname = $1`, name).Scan(&n))
	return n
}

func TestProvisionThroughTheQueue(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.worker(t, f.prov.Handlers())
	org, jobID, err := f.prov.EnqueueOrganization(context.Background(), CreateOrganization{Slug: "queued", Name: "Q", Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	require.NotEmpty(t, jobID)
	tn, err := f.store.Tenant(context.Background(), org.ID)
	require.NoError(t, err)
	require.False(t, tn.Placement.DatabaseReady, "refused until provisioned")

	j := f.waitJob(t, jobID)
	require.Equal(t, catalog.JobSucceeded, j.State, j.Error)
	require.Equal(t, "ready", j.Step)
	tn, err = f.store.Tenant(context.Background(), org.ID)
	require.NoError(t, err)
	require.True(t, tn.Placement.DatabaseReady)
	require.Equal(t, 1, f.databases(t, f.cfg.DedicatedName("queued")))

	_, _, err = f.prov.EnqueueOrganization(context.Background(), CreateOrganization{Slug: "shared-one", Name: "S", Plan: tenancy.PlanPro})
	require.NoError(t, err, "a shared organization needs no job")
}

// TestEnqueueIsOneTransaction: an organization is queued with its job or
// not at all. Were they two writes, a process killed between them would
// leave an organization whose database no job makes, and whose slug a
// retry finds taken. A trigger of the test makes the job's insert fail,
// as a killed process's never-sent insert would.
func TestEnqueueIsOneTransaction(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ctx := context.Background()
	catalogDB := tenancytest.Connect(t, f.env.CatalogURL)
	_, err := catalogDB.Exec(ctx, `
		CREATE FUNCTION test_refuse_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'test: no jobs'; END $$;
		CREATE TRIGGER test_refuse_jobs BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION test_refuse_jobs();`)
	require.NoError(t, err)
	req := CreateOrganization{Slug: "atomic", Name: "A", Plan: tenancy.PlanEnterprise, OwnerEmail: "owner@atomic.test", OwnerPasswordHash: "x"}
	_, _, err = f.prov.EnqueueOrganization(ctx, req)
	require.Error(t, err)
	_, err = f.store.OrganizationBySlug(ctx, "atomic")
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err), "no organization without its job")

	_, err = catalogDB.Exec(ctx, `DROP TRIGGER test_refuse_jobs ON jobs`)
	require.NoError(t, err)
	org, jobID, err := f.prov.EnqueueOrganization(ctx, req)
	require.NoError(t, err, "the retry finds the slug and the email free")
	j, err := f.store.Job(ctx, jobID)
	require.NoError(t, err)
	require.Equal(t, catalog.JobProvision, j.Kind)
	require.Equal(t, org.ID, *j.OrganizationID)
	f.worker(t, f.prov.Handlers())
	require.Equal(t, catalog.JobSucceeded, f.waitJob(t, jobID).State)
	require.Equal(t, 1, f.databases(t, f.cfg.DedicatedName("atomic")), "the first try's database record is reused")
}

// TestProvisionResumesAfterEachStep: a provisioner that dies as any step
// begins leaves work that the next run completes, with one database, on
// both paths: a copy of the template (create, verify, ready: each run is
// a new process, so its copy is its first) and a database made empty
// (create, migrate, grant, verify, ready).
func TestProvisionResumesAfterEachStep(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	for _, mode := range []string{"template", "empty"} {
		var killedAt []string
		for i := 0; ; i++ {
			p, resumed := New(f.cfg, f.store, quiet), New(f.cfg, f.store, quiet)
			t.Cleanup(p.Close)
			t.Cleanup(resumed.Close)
			p.noTemplate, resumed.noTemplate = mode == "empty", mode == "empty"
			slug := fmt.Sprintf("crash-%s-%d", mode, i)
			db, err := p.RegisterDedicated(context.Background(), slug)
			require.NoError(t, err)
			ctx, cancel := context.WithCancel(context.Background())
			steps := 0
			err = p.ProvisionDatabase(ctx, db.ID, func(step string) {
				if steps == i {
					killedAt = append(killedAt, step)
					cancel() // the process dies as this step begins
				}
				steps++
			})
			cancel()
			if steps <= i {
				require.NoError(t, err, "%s: ran its %d steps without being killed", mode, steps)
				break
			}
			if killedAt[i] != "ready" {
				require.Error(t, err, "%s: killed at %s", mode, killedAt[i])
			}
			require.NoError(t, resumed.ProvisionDatabase(context.Background(), db.ID, func(string) {}), "resume after %s", killedAt[i])
			got, err := f.store.Database(context.Background(), db.ID)
			require.NoError(t, err)
			require.Equal(t, "ready", got.State)
			require.Equal(t, 1, f.databases(t, db.Name))
			require.NoError(t, f.prov.verify(context.Background(), db.DSN))
		}
		want := map[string][]string{"template": {"create", "verify", "ready"}, "empty": {"create", "migrate", "grant", "verify", "ready"}}[mode]
		require.Equal(t, want, killedAt, "%s: killed at each step", mode)
	}
}

// TestKilledWorkerJobIsTakenOver: a job whose worker stopped renewing its
// lease (killed) is claimed by another and finished.
func TestKilledWorkerJobIsTakenOver(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	_, jobID, err := f.prov.EnqueueOrganization(context.Background(), CreateOrganization{Slug: "orphaned", Name: "O", Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	dead, err := f.store.ClaimJob(context.Background(), "dead-worker", 200*time.Millisecond)
	require.NoError(t, err)
	require.Equal(t, jobID, dead.ID)
	f.worker(t, f.prov.Handlers())
	j := f.waitJob(t, jobID)
	require.Equal(t, catalog.JobSucceeded, j.State, j.Error)
	// At least one attempt after the dead worker's; more when a loaded
	// machine makes the live worker lose its short lease too.
	require.GreaterOrEqual(t, j.Attempts, 2, "taken over once the dead worker's lease ran out")
	err = f.store.FinishJob(context.Background(), jobID, "dead-worker", "", nil, 0)
	require.Equal(t, tenancy.CodeConflict, tenancy.ErrorCode(err), "the dead worker, come back, cannot overwrite the outcome")
}

// TestConcurrentCreatesOfOneSlug: one organization, one database.
func TestConcurrentCreatesOfOneSlug(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	var ok, conflict atomic.Int64
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			_, err := f.prov.CreateOrganization(context.Background(), CreateOrganization{Slug: "racy", Name: "R", Plan: tenancy.PlanEnterprise})
			switch tenancy.ErrorCode(err) {
			case tenancy.CodeConflict:
				conflict.Add(1)
			default:
				if err == nil {
					ok.Add(1)
				} else {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 1, ok.Load())
	require.EqualValues(t, 4, conflict.Load())
	require.Equal(t, 1, f.databases(t, f.cfg.DedicatedName("racy")))
	dbs, err := f.store.Databases(context.Background())
	require.NoError(t, err)
	n := 0
	for _, d := range dbs {
		if d.Name == f.cfg.DedicatedName("racy") {
			n++
		}
	}
	require.Equal(t, 1, n, "one database record")
}

// TestFailedJobsRetryWithBackoff: a failing handler is retried; a
// permanent error is not.
func TestFailedJobsRetryWithBackoff(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	var calls atomic.Int64
	f.worker(t, map[string]Handler{catalog.JobDelete: func(ctx context.Context, job catalog.Job, step func(string)) error {
		if calls.Add(1) == 1 {
			return errors.New("transient")
		}
		return nil
	}})
	j, err := f.store.EnqueueJob(context.Background(), catalog.JobDelete, "", map[string]string{})
	require.NoError(t, err)
	done := f.waitJob(t, j.ID)
	require.Equal(t, catalog.JobSucceeded, done.State)
	require.Equal(t, 2, done.Attempts)
	require.EqualValues(t, 2, calls.Load())
}

func TestDeleteOrganization(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ded, err := f.prov.CreateOrganization(context.Background(), CreateOrganization{Slug: "goner", Name: "G", Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	require.NoError(t, f.prov.DeleteOrganization(context.Background(), ded.ID, func(string) {}))
	require.Zero(t, f.databases(t, f.cfg.DedicatedName("goner")), "the dedicated database is dropped")
	_, err = f.store.Organization(context.Background(), ded.ID)
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err))
	require.NoError(t, f.prov.DeleteOrganization(context.Background(), ded.ID, func(string) {}), "again: nothing to do")
}

// BenchmarkProvision: a dedicated database made usable (created, granted,
// verified as the application role, marked ready) from the server's
// template, and created empty then migrated. The template is made before
// the timed runs: that happens once per server (first-ms reports it). It
// reports the mean and the slowest, in milliseconds (target ≤ 300 ms,
// issue 5).
//
//	go test -run '^$' -bench Provision -benchtime 20x ./provisioner/
func BenchmarkProvision(b *testing.B) {
	for _, mode := range []string{"template", "empty"} {
		b.Run(mode, func(b *testing.B) {
			f := newFleet(b)
			f.prov.noTemplate = mode == "empty"
			provision := func(slug string) time.Duration {
				start := time.Now()
				db, err := f.prov.RegisterDedicated(context.Background(), slug)
				require.NoError(b, err)
				require.NoError(b, f.prov.ProvisionDatabase(context.Background(), db.ID, func(string) {}))
				return time.Since(start)
			}
			first := provision("bench-first")
			var total, slowest time.Duration
			n := 0
			for b.Loop() {
				d := provision(fmt.Sprintf("bench-%d", n))
				total += d
				slowest = max(slowest, d)
				n++
			}
			b.ReportMetric(float64(total)/float64(n)/float64(time.Millisecond), "ms/usable")
			b.ReportMetric(float64(slowest)/float64(time.Millisecond), "max-ms")
			b.ReportMetric(float64(first)/float64(time.Millisecond), "first-ms")
		})
	}
}

// TestDirtyTemplateIsRemade: a template a killed provisioner left dirty is
// dropped and made again, and the tenant's database is a clean copy.
func TestDirtyTemplateIsRemade(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ctx := context.Background()
	tmpl := f.cfg.TemplateName()
	earlier := New(f.cfg, f.store, quiet)
	defer earlier.Close()
	_, err := earlier.CreateOrganization(ctx, CreateOrganization{Slug: "first", Name: "F", Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	first, err := f.store.Tenant(ctx, mustOrg(t, f, "first"))
	require.NoError(t, err)
	require.NoError(t, f.prov.ProvisionDatabase(ctx, first.Placement.DatabaseID, func(string) {}))
	_, err = tenancytest.Connect(t, f.env.DatabaseURL(t, tmpl)).Exec(ctx, `UPDATE schema_migrations SET dirty = true`)
	require.NoError(t, err)

	// A new process: the template is not known to be good.
	p := New(f.cfg, f.store, quiet)
	defer p.Close()
	_, err = p.CreateOrganization(ctx, CreateOrganization{Slug: "second", Name: "S", Plan: tenancy.PlanEnterprise})
	require.NoError(t, err)
	second, err := f.store.Tenant(ctx, mustOrg(t, f, "second"))
	require.NoError(t, err)
	require.NoError(t, p.ProvisionDatabase(ctx, second.Placement.DatabaseID, func(string) {}))

	for _, name := range []string{tmpl, f.cfg.DedicatedName("second")} {
		var dirty bool
		require.NoError(t, tenancytest.Connect(t, f.env.DatabaseURL(t, name)).QueryRow(ctx,
			`SELECT dirty FROM schema_migrations`).Scan(&dirty))
		require.False(t, dirty, name)
	}
}

func mustOrg(t *testing.T, f *fleet, slug string) string {
	t.Helper()
	o, err := f.store.OrganizationBySlug(context.Background(), slug)
	require.NoError(t, err)
	return o.ID
}

// TestCopiesSideBySide: copies of the template run at once (they share
// the template lock), and each, verified or not (only a process's first
// copy is read as the application role), can be connected to by the
// application role and by no one else without a grant: the one grant a
// copy does not carry, its database's own, is made on the connection
// that created it.
func TestCopiesSideBySide(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	ctx := context.Background()
	var steps sync.Map
	var wg sync.WaitGroup
	var dbs []tenancy.Database
	for i := range 6 {
		db, err := f.prov.RegisterDedicated(ctx, fmt.Sprintf("side-%d", i))
		require.NoError(t, err)
		dbs = append(dbs, db)
	}
	for _, db := range dbs {
		wg.Go(func() {
			var seen []string
			if err := f.prov.ProvisionDatabase(ctx, db.ID, func(s string) { seen = append(seen, s) }); err != nil {
				t.Error(err)
			}
			steps.Store(db.Name, seen)
		})
	}
	wg.Wait()
	server := f.server(t)
	_, err := server.Exec(ctx, `CREATE ROLE `+pgx.Identifier{f.env.DedicatedPrefix + "stranger"}.Sanitize()+` LOGIN`)
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = server.Exec(context.Background(), `DROP ROLE IF EXISTS `+pgx.Identifier{f.env.DedicatedPrefix + "stranger"}.Sanitize())
	})
	verified := 0
	for _, db := range dbs {
		got, err := f.store.Database(ctx, db.ID)
		require.NoError(t, err)
		require.Equal(t, "ready", got.State, db.Name)
		seen, _ := steps.Load(db.Name)
		if slices.Contains(seen.([]string), "verify") {
			verified++
		}
		require.NotContains(t, seen, "migrate", "%s is a copy: nothing to migrate", db.Name)
		var app, public, stranger bool
		require.NoError(t, server.QueryRow(ctx, `SELECT has_database_privilege($1, $3, 'CONNECT'),
			has_database_privilege('public', $3, 'CONNECT'), has_database_privilege($2, $3, 'CONNECT')`,
			f.env.AppRole, f.env.DedicatedPrefix+"stranger", db.Name).Scan(&app, &public, &stranger))
		require.True(t, app, "%s: the application role connects", db.Name)
		require.False(t, public, "%s: PUBLIC does not", db.Name)
		require.False(t, stranger, "%s: another role does not", db.Name)
		require.NoError(t, f.prov.verify(ctx, db.DSN), "%s reads as the application role", db.Name)
	}
	require.GreaterOrEqual(t, verified, 1, "the process's first copy is verified")
}
