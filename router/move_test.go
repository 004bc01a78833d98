package router

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/provisioner/move"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/placement"
	"github.com/tenantgate/tenantgate/tenancy/ratelimit"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/service"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
	"github.com/tenantgate/tenantgate/tenancy/throttle"
)

// moveDeps wires a tier move to the bundle's catalog, change feed and
// provisioner, as the provisioner service does.
func (b *bundle) moveDeps() move.Deps {
	return move.Deps{
		Catalog: b.store,
		Publish: func(ctx context.Context, orgID string) error {
			return b.feed.Publish(ctx, tenancy.ChangeOrganization, orgID, time.Time{})
		},
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
			return schema.DropDatabase(ctx, db.DSN, db.Name)
		},
		Log: quiet,
	}
}

// acked is a write the gateway answered with 201.
type acked struct {
	table, id, createdAt string
}

// writers post agents, tasks and messages for a tenant until stopped,
// retrying each write the gateway refuses with 503 tenant_unavailable.
type writers struct {
	name      string // unique to these writers: agent names must not collide
	mu        sync.Mutex
	acks      []acked
	refused   atomic.Int64
	failures  []string
	stop      chan struct{}
	wg        sync.WaitGroup
	sequences atomic.Int64
}

func (b *bundle) startWriters(t *testing.T, o org, agentID string, n int) *writers {
	w := &writers{name: uuid.NewString()[:8], stop: make(chan struct{})}
	for g := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-w.stop:
					return
				default:
				}
				seq := w.sequences.Add(1)
				switch i % 3 {
				case 0:
					w.post(t, b, o, "agents", map[string]any{"name": fmt.Sprintf("agent %s-%d-%d", w.name, g, seq)})
				case 1:
					w.post(t, b, o, "tasks", map[string]any{"title": fmt.Sprintf("task %d", seq), "agentId": agentID})
				case 2:
					w.post(t, b, o, "messages", map[string]any{"role": "user", "content": fmt.Sprintf("message %d", seq), "agentId": agentID})
				}
			}
		}()
	}
	return w
}

// post sends one write until the gateway takes it or refuses it for good.
func (w *writers) post(t *testing.T, b *bundle, o org, resource string, body any) {
	for {
		r := b.do(t, "POST", "/api/"+resource, o.token, body)
		switch {
		case r.status == 201:
			w.mu.Lock()
			w.acks = append(w.acks, acked{resource, r.json["id"].(string), r.json["createdAt"].(string)})
			w.mu.Unlock()
			return
		case r.status == 503 && r.errorCode() == "tenant_unavailable" && r.header.Get("Retry-After") != "":
			w.refused.Add(1)
			time.Sleep(5 * time.Millisecond) // a client would wait Retry-After; the test keeps the pressure on
		default:
			w.mu.Lock()
			w.failures = append(w.failures, fmt.Sprintf("%s: %d %s", resource, r.status, r.text))
			w.mu.Unlock()
			return
		}
	}
}

func (w *writers) halt() {
	close(w.stop)
	w.wg.Wait()
}

// tenantIDs returns the ids of the organization's rows of table in db.
func tenantIDs(t *testing.T, db tenancy.Database, table, orgID string) map[string]bool {
	t.Helper()
	conn := tenancytest.Connect(t, db.DSN)
	rows, err := conn.Query(testCtx(t), `SELECT id::text FROM `+pgx.Identifier{table}.Sanitize()+` WHERE organization_id = $1`, orgID)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	out := map[string]bool{}
	for _, id := range ids {
		out[id] = true
	}
	return out
}

// tenantRows counts the organization's rows over every tenant table of db.
func tenantRows(t *testing.T, db tenancy.Database, orgID string) int {
	t.Helper()
	conn := tenancytest.Connect(t, db.DSN)
	total := 0
	for _, table := range []string{"agents", "tasks", "messages", "activity_logs", "agent_sessions", "schedules", "idempotency_keys"} {
		var n int
		require.NoError(t, conn.QueryRow(testCtx(t), `SELECT count(*) FROM `+table+` WHERE organization_id = $1`, orgID).Scan(&n))
		total += n
	}
	return total
}

// moveUnderWrites moves o to the tier to while writers keep posting, and
// checks that every acknowledged write is in the new home exactly once,
// unchanged, and that nothing of the tenant is left in the old one. all
// holds the ids of every write acknowledged so far, by table; this
// move's are added.
func (b *bundle) moveUnderWrites(t *testing.T, o org, agentID, to string, all map[string]map[string]bool) (from, home tenancy.Database) {
	t.Helper()
	ctx := testCtx(t)
	before, err := b.store.Tenant(ctx, o.ID)
	require.NoError(t, err)
	from, err = b.store.Database(ctx, before.Placement.DatabaseID)
	require.NoError(t, err)

	w := b.startWriters(t, o, agentID, 4)
	time.Sleep(200 * time.Millisecond) // writes land in the source first
	var steps []string
	err = move.Move(ctx, b.moveDeps(), o.ID, to, func(s string) { steps = append(steps, s) })
	time.Sleep(200 * time.Millisecond) // and in the target after
	w.halt()
	require.NoError(t, err)
	require.Empty(t, w.failures, "every write is taken or refused with 503 tenant_unavailable")
	require.Positive(t, w.refused.Load(), "writes met the move and were refused, not lost")
	t.Logf("move to %s: %d writes acknowledged, %d refused while moving; steps %v", to, len(w.acks), w.refused.Load(), steps)

	after, err := b.store.Tenant(ctx, o.ID)
	require.NoError(t, err)
	require.Equal(t, to, after.Placement.Kind)
	require.Equal(t, before.Placement.Epoch+1, after.Placement.Epoch)
	home, err = b.store.Database(ctx, after.Placement.DatabaseID)
	require.NoError(t, err)

	for _, a := range w.acks {
		require.False(t, all[a.table][a.id], "ids are not reused")
		all[a.table][a.id] = true
	}
	for table, want := range all {
		require.Equal(t, want, tenantIDs(t, home, table, o.ID),
			"the new home holds every acknowledged %s once, and nothing else", table)
	}
	if from.Kind == tenancy.KindShared {
		require.Zero(t, tenantRows(t, from, o.ID), "nothing of the tenant is left in the source")
	}

	for _, a := range sample(w.acks, 30) {
		if a.table == "messages" {
			continue // messages are listed, not fetched one by one
		}
		r := b.do(t, "GET", "/api/"+a.table+"/"+a.id, o.token, nil)
		require.Equal(t, 200, r.status, r.text)
		require.Equal(t, a.createdAt, r.json["createdAt"], "createdAt survives the move")
	}
	for _, list := range []string{"/api/agents?limit=200", "/api/tasks?limit=200", "/api/messages?limit=200", "/api/activity?limit=200"} {
		r := b.do(t, "GET", list, o.token, nil)
		require.Equal(t, 200, r.status, r.text)
		require.NotEmpty(t, r.json["data"], list)
	}
	return from, home
}

// sample returns up to n elements spread over s.
func sample[T any](s []T, n int) []T {
	if len(s) <= n {
		return s
	}
	out := make([]T, 0, n)
	for i := range n {
		out = append(out, s[i*len(s)/n])
	}
	return out
}

// TestMoveUnderContinuousWrites: a shared tenant moves to a dedicated
// database and back while clients keep writing through the gateway. No
// acknowledged write is lost or doubled, ids and creation times survive,
// nothing is left behind, and the dedicated database is dropped after the
// way back.
func TestMoveUnderContinuousWrites(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	o := b.org(t, "mover", tenancy.PlanPro)
	many := 1_000_000
	_, err := b.store.SetLimits(ctx, o.Slug, catalog.LimitChanges{MaxAgents: &many})
	require.NoError(t, err)
	b.refresh(t, o.ID)
	agent := b.create(t, o.token, "/api/agents", map[string]string{"name": "first"})
	agentID := agent["id"].(string)
	shared, err := b.store.SharedDatabase(ctx)
	require.NoError(t, err)
	// Rows enough that the copy takes a while, so writes meet the move.
	_, err = tenancytest.Connect(t, shared.DSN).Exec(ctx, `INSERT INTO activity_logs (organization_id, action, object_type)
		SELECT $1, 'seeded', 'test' FROM generate_series(1, 20000)`, o.ID)
	require.NoError(t, err)

	all := map[string]map[string]bool{"agents": {agentID: true}, "tasks": {}, "messages": {}}
	_, dedicated := b.moveUnderWrites(t, o, agentID, tenancy.KindDedicated, all)
	require.Equal(t, b.cfg.DedicatedName("mover"), dedicated.Name)

	from, home := b.moveUnderWrites(t, o, agentID, tenancy.KindShared, all)
	require.Equal(t, dedicated.ID, from.ID)
	require.Equal(t, shared.ID, home.ID)
	var exists bool
	require.NoError(t, tenancytest.Connect(t, b.env.ServerURL).QueryRow(ctx,
		`SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, dedicated.Name).Scan(&exists))
	require.False(t, exists, "the dedicated database is dropped")
	_, err = b.store.Database(ctx, dedicated.ID)
	require.Equal(t, tenancy.CodeNotFound, tenancy.ErrorCode(err), "and the catalog forgot it")
}

// TestMoveStaleReplicaGets503: a replica that missed the move's
// invalidations still routes the tenant's writes to the source; the fence
// there refuses them with 503 tenant_unavailable, and none lands.
func TestMoveStaleReplicaGets503(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := testCtx(t)
	o := b.org(t, "stale", tenancy.PlanPro)
	stale := b.replica(t) // follows no change feed: its cache stays as it is now
	require.Equal(t, 201, stale.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "cached"}).status)
	staleTenant, err := b.store.Tenant(ctx, o.ID)
	require.NoError(t, err)
	shared, err := b.store.Database(ctx, staleTenant.Placement.DatabaseID)
	require.NoError(t, err)

	require.NoError(t, move.Move(ctx, b.moveDeps(), o.ID, tenancy.KindDedicated, nil))

	r := stale.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "lost?"})
	require.Equal(t, 503, r.status, r.text)
	require.Equal(t, "tenant_unavailable", r.errorCode())
	require.NotEmpty(t, r.header.Get("Retry-After"))
	_, err = b.data.Agents.Create(ctx, staleTenant, "", tenantdb.NewAgent{Name: "direct"}, 1000)
	require.Equal(t, tenancy.CodeTenantUnavailable, tenancy.ErrorCode(err), "a stale scope is refused: %v", err)
	require.Zero(t, tenantRows(t, shared, o.ID), "nothing landed in the source")

	require.Equal(t, 201, b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "fresh"}).status,
		"a replica that followed the move writes in the new home")
}

// replica is a second gateway over the bundle's databases with a placement
// cache of its own that no invalidation reaches, like a replica whose
// broadcasts and feed polls were lost.
func (b *bundle) replica(t *testing.T) *bundle {
	r := *b
	r.placements = placement.New(1000, time.Hour, b.store.Tenant)
	svc := service.New(service.Deps{Catalog: b.store, Tenants: r.placements.Lookup, Data: b.data, Plans: contractPlans(),
		Tokens: b.tokens, Keys: b.keys, Principals: b.principals, Revocations: b.revocations, Changes: b.feed,
		Throttle: throttle.NewLocal(10_000), RateLimiter: ratelimit.NewLocal(10_000), SignupMode: "open", KeyUsed: b.touches.Touch,
		Log: quiet, PasswordParams: cheap})
	r.app = New(Deps{Service: svc, Log: quiet})
	return &r
}
