package fanout

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The test migration sets: three steps each. In fail, step 2 raises on
// the database whose name ends in d_07; fixed is the same without that;
// slow pauses 50 ms in every step so a run can be cut mid-way.
var (
	failSet  = os.DirFS("testdata/fail")
	fixedSet = os.DirFS("testdata/fixed")
	slowSet  = os.DirFS("testdata/slow")
)

const head = 3 // newest version of the test sets

func testCtx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// fixture is a catalog with a shared database and dedicated ones named
// <prefix>d_NN, each registered and migrated to a starting version, and
// one organization per database (slug org-shared, org-NN).
type fixture struct {
	env   *tenancytest.Env
	pool  *pgxpool.Pool
	store *catalog.Store
	dbs   []tenancy.Database // shared first, then dedicated by name
	calls *callCounter
}

type fixtureOpts struct {
	dedicated []int  // NN of each dedicated database
	start     uint   // version each database starts at (0: empty)
	startSet  fs.FS  // the set that brings them there; fixedSet if nil
	skipOrgs  bool   // register no organizations
	extra     string // suffix of a registered database that does not exist
}

func span(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

func setup(t testing.TB, o fixtureOpts) *fixture {
	t.Helper()
	ctx := testCtx(t)
	e := tenancytest.NewEnv(t)
	f := &fixture{env: e, calls: &callCounter{n: map[string]int{}}}
	require.NoError(t, schema.CreateDatabase(ctx, e.ServerURL, e.Prefix+"catalog"))
	_, err := schema.Migrate(ctx, e.CatalogURL, migrations.Catalog, "catalog", 0)
	require.NoError(t, err)
	f.pool, err = pgxpool.New(ctx, e.CatalogURL)
	require.NoError(t, err)
	t.Cleanup(f.pool.Close)
	f.store = catalog.New(f.pool)
	conn := tenancytest.Connect(t, e.CatalogURL)
	require.NoError(t, schema.EnsureAppRole(ctx, conn, e.AppRole, ""))

	names := []string{e.Prefix + "shared"}
	for _, n := range o.dedicated {
		names = append(names, fmt.Sprintf("%sd_%02d", e.Prefix, n))
	}
	require.NoError(t, createAll(ctx, e, names, o))
	for i, name := range names {
		f.dbs = append(f.dbs, f.register(t, name, i == 0, o))
	}
	if o.extra != "" {
		f.register(t, e.Prefix+o.extra, false, o)
	}
	return f
}

// createAll creates and pre-migrates the databases a few at a time:
// creating twenty one by one would be most of a test's time.
func createAll(ctx context.Context, e *tenancytest.Env, names []string, o fixtureOpts) error {
	set := o.startSet
	if set == nil {
		set = fixedSet
	}
	var g errgroup.Group
	g.SetLimit(4)
	for _, name := range names {
		g.Go(func() error {
			if err := schema.CreateDatabase(ctx, e.ServerURL, name); err != nil {
				return err
			}
			if o.start == 0 {
				return nil
			}
			_, err := schema.Migrate(ctx, dsnOf(e, name), set, ".", o.start)
			return err
		})
	}
	return g.Wait()
}

func dsnOf(e *tenancytest.Env, name string) string {
	dsn, err := schema.WithDatabase(e.ServerURL, name)
	if err != nil {
		panic(err)
	}
	return dsn
}

func (f *fixture) register(t testing.TB, name string, shared bool, o fixtureOpts) tenancy.Database {
	ctx := testCtx(t)
	kind := tenancy.KindDedicated
	if shared {
		kind = tenancy.KindShared
	}
	d, err := f.store.RegisterDatabase(ctx, tenancy.Database{Name: name, Kind: kind, DSN: dsnOf(f.env, name)})
	require.NoError(t, err)
	require.NoError(t, f.store.SetDatabaseVersion(ctx, d.ID, o.start, false))
	if !o.skipOrgs {
		_, err = f.store.CreateOrganization(ctx, catalog.NewOrganization{Slug: orgSlug(f.env, name), Name: name,
			Plan: tenancy.PlanPro, Status: tenancy.StatusActive, DatabaseID: d.ID})
		require.NoError(t, err)
	}
	return d
}

// orgSlug is the organization registered on database name: org-shared,
// org-07, org-missing.
func orgSlug(e *tenancytest.Env, name string) string {
	s := strings.TrimPrefix(strings.TrimPrefix(name, e.Prefix), "d_")
	return "org-" + strings.ReplaceAll(s, "_", "-")
}

// runner returns a Runner over set whose migrations are counted, with
// short retry pauses.
func (f *fixture) runner(set fs.FS) *Runner {
	r := New(f.store, set, ".", f.env.AppRole, quiet)
	r.backoff = 10 * time.Millisecond
	r.migrate = f.calls.wrap(r.migrate)
	return r
}

func (f *fixture) db(t testing.TB, nn int) tenancy.Database {
	t.Helper()
	want := fmt.Sprintf("%sd_%02d", f.env.Prefix, nn)
	for _, d := range f.dbs {
		if d.Name == want {
			return d
		}
	}
	t.Fatalf("no database %s", want)
	return tenancy.Database{}
}

// catalogRow is what the catalog says of a database.
func (f *fixture) catalogRow(t testing.TB, id string) (version int64, dirty bool) {
	t.Helper()
	require.NoError(t, f.pool.QueryRow(testCtx(t), `SELECT schema_version, dirty FROM databases WHERE id = $1`, id).
		Scan(&version, &dirty))
	return version, dirty
}

// ledgerRow is a database's entry in a run.
func (f *fixture) ledgerRow(t testing.TB, runID, dbID string) catalog.MigrationResult {
	t.Helper()
	rows, err := f.store.MigrationResults(testCtx(t), runID)
	require.NoError(t, err)
	r, ok := rows[dbID]
	require.True(t, ok, "the ledger has an entry for %s in run %s", dbID, runID)
	return r
}

func (f *fixture) runStatus(t testing.TB, runID string) string {
	t.Helper()
	var s string
	require.NoError(t, f.pool.QueryRow(testCtx(t), `SELECT status FROM migration_runs WHERE id = $1`, runID).Scan(&s))
	return s
}

func realVersion(t testing.TB, dsn string) schema.Version {
	t.Helper()
	v, err := schema.CurrentVersion(testCtx(t), dsn)
	require.NoError(t, err)
	return v
}

func byName(rep Report) map[string]Result {
	out := map[string]Result{}
	for _, r := range rep.Results {
		out[r.Name] = r
	}
	return out
}

// callCounter counts golang-migrate runs per database: the proof that a
// skipped database was not connected to and migrated again.
type callCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *callCounter) wrap(next migrateFunc) migrateFunc {
	return func(ctx context.Context, dsn string, m fs.FS, dir string, to uint) (schema.Version, error) {
		name, _ := schema.DatabaseName(dsn)
		c.mu.Lock()
		c.n[name]++
		c.mu.Unlock()
		return next(ctx, dsn, m, dir, to)
	}
}

func (c *callCounter) of(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

func (c *callCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.n {
		n += v
	}
	return n
}
