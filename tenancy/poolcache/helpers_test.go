package poolcache_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// adminURL is the test server, connected to as a superuser.
func adminURL() string { return tenancytest.ServerURL() }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// adminExec runs one statement as the superuser on its own connection.
func adminExec(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminURL())
	require.NoError(t, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql, args...)
	require.NoError(t, err)
}

// dbName returns a fresh database name and drops that database, if it
// exists by then, when the test ends. Call it before newCache so that the
// drop runs after the cache has closed.
func dbName(t testing.TB) string {
	return tenancytest.NewEnv(t).Prefix + "db"
}

func createDB(t testing.TB, name string) {
	adminExec(t, "create database "+pgx.Identifier{name}.Sanitize())
}

// newDB creates a database and returns its name and DSN.
func newDB(t testing.TB) (string, string) {
	name := dbName(t)
	createDB(t, name)
	return name, dsnFor(t, name)
}

func dsnFor(t testing.TB, database string) string {
	dsn, err := schema.WithDatabase(adminURL(), database)
	require.NoError(t, err)
	return dsn
}

// source serves fixed targets and counts the lookups.
type source struct {
	mu      sync.Mutex
	targets map[string]poolcache.Target
	calls   atomic.Int64
}

func newSource(targets map[string]poolcache.Target) *source {
	return &source{targets: targets}
}

func (s *source) lookup(_ context.Context, id string) (poolcache.Target, error) {
	s.calls.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.targets[id]
	if !ok {
		return t, fmt.Errorf("no database %q", id)
	}
	return t, nil
}

// newCache returns a cache closed when the test ends, with an
// application_name of its own so that its sessions can be counted.
func newCache(t testing.TB, cfg poolcache.Config, src poolcache.Source) *poolcache.Cache {
	if cfg.AppName == "" {
		cfg.AppName = "tgpc_test_" + randomHex(6)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := poolcache.New(cfg, src, log)
	t.Cleanup(c.Close)
	return c
}

// sessions counts the server sessions with application name app in
// database (any database when empty).
func sessions(t testing.TB, conn *pgx.Conn, app, database string) int {
	t.Helper()
	var n int
	err := conn.QueryRow(context.Background(),
		`select count(*) from pg_stat_activity
		 where application_name = $1 and ($2 = '' or datname = $2)`, app, database).Scan(&n)
	require.NoError(t, err)
	return n
}

func adminConn(t testing.TB) *pgx.Conn {
	conn, err := pgx.Connect(context.Background(), adminURL())
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func poolStats(c *poolcache.Cache, id string) (poolcache.PoolStats, bool) {
	for _, p := range c.Stats().Pools {
		if p.DatabaseID == id {
			return p, true
		}
	}
	return poolcache.PoolStats{}, false
}

func lease(t testing.TB, c *poolcache.Cache, id string) *poolcache.Lease {
	t.Helper()
	l, err := c.Lease(context.Background(), id)
	require.NoError(t, err)
	return l
}

const waitFor, tick = 10 * time.Second, 20 * time.Millisecond
