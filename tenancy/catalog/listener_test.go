package catalog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// jobsCatalog is a migrated catalog in a database of the test's own.
type jobsCatalog struct {
	env   *tenancytest.Env
	store *catalog.Store
	name  string // the catalog database's name
}

func newJobsCatalog(t *testing.T) *jobsCatalog {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e := tenancytest.NewEnv(t)
	require.NoError(t, schema.CreateDatabase(ctx, e.ServerURL, e.Prefix+"catalog"))
	_, err := schema.Migrate(ctx, e.CatalogURL, migrations.Catalog, "catalog", 0)
	require.NoError(t, err)
	pool, err := pgxpool.New(ctx, e.CatalogURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return &jobsCatalog{env: e, store: catalog.New(pool), name: e.Prefix + "catalog"}
}

// listening waits until one connection named appName listens on the
// catalog (its LISTEN done, now idle) other than those in not, and
// returns its backend pid.
func (c *jobsCatalog) listening(t *testing.T, appName string, not ...int) int {
	t.Helper()
	conn := tenancytest.Connect(t, c.env.ServerURL)
	var pid int
	require.Eventually(t, func() bool {
		err := conn.QueryRow(context.Background(), `SELECT pid FROM pg_stat_activity
			WHERE datname = $1 AND application_name = $2 AND state = 'idle' AND query LIKE 'LISTEN%'
				AND NOT pid = ANY($3)`, c.name, appName, append(not, 0)).Scan(&pid)
		if errors.Is(err, pgx.ErrNoRows) {
			return false
		}
		require.NoError(t, err)
		return true
	}, 30*time.Second, 10*time.Millisecond, "a %s listens", appName)
	return pid
}

// gone waits until no connection named appName is left on the catalog.
func (c *jobsCatalog) gone(t *testing.T, appName string) {
	t.Helper()
	conn := tenancytest.Connect(t, c.env.ServerURL)
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
			WHERE datname = $1 AND application_name = $2`, c.name, appName).Scan(&n))
		return n == 0
	}, 30*time.Second, 10*time.Millisecond, "every %s connection is closed", appName)
}

// TestListenerWakesAndStops: a listener wakes its owner once it listens
// (the catch-up read) and on each notification, and closes its connection
// when stopped.
func TestListenerWakesAndStops(t *testing.T) {
	t.Parallel()
	c := newJobsCatalog(t)
	const name = "tenantgate-test-listener"
	l := catalog.NewListener(func(ctx context.Context) (*pgx.Conn, error) { return c.store.ListenConn(ctx, name) }, nil, catalog.JobsChannel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	woken := func(what string) {
		t.Helper()
		select {
		case <-l.Wake():
		case <-time.After(30 * time.Second):
			t.Fatalf("not woken %s", what)
		}
	}
	woken("once listening")
	c.listening(t, name)

	_, err := c.store.EnqueueJob(context.Background(), catalog.JobDelete, "", catalog.DeletePayload{})
	require.NoError(t, err)
	woken("by a new job")

	cancel()
	<-done
	c.gone(t, name) // the backend exits after the goodbye
}

// TestListenerReconnects: a listener whose connection is terminated
// connects again and wakes its owner once it listens again, so the owner
// reads what it may have missed meanwhile.
func TestListenerReconnects(t *testing.T) {
	t.Parallel()
	c := newJobsCatalog(t)
	const name = "tenantgate-test-relistener"
	l := catalog.NewListener(func(ctx context.Context) (*pgx.Conn, error) { return c.store.ListenConn(ctx, name) }, nil, catalog.JobsChannel)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-l.Wake()
	pid := c.listening(t, name)

	var killed bool
	require.NoError(t, tenancytest.Connect(t, c.env.ServerURL).QueryRow(context.Background(),
		`SELECT pg_terminate_backend($1)`, pid).Scan(&killed))
	require.True(t, killed)
	c.listening(t, name, pid)
	select {
	case <-l.Wake():
	case <-time.After(30 * time.Second):
		t.Fatal("not woken after reconnecting")
	}
}
