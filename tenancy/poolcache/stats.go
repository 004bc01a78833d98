package poolcache

import (
	"slices"
	"strings"
)

// Stats is a snapshot of a Cache.
type Stats struct {
	Open      int   // pools cached (pinned and LRU), not counting dropped ones still leased
	Hits      int64 // leases served by a cached pool
	Misses    int64 // leases that opened a pool or waited for its opening
	Evictions int64 // pools dropped by LRU pressure, Invalidate or Close
	Opens     int64 // pools created
	InUse     int   // connections borrowed, over all pools
	Idle      int   // idle connections, over all pools
	// TotalConns is the part of the connection budget in use: every
	// connection open or being opened.
	TotalConns int
	// Waits counts connection dials that queued for the budget (the
	// gateway's or a server's) since the cache started.
	Waits        int64
	BreakersOpen int         // databases whose breaker is open
	Pools        []PoolStats // every pool not yet closing, dropped ones included
}

// PoolStats describes one pool.
type PoolStats struct {
	DatabaseID  string
	Server      string // Target.Server: the PostgreSQL server holding the database
	Pinned      bool
	Dropped     bool // evicted or invalidated, closes at its last release
	Leases      int
	InUse       int
	Idle        int
	Total       int
	BreakerOpen bool
}

// Stats returns a snapshot of the cache. Pool statistics are read after the
// cache lock is released.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	s := Stats{
		Open:      c.lru.Len() + len(c.pinned),
		Hits:      c.counters.hits,
		Misses:    c.counters.misses,
		Evictions: c.counters.evictions,
		Opens:     c.counters.opens,
	}
	servers := make([]*budget, 0, len(c.servers))
	for _, b := range c.servers {
		servers = append(servers, b)
	}
	for _, b := range c.breakers {
		if b.failures >= c.cfg.BreakerThreshold {
			s.BreakersOpen++
		}
	}
	entries := make([]*entry, 0, len(c.live))
	for e := range c.live {
		entries = append(entries, e)
		b := c.breakers[e.id]
		s.Pools = append(s.Pools, PoolStats{
			DatabaseID:  e.id,
			Server:      e.serverName,
			Pinned:      e.pinned,
			Dropped:     e.dropped,
			Leases:      e.leases,
			BreakerOpen: b != nil && b.failures >= c.cfg.BreakerThreshold,
		})
	}
	c.mu.Unlock()
	for i, e := range entries {
		st := e.pool.Stat()
		p := &s.Pools[i]
		p.InUse, p.Idle, p.Total = int(st.AcquiredConns()), int(st.IdleConns()), int(st.TotalConns())
		s.InUse += p.InUse
		s.Idle += p.Idle
	}
	s.TotalConns, s.Waits = c.budget.state()
	for _, b := range servers {
		_, waits := b.state()
		s.Waits += waits
	}
	slices.SortFunc(s.Pools, func(a, b PoolStats) int { return strings.Compare(a.DatabaseID, b.DatabaseID) })
	return s
}
