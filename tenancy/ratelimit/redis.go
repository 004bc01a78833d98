package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis is a Limiter in Redis, shared by every replica that uses the same
// Redis and prefix. Buckets are timed by Redis's clock, not the replicas',
// and expire once full, so idle tenants cost no memory.
type Redis struct {
	limiter *redis_rate.Limiter
	prefix  string
}

// NewRedis returns a Limiter on client whose keys are prefix+key.
// (redis_rate puts "rate:" in front of every key it writes, so the Redis
// key is "rate:"+prefix+key.)
func NewRedis(client *redis.Client, prefix string) *Redis {
	return &Redis{limiter: redis_rate.NewLimiter(client), prefix: prefix}
}

// Allow counts one request for key against l, if it is allowed.
func (r *Redis) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	_, d, err := r.take(ctx, key, l, 1)
	return d, err
}

// take takes up to n requests' worth of tokens for key at once and returns
// how many it got, with the decision for the first of them.
func (r *Redis) take(ctx context.Context, key string, l Limit, n int) (int, Decision, error) {
	l, err := l.normalize()
	if err != nil {
		return 0, Decision{}, err
	}
	res, err := r.limiter.AllowAtMost(ctx, r.prefix+key, redis_rate.Limit{Rate: l.RPS, Burst: l.Burst, Period: time.Second}, n)
	if err != nil {
		return 0, Decision{}, fmt.Errorf("ratelimit: redis allow %q: %w", key, err)
	}
	d := Decision{
		Allowed:    res.Allowed > 0,
		Limit:      l.RPS,
		Remaining:  res.Remaining,
		ResetAfter: max(res.ResetAfter, 0),
	}
	if !d.Allowed {
		// redis_rate says -1 when allowed and a positive wait when not;
		// the floor keeps the promise RetryAfter > 0 even if its float
		// arithmetic lands on zero.
		d.RetryAfter = max(res.RetryAfter, time.Nanosecond)
	}
	return res.Allowed, d, nil
}
