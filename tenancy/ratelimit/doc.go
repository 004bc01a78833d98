// Package ratelimit holds each tenant to its plan's requests per second, so
// that one tenant's flood earns it 429 rate_limited while other tenants are
// served as usual.
//
// A [Limit] is a steady rate with a burst: a tenant that was quiet may send
// Burst requests at once, then one every 1/RPS seconds. Each [Limiter.Allow]
// answers one request with a [Decision]; [Headers] turns it into the
// RateLimit-* and Retry-After response headers.
//
// [Redis] keeps one bucket per key in Redis with the generic cell rate
// algorithm (go-redis/redis_rate), read and updated in one Lua call, so every
// replica using the same Redis and prefix enforces one limit per tenant and
// concurrent requests cannot overspend it. [Local] keeps token buckets
// (golang.org/x/time/rate) in one process, in bounded memory. [WithFallback]
// uses Redis and falls back to a Local while Redis is away: each replica then
// enforces the limit on its own, so a tenant may get up to replicas × RPS,
// which is weaker but better than refusing everyone or limiting no one.
//
// Callers decide what a key is (for instance the organization id); the
// package only counts.
package ratelimit
