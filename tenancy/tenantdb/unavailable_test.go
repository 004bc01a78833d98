package tenantdb

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestRefusedConnectionsAreUnavailable: a dedicated database that refuses
// the application's connections is the tenant's database being unable to
// serve, so the scope answers tenant_unavailable with a Retry-After, on the
// first requests and on every probe of the open breaker, and each of those
// failures counts for the breaker.
func TestRefusedConnectionsAreUnavailable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		refuse string // %[1]s the database, %[2]s the application role
		allow  string // undoes refuse, so that the database can be dropped
	}{
		{"allow_connections false", "ALTER DATABASE %[1]s ALLOW_CONNECTIONS false", "ALTER DATABASE %[1]s ALLOW_CONNECTIONS true"},
		{"connect revoked", "REVOKE CONNECT ON DATABASE %[1]s FROM PUBLIC, %[2]s", "GRANT CONNECT ON DATABASE %[1]s TO %[2]s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := tenancytest.NewEnv(t) // its cleanup, the drop, runs last
			dsn := e.NewTenantDatabase(t, "refusing")
			admin := tenancytest.Connect(t, e.ServerURL)
			sql := func(format string) string {
				return fmt.Sprintf(format, pgx.Identifier{e.Prefix + "refusing"}.Sanitize(), pgx.Identifier{e.AppRole}.Sanitize())
			}
			_, err := admin.Exec(ctx(t), sql(tc.refuse))
			require.NoError(t, err)
			t.Cleanup(func() {
				_, err := admin.Exec(context.Background(), sql(tc.allow))
				require.NoError(t, err)
			})

			const threshold = 2
			cache := poolcache.New(poolcache.Config{BreakerThreshold: threshold, BreakerCooldown: 100 * time.Millisecond,
				AppName: "tgtest-refused"}, func(context.Context, string) (poolcache.Target, error) {
				return poolcache.Target{DSN: e.AppURL(t, dsn)}, nil
			}, nil)
			t.Cleanup(cache.Close)
			var leased atomic.Int64 // leases granted: refusals of the open breaker are not
			agents := NewAgents(NewScope(func(ctx context.Context, id string) (*pgxpool.Pool, func(error), error) {
				l, err := cache.Lease(ctx, id)
				if err != nil {
					return nil, nil, err
				}
				leased.Add(1)
				return l.Pool(), l.Release, nil
			}))
			id := uuid.NewString()
			tenant := tenancy.Tenant{Organization: tenancy.Organization{ID: id, Slug: id[:8]},
				Placement: tenancy.Placement{OrganizationID: id, DatabaseID: "dedicated", State: tenancy.PlacementReady}}
			list := func() error {
				_, _, err := agents.List(ctx(t), tenant, tenancy.Page{})
				return err
			}

			// The first requests reach the database and are refused.
			for i := range threshold {
				requireUnavailable(t, list(), fmt.Sprintf("first use %d", i))
			}
			require.EqualValues(t, threshold, leased.Load())
			require.Equal(t, 1, cache.Stats().BreakersOpen, "the refusals counted as connection failures")

			// The open breaker answers without the database.
			requireUnavailable(t, list(), "breaker open")
			require.EqualValues(t, threshold, leased.Load())

			// Each probe after the cooldown reaches the database, is refused,
			// and keeps the breaker open.
			for probe := range 2 {
				before := leased.Load()
				deadline := time.Now().Add(10 * time.Second)
				for leased.Load() == before {
					require.True(t, time.Now().Before(deadline), "no probe was let through")
					requireUnavailable(t, list(), fmt.Sprintf("probe %d, or the wait for it", probe))
					time.Sleep(20 * time.Millisecond)
				}
				require.EqualValues(t, before+1, leased.Load(), "one probe at a time")
				require.Equal(t, 1, cache.Stats().BreakersOpen, "probe %d's refusal counted as a failure", probe)
			}
		})
	}
}

func requireUnavailable(t *testing.T, err error, what string) {
	t.Helper()
	require.Equal(t, tenancy.CodeTenantUnavailable, tenancy.ErrorCode(err), "%s: %v", what, err)
	var te *tenancy.Error
	require.ErrorAs(t, err, &te)
	require.Positive(t, te.RetryAfter, what)
}

// TestStatementErrorsAreNotUnavailable: the SQLSTATEs that mean "refused"
// when connecting mean a bug when a statement returns them.
func TestStatementErrorsAreNotUnavailable(t *testing.T) {
	t.Parallel()
	for _, code := range []string{"42501", "55000", "42P01"} {
		err := interpret(&pgconn.PgError{Code: code})
		require.Equal(t, tenancy.CodeInternal, tenancy.ErrorCode(err), code)
	}
}
