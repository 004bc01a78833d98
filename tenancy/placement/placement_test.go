package placement

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/outage"
)

func counting(epoch *atomic.Int64, reads *atomic.Int64) Source {
	return func(ctx context.Context, orgID string) (tenancy.Tenant, error) {
		reads.Add(1)
		if orgID == "missing" {
			return tenancy.Tenant{}, tenancy.ErrNotFound
		}
		time.Sleep(10 * time.Millisecond) // let concurrent misses pile up
		return tenancy.Tenant{Placement: tenancy.Placement{OrganizationID: orgID, DatabaseID: "db", Epoch: epoch.Load()}}, nil
	}
}

func TestLookupCachesAndInvalidates(t *testing.T) {
	t.Parallel()
	var epoch, reads atomic.Int64
	epoch.Store(1)
	c := New(10, time.Hour, counting(&epoch, &reads))
	ctx := context.Background()

	p, err := c.Lookup(ctx, "org")
	require.NoError(t, err)
	require.EqualValues(t, 1, p.Placement.Epoch)
	epoch.Store(2)
	p, _ = c.Lookup(ctx, "org")
	require.EqualValues(t, 1, p.Placement.Epoch, "served from cache")
	require.EqualValues(t, 1, reads.Load())

	c.Invalidate("org")
	p, _ = c.Lookup(ctx, "org")
	require.EqualValues(t, 2, p.Placement.Epoch, "an invalidation makes the next lookup read the catalog")

	epoch.Store(3)
	c.Invalidate("")
	p, _ = c.Lookup(ctx, "org")
	require.EqualValues(t, 3, p.Placement.Epoch, "purge")
}

func TestTTL(t *testing.T) {
	t.Parallel()
	var epoch, reads atomic.Int64
	c := New(10, time.Minute, counting(&epoch, &reads))
	now := time.Now()
	c.now = func() time.Time { return now }
	_, _ = c.Lookup(context.Background(), "org")
	now = now.Add(2 * time.Minute)
	epoch.Store(9)
	p, _ := c.Lookup(context.Background(), "org")
	require.EqualValues(t, 9, p.Placement.Epoch, "an expired entry is read again")
}

func TestSingleFlightAndErrors(t *testing.T) {
	t.Parallel()
	var epoch, reads atomic.Int64
	c := New(10, time.Hour, counting(&epoch, &reads))
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Lookup(context.Background(), "org")
			require.NoError(t, err)
		}()
	}
	wg.Wait()
	require.EqualValues(t, 1, reads.Load(), "50 concurrent misses read the catalog once")

	_, err := c.Lookup(context.Background(), "missing")
	require.True(t, errors.Is(err, tenancy.ErrNotFound))
	_, err = c.Lookup(context.Background(), "missing")
	require.Error(t, err)
	require.EqualValues(t, 3, reads.Load(), "errors are not cached")
}

func BenchmarkLookupHit(b *testing.B) {
	var epoch, reads atomic.Int64
	c := New(1000, time.Hour, counting(&epoch, &reads))
	ctx := context.Background()
	_, _ = c.Lookup(ctx, "org")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Lookup(ctx, "org"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestInvalidateDuringLookup: an invalidation that arrives while a lookup
// reads the catalog is not undone by that lookup caching what it read.
func TestInvalidateDuringLookup(t *testing.T) {
	t.Parallel()
	var epoch atomic.Int64
	epoch.Store(1)
	reading := make(chan struct{})
	proceed := make(chan struct{})
	var first atomic.Bool
	first.Store(true)
	c := New(10, time.Hour, func(ctx context.Context, orgID string) (tenancy.Tenant, error) {
		e := epoch.Load()
		if first.CompareAndSwap(true, false) {
			close(reading)
			<-proceed
		}
		return tenancy.Tenant{Placement: tenancy.Placement{Epoch: e}}, nil
	})
	done := make(chan tenancy.Tenant)
	go func() {
		p, _ := c.Lookup(context.Background(), "org")
		done <- p
	}()
	<-reading
	epoch.Store(2) // the move commits…
	c.Invalidate("org")
	fresh, err := c.Lookup(context.Background(), "org") // …and a new lookup does not join the old one
	require.NoError(t, err)
	require.EqualValues(t, 2, fresh.Placement.Epoch)
	close(proceed)
	require.EqualValues(t, 1, (<-done).Placement.Epoch, "the old lookup answers what it read")
	p, _ := c.Lookup(context.Background(), "org")
	require.EqualValues(t, 2, p.Placement.Epoch, "but did not cache it over the invalidation")
}

// TestServesStaleDuringCatalogOutage: an expired placement is served while
// the catalog cannot be read, trying the catalog again at most once a
// second, up to MaxStale; an unknown organization still fails, and so does
// one whose entry was invalidated.
func TestServesStaleDuringCatalogOutage(t *testing.T) {
	t.Parallel()
	var reads atomic.Int64
	var down atomic.Bool
	src := func(ctx context.Context, orgID string) (tenancy.Tenant, error) {
		reads.Add(1)
		if down.Load() {
			return tenancy.Tenant{}, tenancy.Unavailable(errors.New("catalog unreachable"), 2*time.Second)
		}
		return tenancy.Tenant{Placement: tenancy.Placement{OrganizationID: orgID, DatabaseID: "db", Epoch: 4}}, nil
	}
	c := New(10, time.Minute, src)
	now := time.Now()
	c.now = func() time.Time { return now }
	ctx := context.Background()
	for _, org := range []string{"cached", "dropped"} {
		_, err := c.Lookup(ctx, org)
		require.NoError(t, err)
	}

	down.Store(true)
	c.Invalidate("dropped")
	now = now.Add(2 * time.Minute) // past the TTL
	reads.Store(0)
	for range 100 {
		p, err := c.Lookup(ctx, "cached")
		require.NoError(t, err, "the cached tenant is served through the outage")
		require.EqualValues(t, 4, p.Placement.Epoch)
	}
	require.EqualValues(t, 1, reads.Load(), "within a second the catalog is tried once")
	now = now.Add(1100 * time.Millisecond)
	_, err := c.Lookup(ctx, "cached")
	require.NoError(t, err)
	require.EqualValues(t, 2, reads.Load(), "and again a second later")
	require.EqualValues(t, 101, c.Stats().Stale)

	_, err = c.Lookup(ctx, "dropped")
	require.Equal(t, tenancy.CodeTenantUnavailable, tenancy.ErrorCode(err), "nothing cached to serve")
	_, err = c.Lookup(ctx, "never-seen")
	require.Equal(t, tenancy.CodeTenantUnavailable, tenancy.ErrorCode(err))

	now = now.Add(outage.MaxStale)
	_, err = c.Lookup(ctx, "cached")
	require.Equal(t, tenancy.CodeTenantUnavailable, tenancy.ErrorCode(err), "not past MaxStale")

	down.Store(false)
	_, err = c.Lookup(ctx, "cached")
	require.NoError(t, err, "the catalog is back")
}
