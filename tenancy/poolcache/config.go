package poolcache

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config sizes a Cache. Zero fields take the defaults stated on each.
type Config struct {
	// MaxOpen is the most unpinned (dedicated) pools held at once; the least
	// recently leased is dropped beyond it. Default 64.
	MaxOpen int
	// MaxTotalConns is the hard cap on server connections across all pools
	// of the cache. Default 80.
	MaxTotalConns int
	// SharedConns is MaxConns of a pinned (shared-database) pool. Default 16,
	// capped at MaxTotalConns.
	SharedConns int32
	// DedicatedConns is MaxConns of an unpinned (dedicated) pool. Default 4,
	// capped at MaxTotalConns.
	DedicatedConns int32
	// ConnectTimeout bounds one connection attempt, including the wait for a
	// budget token. Default 2s (pgx would wait 2 minutes).
	ConnectTimeout time.Duration
	// BreakerThreshold is the number of consecutive connection failures that
	// open a database's breaker. Default 3.
	BreakerThreshold int
	// BreakerCooldown is how long an open breaker refuses leases before it
	// lets one probe through. Default 5s.
	BreakerCooldown time.Duration
	// AppName is the application_name of every connection. Default
	// "tenantgate".
	AppName string
	// MaxServerConns caps this cache's connections to any one server
	// (Target.Server), on top of MaxTotalConns. 0: no cap per server.
	MaxServerConns int
	// Tracer, when set, also traces every pool's queries (OpenTelemetry,
	// in production).
	Tracer pgx.QueryTracer
}

func (c Config) withDefaults() Config {
	orDefault(&c.MaxOpen, 64)
	orDefault(&c.MaxTotalConns, 80)
	orDefault(&c.SharedConns, 16)
	orDefault(&c.DedicatedConns, 4)
	orDefault(&c.ConnectTimeout, 2*time.Second)
	orDefault(&c.BreakerThreshold, 3)
	orDefault(&c.BreakerCooldown, 5*time.Second)
	orDefault(&c.AppName, "tenantgate")
	// A pool larger than the budget could never fill, and its waiters would
	// only queue for tokens.
	c.SharedConns = min(c.SharedConns, int32(c.MaxTotalConns))
	c.DedicatedConns = min(c.DedicatedConns, int32(c.MaxTotalConns))
	return c
}

// orDefault sets *v to def when it is zero, negative or empty.
func orDefault[T int | int32 | time.Duration | string](v *T, def T) {
	var zero T
	if *v <= zero {
		*v = def
	}
}

// Target says how to reach a database. Pinned pools (the shared databases)
// are never evicted.
type Target struct {
	DSN    string
	Pinned bool
	// Server names the PostgreSQL server holding the database; pools of
	// one server share its connection cap (Config.MaxServerConns).
	Server string
}

// Source looks a database up (the catalog, in production). The cache calls
// it once per pool open, outside its lock.
type Source func(ctx context.Context, databaseID string) (Target, error)
