package metering_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy/metering"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(dropTemplateAfter{m})
}

// dropTemplateAfter drops the package's migrated catalog template once
// the tests have run. A crashed run leaves it to tenancytest's sweep: its
// name starts like every test database's.
type dropTemplateAfter struct{ m *testing.M }

func (d dropTemplateAfter) Run() int {
	code := d.m.Run()
	if template.name != "" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := schema.DropDatabase(ctx, tenancytest.ServerURL(), template.name); err != nil {
			fmt.Fprintln(os.Stderr, "metering: drop template:", err)
		}
	}
	return code
}

// template is a catalog database migrated once per package run, which
// each test's catalog is copied from.
var template struct {
	once sync.Once
	name string
	err  error
}

func catalogTemplate(t testing.TB) string {
	t.Helper()
	template.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		b := make([]byte, 4)
		rand.Read(b)
		name := "tgt" + strconv.FormatInt(time.Now().Unix(), 36) + "_" + hex.EncodeToString(b) + "_meteringtpl"
		if template.err = schema.CreateDatabase(ctx, tenancytest.ServerURL(), name); template.err != nil {
			return
		}
		template.name = name
		dsn, err := schema.WithDatabase(tenancytest.ServerURL(), name)
		if err != nil {
			template.err = err
			return
		}
		_, template.err = schema.Migrate(ctx, dsn, migrations.Catalog, "catalog", 0)
	})
	require.NoError(t, template.err, "migrated catalog template")
	return template.name
}

// fixture is a migrated catalog of the test's own and a Store over it,
// whose clock moves only when told.
type fixture struct {
	env   *tenancytest.Env
	pool  *pgxpool.Pool
	store *metering.Store
	clock *tenancytest.Clock
	// statements counts the statements sent on pool.
	statements atomic.Int64
	// onStatement, when set, runs as each statement is sent on pool.
	onStatement atomic.Pointer[func()]
}

func setup(t testing.TB) *fixture {
	t.Helper()
	tpl := catalogTemplate(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := &fixture{env: tenancytest.NewEnv(t), clock: tenancytest.NewClock()}
	conn := tenancytest.Connect(t, tenancytest.ServerURL())
	_, err := schema.CreateDatabaseFrom(ctx, conn, f.env.Prefix+"catalog", tpl)
	require.NoError(t, err)
	cfg, err := pgxpool.ParseConfig(f.env.CatalogURL)
	require.NoError(t, err)
	cfg.ConnConfig.Tracer = statementCounter{f}
	f.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(f.pool.Close)
	f.store = metering.NewStore(f.pool, f.clock.Now)
	return f
}

// statementCounter counts Exec, Query and batch statements.
type statementCounter struct{ f *fixture }

func (c statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.f.statements.Add(1)
	if fn := c.f.onStatement.Load(); fn != nil {
		(*fn)()
	}
	return ctx
}
func (statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	c.f.statements.Add(int64(d.Batch.Len()))
	return ctx
}
func (statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// meter returns a Meter of f's store (a replica).
func (f *fixture) meter(cfg metering.Config) *metering.Meter { return f.store.NewMeter(cfg) }

// totals sums org's usage over all time, as of the last flushes.
func (f *fixture) totals(t testing.TB, org string) metering.Usage {
	t.Helper()
	points, err := f.store.Totals(context.Background(), org, time.Time{}, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), metering.Day)
	require.NoError(t, err)
	var u metering.Usage
	for _, p := range points {
		u.Add(p.Usage)
	}
	return u
}

func (f *fixture) flush(t testing.TB, m *metering.Meter) {
	t.Helper()
	require.NoError(t, m.Flush(context.Background()))
}

// count returns the single integer query returns.
func (f *fixture) count(t testing.TB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, f.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

// org is a fresh organization id. Metering needs no organization row.
func org() string { return uuid.NewString() }

// req is the usage of one request.
func req(dbTime time.Duration, read, written int64) metering.Usage {
	return metering.Usage{Requests: 1, DBTime: dbTime, RowsRead: read, RowsWritten: written, BytesSent: 100}
}

// times returns u added n times.
func times(u metering.Usage, n int) metering.Usage {
	var sum metering.Usage
	for range n {
		sum.Add(u)
	}
	return sum
}
