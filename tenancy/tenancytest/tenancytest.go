// Package tenancytest gives each test its own throwaway databases on the
// machine's real PostgreSQL (and key prefix on its real Redis), and sweeps
// what crashed runs left behind. A missing service fails the test; it never
// skips.
package tenancytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tenantgate/tenantgate/tenancy/schema"
)

// AppRole is the application role the tests query tenant data as.
const AppRole = "tenantgate_test_app"

// namePrefix starts every database a test creates; the base-36 creation
// time that follows lets a sweep tell stale databases from live ones.
const namePrefix = "tgt"

// ServerURL is the test PostgreSQL server (TENANTGATE_TEST_DATABASE_URL).
func ServerURL() string {
	if u := os.Getenv("TENANTGATE_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://root@127.0.0.1:5432/postgres?sslmode=disable"
}

// RedisURL is the test Redis server (TENANTGATE_TEST_REDIS_URL).
func RedisURL() string {
	if u := os.Getenv("TENANTGATE_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Env names one test's databases. Nothing exists until the test creates it;
// Cleanup drops every database whose name starts with Prefix.
type Env struct {
	ServerURL  string
	Prefix     string // every database of this env starts with it
	CatalogURL string
	SharedURL  string
	// DedicatedPrefix is the dedicated.database_prefix of this env.
	DedicatedPrefix string
	AppRole         string
	// RedisPrefix namespaces this test's Redis keys and channels.
	RedisPrefix string
}

// NewEnv returns fresh database names for t and drops them when t ends.
func NewEnv(t testing.TB) *Env {
	t.Helper()
	sweepOnce(t)
	id := randomHex(4)
	prefix := fmt.Sprintf("%s%s_%s_", namePrefix, strconv.FormatInt(time.Now().Unix(), 36), id)
	e := &Env{
		ServerURL:       ServerURL(),
		Prefix:          prefix,
		DedicatedPrefix: prefix + "d_",
		AppRole:         AppRole,
		RedisPrefix:     "tgtest:" + id + ":",
	}
	e.CatalogURL = mustWithDatabase(t, e.ServerURL, prefix+"catalog")
	e.SharedURL = mustWithDatabase(t, e.ServerURL, prefix+"shared")
	t.Cleanup(func() {
		// Generous: a benchmark may leave hundreds of databases to drop.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := dropMatching(ctx, e.ServerURL, func(name string) bool { return strings.HasPrefix(name, prefix) }); err != nil {
			t.Errorf("tenancytest: drop databases %s*: %v", prefix, err)
		}
	})
	return e
}

// DatabaseURL returns a DSN for database name on the test server.
func (e *Env) DatabaseURL(t testing.TB, name string) string {
	return mustWithDatabase(t, e.ServerURL, name)
}

// AppURL returns dsn connecting as the application role.
func (e *Env) AppURL(t testing.TB, dsn string) string {
	u, err := schema.WithUser(dsn, e.AppRole, "")
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Connect opens a connection to dsn, closed when t ends.
func Connect(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("tenancytest: PostgreSQL must be running for the tests: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func mustWithDatabase(t testing.TB, dsn, name string) string {
	u, err := schema.WithDatabase(dsn, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var sweep sync.Once

// sweepOnce drops test databases older than an hour: leftovers of runs that
// were killed before their cleanups ran. Younger ones may belong to another
// package's tests running right now.
func sweepOnce(t testing.TB) {
	sweep.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cutoff := time.Now().Add(-time.Hour).Unix()
		err := dropMatching(ctx, ServerURL(), func(name string) bool {
			stamp, _, ok := strings.Cut(strings.TrimPrefix(name, namePrefix), "_")
			if !strings.HasPrefix(name, namePrefix) || !ok {
				return false
			}
			created, err := strconv.ParseInt(stamp, 36, 64)
			return err == nil && created < cutoff
		})
		if err != nil {
			t.Fatalf("tenancytest: PostgreSQL must be running for the tests: %v", err)
		}
	})
}

func dropMatching(ctx context.Context, serverURL string, match func(string) bool) error {
	dsn, err := schema.WithDatabase(serverURL, "postgres")
	if err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE $1`, namePrefix+"%")
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, n := range names {
		if match(n) {
			if err := schema.DropDatabase(ctx, serverURL, n); err != nil {
				return err
			}
		}
	}
	return nil
}
