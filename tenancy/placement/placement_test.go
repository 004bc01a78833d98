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
