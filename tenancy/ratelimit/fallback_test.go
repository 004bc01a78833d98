package ratelimit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

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
	// One dial per call, as the gateway's client should be set up: go-redis
	// otherwise dials five times, 100 ms apart, before giving up.
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialerRetries: 1})
	t.Cleanup(func() { client.Close() })
	local, _ := newLocal(100)
	log, logs := tenancytest.NewLog()
	l := WithFallback(NewRedis(client, prefix()), local, log)
	spendBurst(t, l, "k")
	d, err := l.Allow(ctx, "k", five)
	requireRefused(t, d, err)
	d, _ = local.Allow(ctx, "k", five)
	require.False(t, d.Allowed, "the requests must have been counted in the fallback")
	require.Equal(t, 1, logs.Count("WARN"), "one warning per outage")
}

// flaky is a Limiter whose failures the test switches on and off.
type flaky struct {
	Limiter
	fail atomic.Bool
}

var errDown = errors.New("down")

func (f *flaky) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	if f.fail.Load() {
		return Decision{}, errDown
	}
	return f.Limiter.Allow(ctx, key, l)
}

func TestFallbackLogsOncePerOutage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Clocks that stand still: what each limiter counted shows in
	// Remaining exactly, whatever time the test takes (nothing refills).
	p, _ := newLocal(100)
	primary := &flaky{Limiter: p}
	fallback, _ := newLocal(100)
	log, logs := tenancytest.NewLog()
	l := WithFallback(primary, fallback, log)
	// Retry primary on every call, so recovery shows at once.
	l.(*withFallback).outage = outage.New("test", log, 0)
	lim := Limit{RPS: 100}
	outage := func() {
		primary.fail.Store(true)
		for range 3 {
			_, err := l.Allow(ctx, "k", lim)
			require.NoError(t, err)
		}
		primary.fail.Store(false)
		for range 3 {
			_, err := l.Allow(ctx, "k", lim)
			require.NoError(t, err)
		}
	}
	outage()
	require.Equal(t, [2]int{1, 1}, [2]int{logs.Count("WARN"), logs.Count("INFO")})
	outage()
	require.Equal(t, [2]int{2, 2}, [2]int{logs.Count("WARN"), logs.Count("INFO")})
	d, _ := primary.Allow(ctx, "k", lim)
	require.Less(t, d.Remaining, 94, "back from an outage, primary counts again")
	d, _ = fallback.Allow(ctx, "k", lim)
	require.Less(t, d.Remaining, 94, "during outages, fallback counts")
}

// TestFallbackIgnoresCallerCancellation: an error after the caller gave up
// says nothing about Redis, so it must not be logged as an outage.
func TestFallbackIgnoresCallerCancellation(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	log, logs := tenancytest.NewLog()
	local, _ := newLocal(100)
	l := WithFallback(NewRedis(redisClient(t), prefix()), local, log)
	d, err := l.Allow(ctx, "k", five)
	requireAllowed(t, 4, d, err)
	d, _ = local.Allow(context.Background(), "k", five)
	require.Equal(t, 3, d.Remaining, "Redis must have refused the dead context")
	require.Zero(t, logs.Count("WARN"))
}

func TestFallbackRejectsBadLimit(t *testing.T) {
	t.Parallel()
	log, logs := tenancytest.NewLog()
	l := WithFallback(NewRedis(redisClient(t), prefix()), NewLocal(100), log)
	_, err := l.Allow(context.Background(), "k", Limit{})
	require.ErrorIs(t, err, errLimit)
	require.Zero(t, logs.Count("WARN"), "a bad limit is no outage")
}
