package throttle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/outage"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// TestFallbackWhenRedisRefuses points the primary at a port where nothing
// listens: the network fault is real, not mocked.
func TestFallbackWhenRedisRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	local, _ := newLocal(100)
	log, logs := tenancytest.NewLog()
	c := WithFallback(NewRedis(client, prefix()), local, log)
	for want := int64(1); want <= 5; want++ {
		n, resetIn, err := c.Hit(ctx, "k", time.Minute)
		require.NoError(t, err)
		require.Equal(t, want, n)
		require.Equal(t, time.Minute, resetIn)
	}
	n, _, err := c.Peek(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, int64(5), n)
	n, _, _ = local.Peek(ctx, "k")
	require.Equal(t, int64(5), n, "the counts must be in the fallback")
	require.NoError(t, c.Reset(ctx, "k"))
	n, _, _ = local.Peek(ctx, "k")
	require.Zero(t, n)
	require.Equal(t, 1, logs.Count("WARN"), "one warning per outage")
}

// flaky is a Counter whose failures the test switches on and off.
type flaky struct {
	Counter
	fail  atomic.Bool
	calls atomic.Int64
}

var errDown = errors.New("down")

func (f *flaky) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	f.calls.Add(1)
	if f.fail.Load() {
		return 0, 0, errDown
	}
	return f.Counter.Hit(ctx, key, window)
}

func (f *flaky) Peek(ctx context.Context, key string) (int64, time.Duration, error) {
	if f.fail.Load() {
		return 0, 0, errDown
	}
	return f.Counter.Peek(ctx, key)
}

func (f *flaky) Reset(ctx context.Context, key string) error {
	if f.fail.Load() {
		return errDown
	}
	return f.Counter.Reset(ctx, key)
}

func TestFallbackLogsOncePerOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary := &flaky{Counter: NewLocal(100)}
	fallback := NewLocal(100)
	log, logs := tenancytest.NewLog()
	c := WithFallback(primary, fallback, log)
	// Retry primary on every call, so recovery shows at once.
	c.(*withFallback).outage = outage.New("test", log, 0)
	outage := func() {
		primary.fail.Store(true)
		for range 3 {
			_, _, err := c.Hit(ctx, "k", time.Minute)
			require.NoError(t, err)
		}
		primary.fail.Store(false)
		for range 3 {
			_, _, err := c.Hit(ctx, "k", time.Minute)
			require.NoError(t, err)
		}
	}
	outage()
	require.Equal(t, [2]int{1, 1}, [2]int{logs.Count("WARN"), logs.Count("INFO")})
	outage()
	require.Equal(t, [2]int{2, 2}, [2]int{logs.Count("WARN"), logs.Count("INFO")})
	n, _, _ := primary.Peek(ctx, "k")
	require.Equal(t, int64(6), n, "back from an outage, primary counts again")
	n, _, _ = fallback.Peek(ctx, "k")
	require.Equal(t, int64(6), n)
	require.NoError(t, c.Reset(ctx, "k"))
	n, _, _ = fallback.Peek(ctx, "k")
	require.Zero(t, n, "Reset must clear counts taken during outages too")
}

// TestFallbackIgnoresCallerCancellation: an error after the caller gave up
// says nothing about Redis, so it must not be logged as an outage.
func TestFallbackIgnoresCallerCancellation(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	log, logs := tenancytest.NewLog()
	local := NewLocal(100)
	c := WithFallback(NewRedis(redisClient(t), prefix()), local, log)
	n, _, err := c.Hit(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.Equal(t, int64(1), n)
	n, _, _ = local.Peek(context.Background(), "k")
	require.Equal(t, int64(1), n, "Redis must have refused the dead context")
	require.Zero(t, logs.Count("WARN"))
}

func TestFallbackRejectsBadWindow(t *testing.T) {
	t.Parallel()
	log, logs := tenancytest.NewLog()
	c := WithFallback(NewRedis(redisClient(t), prefix()), NewLocal(100), log)
	_, _, err := c.Hit(context.Background(), "k", 0)
	require.ErrorIs(t, err, errWindow)
	require.Zero(t, logs.Count("WARN"), "a bad window is no outage")
}

// TestFallbackSkipsADownPrimary: during an outage calls do not wait on the
// primary again until the retry interval passes.
func TestFallbackSkipsADownPrimary(t *testing.T) {
	t.Parallel()
	primary := &flaky{Counter: NewLocal(100)}
	primary.fail.Store(true)
	log, _ := tenancytest.NewLog()
	c := WithFallback(primary, NewLocal(100), log)
	for range 5 {
		_, _, err := c.Hit(context.Background(), "k", time.Minute)
		require.NoError(t, err)
	}
	require.EqualValues(t, 1, primary.calls.Load(), "one failure, then the fallback alone")
}
