package changes

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/broadcast"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newStore(t *testing.T) *catalog.Store {
	e := tenancytest.NewEnv(t)
	ctx := context.Background()
	require.NoError(t, schema.CreateDatabase(ctx, e.ServerURL, e.Prefix+"catalog"))
	_, err := schema.Migrate(ctx, e.CatalogURL, migrations.Catalog, "catalog", 0)
	require.NoError(t, err)
	pool, err := pgxpool.New(ctx, e.CatalogURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return catalog.New(pool)
}

type recorder struct {
	mu  sync.Mutex
	got []tenancy.Change
}

func (r *recorder) apply(c tenancy.Change) {
	r.mu.Lock()
	r.got = append(r.got, c)
	r.mu.Unlock()
}

func (r *recorder) all() []tenancy.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]tenancy.Change(nil), r.got...)
}

// TestBroadcastAndPollDeliverOnce: a follower on the same bus gets the
// change at once, and only once although the poll brings it again.
func TestBroadcastAndPollDeliverOnce(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	bus := broadcast.NewLocal()
	feed := New(store, bus, quiet)
	feed.PollEvery = 20 * time.Millisecond
	var r recorder
	stop := feed.Follow(r.apply)
	defer stop()
	until := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	require.NoError(t, feed.Publish(context.Background(), tenancy.ChangeToken, "jti-1", until))
	got := r.all()
	require.Len(t, got, 1, "the local broadcast delivers synchronously")
	require.Equal(t, "jti-1", got[0].Subject)
	require.True(t, until.Equal(got[0].Until))
	time.Sleep(200 * time.Millisecond) // several polls see the same change
	require.Len(t, r.all(), 1, "delivered once")
}

// TestPollCatchesLostBroadcast: a replica whose broadcast never arrives
// (separate buses, as when Redis is down) still learns from the catalog.
func TestPollCatchesLostBroadcast(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	writer := New(store, broadcast.NewLocal(), quiet)
	reader := New(store, broadcast.NewLocal(), quiet)
	reader.PollEvery = 20 * time.Millisecond
	var r recorder
	stop := reader.Follow(r.apply)
	defer stop()
	require.NoError(t, writer.Publish(context.Background(), tenancy.ChangeOrganization, "org-9", time.Time{}))
	require.Eventually(t, func() bool { return len(r.all()) == 1 }, 5*time.Second, 10*time.Millisecond)
	c := r.all()[0]
	require.Equal(t, tenancy.ChangeOrganization, c.Kind)
	require.Equal(t, "org-9", c.Subject)
	require.True(t, c.Until.IsZero())
}
