package move_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/provisioner/move"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// bundle is one test's catalog, shared database and provisioner, with the
// Deps a move needs and an application-role scope that writes as the
// gateway does.
type bundle struct {
	env       *tenancytest.Env
	cfg       provisioner.Config
	store     *catalog.Store
	prov      *provisioner.Provisioner
	deps      move.Deps
	publishes atomic.Int64
	scope     *tenantdb.Scope
	data      tenantdb.Stores

	mu    sync.Mutex
	pools map[string]*pgxpool.Pool // database id → application-role pool
}

func setup(t testing.TB) *bundle {
	t.Helper()
	ctx := testCtx(t)
	e := tenancytest.NewEnv(t)
	b := &bundle{env: e, pools: map[string]*pgxpool.Pool{}, cfg: provisioner.Config{CatalogURL: e.CatalogURL,
		SharedURL: e.SharedURL, DedicatedServerURL: e.ServerURL, DedicatedPrefix: e.DedicatedPrefix, AppRole: e.AppRole}}
	require.NoError(t, provisioner.Init(ctx, b.cfg, quiet))
	pool, err := pgxpool.New(ctx, e.CatalogURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	b.store = catalog.New(pool)
	b.prov = provisioner.New(b.cfg, b.store, quiet)
	t.Cleanup(b.prov.Close)
	b.deps = move.Deps{
		Catalog: b.store,
		Publish: func(context.Context, string) error { b.publishes.Add(1); return nil },
		CreateDedicated: func(ctx context.Context, slug string) (tenancy.Database, error) {
			db, err := b.prov.RegisterDedicated(ctx, slug)
			if err != nil {
				return db, err
			}
			if err := b.prov.ProvisionDatabase(ctx, db.ID, func(string) {}); err != nil {
				return db, err
			}
			return b.store.Database(ctx, db.ID)
		},
		SharedDatabase: b.store.SharedDatabase,
		DropDatabase: func(ctx context.Context, db tenancy.Database) error {
			b.closePool(db.ID) // as a gateway's pool cache would, once no placement names it
			return schema.DropDatabase(ctx, db.DSN, db.Name)
		},
		Log: quiet,
	}
	b.scope = tenantdb.NewScope(b.lease)
	b.data = tenantdb.NewStores(b.scope)
	t.Cleanup(b.closePools)
	return b
}

// lease opens application-role pools on demand, like the gateway's cache.
func (b *bundle) lease(ctx context.Context, id string) (*pgxpool.Pool, func(error), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p, ok := b.pools[id]; ok {
		return p, func(error) {}, nil
	}
	db, err := b.store.Database(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	dsn, err := schema.WithUser(db.DSN, b.env.AppRole, "")
	if err != nil {
		return nil, nil, err
	}
	p, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	b.pools[id] = p
	return p, func(error) {}, nil
}

func (b *bundle) closePool(id string) {
	b.mu.Lock()
	p := b.pools[id]
	delete(b.pools, id)
	b.mu.Unlock()
	if p != nil {
		p.Close()
	}
}

func (b *bundle) closePools() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, p := range b.pools {
		p.Close()
		delete(b.pools, id)
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// org creates an organization on plan's tier.
func (b *bundle) org(t testing.TB, slug string, plan tenancy.Plan) tenancy.Organization {
	t.Helper()
	o, err := b.prov.CreateOrganization(testCtx(t), provisioner.CreateOrganization{Slug: slug, Name: slug, Plan: plan})
	require.NoError(t, err)
	return o
}

// tenant is the organization with its placement as the catalog has it now:
// what a gateway would cache.
func (b *bundle) tenant(t testing.TB, orgID string) tenancy.Tenant {
	t.Helper()
	tn, err := b.store.Tenant(testCtx(t), orgID)
	require.NoError(t, err)
	return tn
}

// home is the database the organization's placement names.
func (b *bundle) home(t testing.TB, orgID string) tenancy.Database {
	t.Helper()
	db, err := b.store.Database(testCtx(t), b.tenant(t, orgID).Placement.DatabaseID)
	require.NoError(t, err)
	return db
}

func (b *bundle) shared(t testing.TB) tenancy.Database {
	t.Helper()
	db, err := b.store.SharedDatabase(testCtx(t))
	require.NoError(t, err)
	return db
}

// owner connects to db as its owner, for looking behind the application.
func (b *bundle) owner(t testing.TB, db tenancy.Database) *pgx.Conn {
	t.Helper()
	return tenancytest.Connect(t, db.DSN)
}

// seed writes n rows of the organization into db, as its owner, spread
// over every tenant table with their references filled in; values include
// NULLs, JSON, bytes and text beyond ASCII.
func (b *bundle) seed(t testing.TB, db tenancy.Database, orgID string, n int) {
	t.Helper()
	ctx := testCtx(t)
	agents, tasks, messages, logs, sessions, schedules := max(n/100, 1), n/5, n*2/5, n*3/10, n/25, max(n/100, 1)
	keys := n - agents - tasks - messages - logs - sessions - schedules
	stmts := []string{
		`INSERT INTO agents (organization_id, name, description, model, status, created_at, deleted_at)
		 SELECT $1, 'agent ' || i || ' ✓', 'agent number ' || i, 'model-x', CASE WHEN i % 3 = 0 THEN 'paused' ELSE 'active' END,
		        now() - i * interval '1 second', CASE WHEN i % 10 = 0 THEN now() END
		 FROM generate_series(1, {n}) i`,
		`WITH a AS (SELECT array_agg(id ORDER BY id) ids FROM agents WHERE organization_id = $1)
		 INSERT INTO tasks (organization_id, agent_id, title, status, priority, result, started_at, agent_minutes)
		 SELECT $1, CASE WHEN i % 4 = 0 THEN NULL ELSE a.ids[1 + i % cardinality(a.ids)] END, 'task ' || i,
		        CASE WHEN i % 2 = 0 THEN 'completed' ELSE 'pending' END, 'high',
		        CASE WHEN i % 2 = 0 THEN jsonb_build_object('n', i, 'ok', true) END, CASE WHEN i % 2 = 0 THEN now() END,
		        CASE WHEN i % 2 = 0 THEN i % 7 END
		 FROM a, generate_series(1, {n}) i`,
		`WITH t AS (SELECT array_agg(id ORDER BY id) ids FROM tasks WHERE organization_id = $1)
		 INSERT INTO messages (organization_id, task_id, role, content)
		 SELECT $1, CASE WHEN cardinality(t.ids) > 0 THEN t.ids[1 + i % cardinality(t.ids)] END, 'user',
		        'message ' || i || ' — ' || repeat('ü', i % 40)
		 FROM t, generate_series(1, {n}) i`,
		`INSERT INTO activity_logs (organization_id, action, object_type, object_id, details)
		 SELECT $1, 'task.created', 'task', gen_random_uuid(), jsonb_build_object('i', i, 's', 'x"y')
		 FROM generate_series(1, {n}) i`,
		`WITH a AS (SELECT array_agg(id ORDER BY id) ids FROM agents WHERE organization_id = $1)
		 INSERT INTO agent_sessions (organization_id, agent_id, tokens_used, ended_at)
		 SELECT $1, a.ids[1 + i % cardinality(a.ids)], i * 1000, CASE WHEN i % 2 = 0 THEN now() END
		 FROM a, generate_series(1, {n}) i`,
		`WITH a AS (SELECT array_agg(id ORDER BY id) ids FROM agents WHERE organization_id = $1)
		 INSERT INTO schedules (organization_id, agent_id, cron, task_template, next_run_at)
		 SELECT $1, a.ids[1 + i % cardinality(a.ids)], '*/5 * * * *', '{"title": "check"}', now() + interval '5 minutes'
		 FROM a, generate_series(1, {n}) i`,
		`INSERT INTO idempotency_keys (organization_id, key, request_hash, status, response)
		 SELECT $1, 'key-' || i, decode(md5(i::text), 'hex'), 201, convert_to('{"id": ' || i || '}', 'UTF8')
		 FROM generate_series(1, {n}) i`,
	}
	counts := []int{agents, tasks, messages, logs, sessions, schedules, keys}
	conn := b.owner(t, db)
	for i, s := range stmts {
		_, err := conn.Exec(ctx, strings.ReplaceAll(s, "{n}", strconv.Itoa(counts[i])), orgID)
		require.NoError(t, err, move.TenantTables[i])
	}
}

// snapshot is every row of the organization in db, rendered as text, by
// table and key: what must arrive unchanged.
func (b *bundle) snapshot(t testing.TB, db tenancy.Database, orgID string) map[string]map[string]string {
	t.Helper()
	ctx := testCtx(t)
	conn := b.owner(t, db)
	_, err := conn.Exec(ctx, `SET TimeZone = 'UTC'`)
	require.NoError(t, err)
	out := map[string]map[string]string{}
	for _, tbl := range move.TenantTables {
		key := "id::text"
		if tbl == "idempotency_keys" {
			key = "key"
		}
		rows, err := conn.Query(ctx, `SELECT `+key+`, t::text FROM `+tbl+` t WHERE organization_id = $1`, orgID)
		require.NoError(t, err)
		out[tbl] = map[string]string{}
		var k, v string
		_, err = pgx.ForEachRow(rows, []any{&k, &v}, func() error { out[tbl][k] = v; return nil })
		require.NoError(t, err)
	}
	return out
}

// rows counts the organization's rows in db over every tenant table.
func (b *bundle) rows(t testing.TB, db tenancy.Database, orgID string) int {
	t.Helper()
	total := 0
	for _, tbl := range b.snapshot(t, db, orgID) {
		total += len(tbl)
	}
	return total
}

// fenced reports whether db fences the organization.
func (b *bundle) fenced(t testing.TB, db tenancy.Database, orgID string) bool {
	t.Helper()
	var held bool
	require.NoError(t, b.owner(t, db).QueryRow(testCtx(t),
		`SELECT EXISTS (SELECT 1 FROM tenant_fences WHERE organization_id = $1)`, orgID).Scan(&held))
	return held
}

// databaseExists reports whether the server has a database named name.
func (b *bundle) databaseExists(t testing.TB, name string) bool {
	t.Helper()
	var ok bool
	conn := tenancytest.Connect(t, b.env.ServerURL)
	require.NoError(t, conn.QueryRow(testCtx(t), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&ok))
	return ok
}

// dedicatedRecords counts the catalog's records of dedicated databases.
func (b *bundle) dedicatedRecords(t testing.TB) int {
	t.Helper()
	all, err := b.store.Databases(testCtx(t))
	require.NoError(t, err)
	n := 0
	for _, d := range all {
		if d.Kind == tenancy.KindDedicated {
			n++
		}
	}
	return n
}

// write creates an agent through the application role, as the gateway
// would for t.
func (b *bundle) write(t testing.TB, tn tenancy.Tenant, name string) (tenantdb.Agent, error) {
	t.Helper()
	return b.data.Agents.Create(testCtx(t), tn, "", tenantdb.NewAgent{Name: name}, 1_000_000)
}

// move runs Move with hooks h (nil: none), recording the steps reported.
func (b *bundle) move(ctx context.Context, orgID, to string, h *move.Hooks) ([]string, error) {
	d := move.WithHooks(b.deps, h)
	var steps []string
	err := move.Move(ctx, d, orgID, to, func(s string) { steps = append(steps, s) })
	return steps, err
}
