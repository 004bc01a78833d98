// Package placement caches each organization with where its data lives. Entries
// expire after a TTL and are dropped at once when a move broadcasts an
// invalidation, so every gateway replica follows a move within the
// broadcast's delay, or the TTL when the broadcast is lost.
package placement

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/singleflight"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/outage"
)

// Source reads an organization and its placement from the catalog.
type Source func(ctx context.Context, orgID string) (tenancy.Tenant, error)

type entry struct {
	t       tenancy.Tenant
	expires time.Time
}

// Cache is an LRU of placements with a TTL.
//
// It does not use golang-lru's expirable cache: that one starts a goroutine
// per cache that can never be stopped.
type Cache struct {
	lru    *lru.Cache[string, entry]
	ttl    time.Duration
	src    Source
	flight singleflight.Group
	now    func() time.Time

	hits, misses, invalidations, stale atomic.Int64
	// outage paces catalog reads while the catalog fails.
	outage outage.Stale
	// generation grows with every invalidation. A lookup that was already
	// reading the catalog when one arrived may hold the old placement: it
	// answers its callers but does not cache what it read.
	generation atomic.Uint64
	// fillMu makes "still the same generation? then cache" one step that
	// an Invalidate cannot fall in between. Hits never take it.
	fillMu sync.Mutex
}

// New returns a cache of at most size placements trusted for ttl.
func New(size int, ttl time.Duration, src Source) *Cache {
	c, err := lru.New[string, entry](size)
	if err != nil {
		panic(err) // only for size <= 0, a programming error
	}
	return &Cache{lru: c, ttl: ttl, src: src, now: time.Now}
}

// Lookup returns orgID's placement, from the cache when fresh. Concurrent
// misses for one organization share a single catalog read. When the
// catalog cannot be read, an expired placement up to outage.MaxStale old
// is served instead of failing the tenant. That is safe: placements change
// only by moves, which need the catalog, and a tenant whose move had begun
// is fenced inside its source database, which refuses the writes a stale
// placement sends there.
func (c *Cache) Lookup(ctx context.Context, orgID string) (tenancy.Tenant, error) {
	e, cached := c.lru.Get(orgID)
	now := c.now()
	if cached && now.Before(e.expires) {
		c.hits.Add(1)
		return e.t, nil
	}
	usable := cached && outage.Usable(e.expires, now)
	if usable && c.outage.Wait(now) {
		c.stale.Add(1)
		return e.t, nil
	}
	c.misses.Add(1)
	v, err, _ := c.flight.Do(orgID, func() (any, error) {
		// The shared call must not die with the first caller's request.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		gen := c.generation.Load()
		p, err := c.src(ctx, orgID)
		if err != nil {
			return tenancy.Tenant{}, err
		}
		c.fillMu.Lock()
		if c.generation.Load() == gen {
			c.lru.Add(orgID, entry{t: p, expires: c.now().Add(c.ttl)})
		}
		c.fillMu.Unlock()
		return p, nil
	})
	switch {
	case err == nil:
		c.outage.Worked()
		return v.(tenancy.Tenant), nil
	case usable && tenancy.ErrorCode(err) != tenancy.CodeNotFound:
		c.outage.Failed(c.now())
		c.stale.Add(1)
		return e.t, nil
	}
	return tenancy.Tenant{}, err
}

// Invalidate drops orgID's entry, or every entry when orgID is "".
func (c *Cache) Invalidate(orgID string) {
	c.fillMu.Lock()
	defer c.fillMu.Unlock()
	c.generation.Add(1)
	c.invalidations.Add(1)
	if orgID == "" {
		c.lru.Purge()
		return
	}
	// Later lookups must not join one that started before the change.
	c.flight.Forget(orgID)
	c.lru.Remove(orgID)
}

// Stats are the cache's counters since it started.
type Stats struct {
	Entries      int   `json:"entries"`
	Hits, Misses int64 `json:"-"`
	// Invalidations counts Invalidate calls: broadcasts, the change feed
	// and local changes.
	Invalidations int64 `json:"-"`
	// Stale counts expired placements served because the catalog could
	// not be read.
	Stale int64 `json:"-"`
}

// Stats returns the cache's counters.
func (c *Cache) Stats() Stats {
	return Stats{Entries: c.lru.Len(), Hits: c.hits.Load(), Misses: c.misses.Load(), Invalidations: c.invalidations.Load(), Stale: c.stale.Load()}
}
