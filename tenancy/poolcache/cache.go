package poolcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrClosed is returned by Lease after Close.
var ErrClosed = errors.New("poolcache: cache closed")

// Cache holds one pgxpool.Pool per database. Its methods are safe for
// concurrent use.
type Cache struct {
	cfg    Config
	src    Source
	log    *slog.Logger
	budget *budget
	// servers are the per-server budgets by Target.Server, under mu.
	servers map[string]*budget

	mu       sync.Mutex
	lru      *simplelru.LRU[string, *entry] // unpinned pools
	pinned   map[string]*entry
	live     map[*entry]struct{} // every pool not yet being closed
	opening  map[string]*openCall
	breakers map[string]*breaker
	closed   bool
	counters counters

	// closers counts background pool closes; Close waits for them.
	closers sync.WaitGroup
}

type counters struct{ hits, misses, evictions, opens int64 }

// entry is one pool. Its mutable fields are guarded by Cache.mu.
type entry struct {
	id     string
	pinned bool
	pool   *pgxpool.Pool

	// server is the budget of the database's server, nil when uncapped;
	// serverName names that server (Target.Server) in statistics.
	server     *budget
	serverName string

	leases  int
	dropped bool // no longer cached: close at the last release
	closing bool // the close has been started
}

// openCall is a pool open in flight; later leases of the same database wait
// for it instead of opening a second pool.
type openCall struct {
	done chan struct{}
	err  error // set before done is closed
	// stale is set by Invalidate: the target was looked up before the
	// database moved, so the opener must look it up again.
	stale bool
}

// New returns an empty cache. log may be nil.
func New(cfg Config, src Source, log *slog.Logger) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg = cfg.withDefaults()
	c := &Cache{
		cfg:      cfg,
		src:      src,
		log:      log,
		budget:   newBudget(cfg.MaxTotalConns),
		servers:  map[string]*budget{},
		pinned:   make(map[string]*entry),
		live:     make(map[*entry]struct{}),
		opening:  make(map[string]*openCall),
		breakers: make(map[string]*breaker),
	}
	// The callback runs inside lru calls, which we only make under c.mu.
	c.lru, _ = simplelru.NewLRU(cfg.MaxOpen, func(_ string, e *entry) { c.dropLocked(e) })
	return c
}

// Lease borrows the pool of databaseID, opening it on first use. The caller
// must Release it when its work is done. It fails fast with a
// tenant_unavailable error while the database's breaker is open.
func (c *Cache) Lease(ctx context.Context, databaseID string) (*Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	missed := false
	for {
		c.mu.Lock()
		l, call, opener, err := c.leaseOrJoinLocked(databaseID, missed)
		c.mu.Unlock()
		if l != nil || err != nil {
			return l, err
		}
		missed = true
		if opener {
			l, err = c.open(ctx, databaseID, call)
		} else {
			err = c.await(ctx, call)
		}
		if l != nil || err != nil {
			return l, err
		}
	}
}

// leaseOrJoinLocked leases a cached pool, or returns the open in flight to
// wait for, registering a new one (opener) when there is none.
func (c *Cache) leaseOrJoinLocked(id string, missed bool) (*Lease, *openCall, bool, error) {
	if c.closed {
		return nil, nil, false, ErrClosed
	}
	halfOpen, err := c.admitLocked(id)
	if err != nil {
		return nil, nil, false, err
	}
	if e := c.lookupLocked(id); e != nil {
		return c.leaseLocked(e, halfOpen, missed), nil, false, nil
	}
	if call := c.opening[id]; call != nil {
		return nil, call, false, nil
	}
	call := &openCall{done: make(chan struct{})}
	c.opening[id] = call
	return nil, call, true, nil
}

func (c *Cache) lookupLocked(id string) *entry {
	if e := c.pinned[id]; e != nil {
		return e
	}
	e, _ := c.lru.Get(id)
	return e
}

func (c *Cache) leaseLocked(e *entry, probe, missed bool) *Lease {
	if probe {
		c.claimProbeLocked(e.id)
	}
	if missed {
		c.counters.misses++
	} else {
		c.counters.hits++
	}
	e.leases++
	return &Lease{c: c, e: e, probe: probe}
}

// await waits for another lease's open. A nil error with a nil lease means
// "look again".
func (c *Cache) await(ctx context.Context, call *openCall) error {
	select {
	case <-call.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	// The opener's own deadline is no reason to fail this lease.
	if isContextErr(call.err) && ctx.Err() == nil {
		return nil
	}
	return call.err
}

// open looks the database up and caches a new pool for it. It returns a nil
// lease and error when the lookup went stale and must be retried.
func (c *Cache) open(ctx context.Context, id string, call *openCall) (*Lease, error) {
	target, srcErr := c.src(ctx, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	defer close(call.done)
	delete(c.opening, id)
	switch {
	case srcErr != nil:
		call.err = fmt.Errorf("poolcache: look up database %q: %w", id, srcErr)
	case c.closed:
		call.err = ErrClosed
	case call.stale:
		return nil, nil
	}
	if call.err != nil {
		return nil, call.err
	}
	e, err := c.newEntry(id, target)
	if err != nil {
		call.err = err
		return nil, err
	}
	c.insertLocked(e)
	// The breaker may have opened while we looked up: waiters will see it
	// when they look again.
	halfOpen, err := c.admitLocked(id)
	if err != nil {
		return nil, err
	}
	return c.leaseLocked(e, halfOpen, true), nil
}

// insertLocked caches a new entry. The key is absent: only the registered
// opener of an id inserts it. That matters because golang-lru's Add of a
// present key replaces the value without the eviction callback, which
// would leak the replaced pool.
func (c *Cache) insertLocked(e *entry) {
	if e.pinned {
		c.pinned[e.id] = e
	} else {
		c.lru.Add(e.id, e)
	}
	c.live[e] = struct{}{}
	c.counters.opens++
	c.log.Debug("poolcache: pool opened", "database", e.id, "pinned", e.pinned)
}

// dropLocked takes e out of service; it is closed now if nobody holds it,
// otherwise at its last release.
func (c *Cache) dropLocked(e *entry) {
	e.dropped = true
	c.counters.evictions++
	if e.leases == 0 {
		c.closeLocked(e)
	}
}

// closeLocked closes e's pool in the background: pgxpool's Close blocks
// until every borrowed connection is back, which must never happen under
// c.mu.
func (c *Cache) closeLocked(e *entry) {
	if e.closing {
		return
	}
	e.closing = true
	delete(c.live, e)
	c.closers.Add(1)
	go func() {
		defer c.closers.Done()
		e.pool.Close()
		c.log.Debug("poolcache: pool closed", "database", e.id)
	}()
}

// Invalidate drops the pool of databaseID, e.g. after the database moved or
// was deleted, and resets its breaker. Running work keeps its connections;
// the pool closes after its last lease. The next Lease looks it up anew.
func (c *Cache) Invalidate(databaseID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.pinned[databaseID]; e != nil {
		delete(c.pinned, databaseID)
		c.dropLocked(e)
	}
	c.lru.Remove(databaseID) // the callback drops it
	if call := c.opening[databaseID]; call != nil {
		call.stale = true
	}
	delete(c.breakers, databaseID)
}

// Close closes every pool and waits until they are closed, which includes
// waiting for connections still borrowed by running work. Lease fails with
// ErrClosed afterwards.
func (c *Cache) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.lru.Purge()
		for id, e := range c.pinned {
			delete(c.pinned, id)
			c.dropLocked(e)
		}
		// Leased pools too: pgxpool's Close still lets running queries finish.
		for e := range c.live {
			c.closeLocked(e)
		}
	}
	c.mu.Unlock()
	c.closers.Wait()
}

// Lease is a borrowed pool. Its pool stays open until Release, even if the
// cache drops it meanwhile.
type Lease struct {
	c        *Cache
	e        *entry
	probe    bool // admitted as the half-open breaker's probe
	released atomic.Bool
}

// Pool returns the leased pool. It must not be used after Release.
func (l *Lease) Pool() *pgxpool.Pool { return l.e.pool }

// Release returns the lease and reports the outcome of the work done with
// it to the database's breaker: a connection-class error (IsConnectionError)
// counts as a failure, nil or any other error as a success. Calls after the
// first do nothing.
func (l *Lease) Release(err error) {
	if !l.released.CompareAndSwap(false, true) {
		return
	}
	c := l.c
	c.mu.Lock()
	l.e.leases--
	change := c.recordLocked(l.e.id, l.probe, IsConnectionError(err), err)
	if l.e.dropped && l.e.leases == 0 {
		c.closeLocked(l.e)
	}
	c.mu.Unlock()
	c.logBreaker(l.e.id, change, err)
}

// isContextErr reports whether err is only a context ending.
func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func (c *Cache) logBreaker(id string, change breakerChange, err error) {
	switch change {
	case breakerOpened:
		c.log.Warn("poolcache: breaker opened", "database", id,
			"cooldown", c.cfg.BreakerCooldown.String(), "err", err)
	case breakerClosed:
		c.log.Info("poolcache: breaker closed", "database", id)
	}
}
