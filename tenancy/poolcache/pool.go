package poolcache

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"
)

const (
	// maxConnIdleTime returns idle connections of a quiet tenant to the
	// budget even when nobody asks for them.
	maxConnIdleTime = time.Minute
	// healthCheckPeriod is how often pgxpool prunes idle connections.
	healthCheckPeriod = 15 * time.Second
)

// newEntry builds the pool of a database. It runs under Cache.mu, which is
// fine because pgxpool.NewWithConfig does no I/O: with MinConns 0 it only
// allocates and starts the health-check goroutine; connections are dialled
// on first Acquire, outside the lock.
func (c *Cache) newEntry(id string, t Target) (*entry, error) {
	cfg, err := pgxpool.ParseConfig(t.DSN)
	if err != nil {
		return nil, fmt.Errorf("poolcache: database %q: %w", id, err)
	}
	e := &entry{id: id, pinned: t.Pinned, server: c.serverBudget(t.Server), serverName: t.Server}
	cfg.MaxConns = c.cfg.DedicatedConns
	if t.Pinned {
		cfg.MaxConns = c.cfg.SharedConns
	}
	cfg.MinConns = 0 // an idle tenant holds no part of the budget
	cfg.MaxConnIdleTime = maxConnIdleTime
	cfg.HealthCheckPeriod = healthCheckPeriod
	cc := cfg.ConnConfig
	cc.ConnectTimeout = c.cfg.ConnectTimeout
	cc.RuntimeParams["application_name"] = c.cfg.AppName
	cc.DialFunc = c.dialer(e, cc.DialFunc)
	cc.Tracer = connectTagger{}
	if c.cfg.Tracer != nil {
		cc.Tracer = multitracer.New(connectTagger{}, c.cfg.Tracer)
	}
	if e.pool, err = pgxpool.NewWithConfig(context.Background(), cfg); err != nil {
		return nil, fmt.Errorf("poolcache: database %q: %w", id, err)
	}
	return e, nil
}

// serverBudget returns the connection budget of a server, made on first
// use; nil when servers are not capped. The caller holds Cache.mu.
func (c *Cache) serverBudget(server string) *budget {
	if c.cfg.MaxServerConns <= 0 || server == "" {
		return nil
	}
	b, ok := c.servers[server]
	if !ok {
		b = newBudget(c.cfg.MaxServerConns)
		c.servers[server] = b
	}
	return b
}
