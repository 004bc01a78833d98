package throttle

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// hitScript counts and, on a key's first event, starts its window, in one
// step: with INCR and PEXPIRE sent apart, a crash or lost connection between
// them would leave a key that never expires and throttles its owner forever.
// It tests PTTL rather than the count, so a key that somehow lost its expiry
// gets one again.
var hitScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
	ttl = tonumber(ARGV[1])
end
return {n, ttl}
`)

// peekScript reads count and time left together, so they belong to the
// same window.
var peekScript = redis.NewScript(`
local n = redis.call('GET', KEYS[1])
if not n then
	return {0, 0}
end
return {tonumber(n), redis.call('PTTL', KEYS[1])}
`)

// undoScript decrements a live window's count, never below zero, and never
// creates a key (a DECR of a missing key would make one without expiry).
var undoScript = redis.NewScript(`
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
	redis.call('DECR', KEYS[1])
end
return 0
`)

// Redis is a Counter in Redis, shared by every replica that uses the same
// Redis and prefix. Windows are timed by Redis's clock, not the replicas'.
type Redis struct {
	client *redis.Client
	prefix string
}

// NewRedis returns a Counter on client whose keys are prefix+key.
func NewRedis(client *redis.Client, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// Hit counts one event for key, starting a window if key has no live one.
func (r *Redis) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	if err := checkWindow(window); err != nil {
		return 0, 0, err
	}
	res, err := hitScript.Run(ctx, r.client, []string{r.prefix + key}, window.Milliseconds()).Int64Slice()
	return countAndTTL("hit", key, res, err)
}

// Peek returns key's count and time left without counting.
func (r *Redis) Peek(ctx context.Context, key string) (int64, time.Duration, error) {
	res, err := peekScript.Run(ctx, r.client, []string{r.prefix + key}).Int64Slice()
	return countAndTTL("peek", key, res, err)
}

// Reset forgets key.
func (r *Redis) Reset(ctx context.Context, key string) error {
	if err := r.client.Del(ctx, r.prefix+key).Err(); err != nil {
		return fmt.Errorf("throttle: redis reset %q: %w", key, err)
	}
	return nil
}

// Undo takes back one event of key's live window.
func (r *Redis) Undo(ctx context.Context, key string) error {
	if err := undoScript.Run(ctx, r.client, []string{r.prefix + key}).Err(); err != nil {
		return fmt.Errorf("throttle: redis undo %q: %w", key, err)
	}
	return nil
}

// countAndTTL reads a script's {count, PTTL} reply. The length check guards
// against a key someone else wrote: Lua drops a non-numeric count from the
// reply instead of failing.
func countAndTTL(op, key string, res []int64, err error) (int64, time.Duration, error) {
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("unexpected reply %v", res)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("throttle: redis %s %q: %w", op, key, err)
	}
	// A key without expiry (PTTL -1) was not written by Hit; report no time
	// left rather than a negative one.
	return res[0], time.Duration(max(res[1], 0)) * time.Millisecond, nil
}
