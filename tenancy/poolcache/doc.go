// Package poolcache keeps one pgxpool.Pool per tenant database, keyed by
// database id, so that thousands of dedicated databases can be served by a
// bounded number of pools and server connections.
//
// A caller borrows a pool with [Cache.Lease] and gives it back with
// [Lease.Release], reporting how the work went. The cache promises:
//
//   - Single-flight opening: any number of concurrent first leases of a
//     database look it up once (the [Source], the catalog in production) and
//     build one pool.
//   - LRU eviction of dedicated pools (pinned shared pools are never evicted)
//     that never closes a pool under a running query: a dropped pool is
//     closed after its last lease returns, by a goroutine the Cache owns and
//     [Cache.Close] waits for, never under the cache lock.
//   - A hard budget of server connections across all pools. It is enforced
//     at the socket: every dial takes a token and the connection gives it
//     back when it is closed, so failed handshakes and closed pools free
//     their tokens too. A dial that finds the budget spent first takes an
//     idle connection away from another pool, so idle tenants cannot starve
//     a busy one.
//   - A circuit breaker per database: after Config.BreakerThreshold
//     consecutive connection failures (see [IsConnectionError]) its leases
//     fail fast with tenancy code tenant_unavailable and a Retry-After,
//     without touching the network, until one probe succeeds after the
//     cooldown. Other databases do not notice.
//
// The package imports only the root tenancy package of tenantgate.
package poolcache
