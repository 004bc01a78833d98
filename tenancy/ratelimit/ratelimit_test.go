package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// five is the limit of the conformance suite.
var five = Limit{RPS: 5, Burst: 5}

// subject is one Limiter under test, with a way to let time pass on the
// Limiter's clock.
type subject struct {
	l    Limiter
	pass func(time.Duration)
}

func newLocal(maxKeys int) (*Local, *tenancytest.Clock) {
	clock := tenancytest.NewClock()
	l := NewLocal(maxKeys)
	l.now = clock.Now
	return l, clock
}

func localSubject(testing.TB) subject {
	l, clock := newLocal(1000)
	return subject{l: l, pass: clock.Advance}
}

// redisSubject limits in the real Redis under a fresh prefix. Redis's clock
// cannot be faked, so time passes by sleeping; every bucket expires once
// full, so nothing is left behind.
func redisSubject(t testing.TB) subject {
	return subject{l: NewRedis(redisClient(t), prefix()), pass: time.Sleep}
}

// requireAllowed checks that d allowed a request under five and left
// remaining.
func requireAllowed(t *testing.T, remaining int, d Decision, err error) {
	t.Helper()
	require.NoError(t, err)
	require.True(t, d.Allowed, "%+v", d)
	require.Equal(t, [2]int{5, remaining}, [2]int{d.Limit, d.Remaining}, "limit, remaining")
	require.Zero(t, d.RetryAfter)
	require.Greater(t, d.ResetAfter, time.Duration(0))
	require.LessOrEqual(t, d.ResetAfter, time.Second)
}

// requireRefused checks that d refused a request under five, with a wait
// no longer than one request's share of a second.
func requireRefused(t *testing.T, d Decision, err error) {
	t.Helper()
	require.NoError(t, err)
	require.False(t, d.Allowed, "%+v", d)
	require.Equal(t, [2]int{5, 0}, [2]int{d.Limit, d.Remaining}, "limit, remaining")
	require.Greater(t, d.RetryAfter, time.Duration(0))
	require.LessOrEqual(t, d.RetryAfter, time.Second/5)
	require.GreaterOrEqual(t, d.ResetAfter, d.RetryAfter)
	require.LessOrEqual(t, d.ResetAfter, time.Second)
}

// spendBurst takes key's five requests, checking Remaining counts down.
func spendBurst(t *testing.T, l Limiter, key string) {
	t.Helper()
	for remaining := 4; remaining >= 0; remaining-- {
		d, err := l.Allow(context.Background(), key, five)
		requireAllowed(t, remaining, d, err)
	}
}

// conformance checks what every Limiter must do.
func conformance(t *testing.T, newSubject func(testing.TB) subject) {
	ctx := context.Background()
	t.Run("BurstThenRefused", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		spendBurst(t, s.l, "k")
		for range 3 {
			d, err := s.l.Allow(ctx, "k", five)
			requireRefused(t, d, err)
		}
	})
	t.Run("RetryAfterIsWhenOneMoreIsAllowed", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		spendBurst(t, s.l, "k")
		d, err := s.l.Allow(ctx, "k", five)
		requireRefused(t, d, err)
		s.pass(d.RetryAfter)
		d, err = s.l.Allow(ctx, "k", five)
		requireAllowed(t, 0, d, err)
		d, err = s.l.Allow(ctx, "k", five)
		requireRefused(t, d, err)
	})
	t.Run("FullAgainAfterResetAfter", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		spendBurst(t, s.l, "k")
		d, err := s.l.Allow(ctx, "k", five)
		requireRefused(t, d, err)
		s.pass(d.ResetAfter)
		spendBurst(t, s.l, "k")
	})
	t.Run("KeysAreIndependent", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		var wg sync.WaitGroup
		defer wg.Wait()
		// Tenant a floods while tenant b spends its whole burst.
		wg.Go(func() {
			for range 100 {
				if _, err := s.l.Allow(ctx, "tenant-a", five); err != nil {
					t.Error(err) // not require: FailNow is for the test's goroutine
					return
				}
			}
		})
		spendBurst(t, s.l, "tenant-b")
		wg.Wait()
		d, err := s.l.Allow(ctx, "tenant-a", five)
		requireRefused(t, d, err)
	})
	t.Run("BurstDefaultsToRPS", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		spendBurst(t, s.l, "k")
		d, err := s.l.Allow(ctx, "k", Limit{RPS: 5})
		requireRefused(t, d, err)
	})
	t.Run("RejectsLimitBelowOneRPS", func(t *testing.T) {
		t.Parallel()
		s := newSubject(t)
		for _, l := range []Limit{{}, {RPS: 0, Burst: 5}, {RPS: -1}} {
			_, err := s.l.Allow(ctx, "k", l)
			require.ErrorIs(t, err, errLimit, "%+v", l)
		}
	})
}

func TestLocal(t *testing.T) {
	t.Parallel()
	conformance(t, localSubject)
}

func TestRedis(t *testing.T) {
	t.Parallel()
	conformance(t, redisSubject)
}

// TestConcurrentAllows fires 200 requests from 20 goroutines at one key
// over about 100 ms, on the real clock: the full burst must be allowed, and
// beyond it only what refilled meanwhile.
func TestConcurrentAllows(t *testing.T) {
	t.Parallel()
	t.Run("local", func(t *testing.T) {
		t.Parallel()
		concurrentAllows(t, NewLocal(10))
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		concurrentAllows(t, NewRedis(redisClient(t), prefix()))
	})
}

func concurrentAllows(t *testing.T, l Limiter) {
	const goroutines, requests = 20, 10
	lim := Limit{RPS: 50, Burst: 50}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range goroutines {
		wg.Go(func() {
			for i := range requests {
				if i > 0 {
					time.Sleep(10 * time.Millisecond) // pacing, not waiting for anything
				}
				d, err := l.Allow(context.Background(), "k", lim)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	// Every request fell within elapsed, so at most elapsed×RPS refilled;
	// the 1 absorbs Redis's clock and ours disagreeing by a little.
	most := int64(lim.Burst) + int64(elapsed.Seconds()*float64(lim.RPS)) + 1
	t.Logf("%d of %d allowed in %v (at most %d)", allowed.Load(), goroutines*requests, elapsed, most)
	require.GreaterOrEqual(t, allowed.Load(), int64(lim.Burst))
	require.LessOrEqual(t, allowed.Load(), most)
}

func TestLocalLimitChange(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := newLocal(10)
	spendBurst(t, l, "k")
	d, err := l.Allow(ctx, "k", Limit{RPS: 5})
	requireRefused(t, d, err) // the same limit spelt differently: no reset
	d, err = l.Allow(ctx, "k", Limit{RPS: 10, Burst: 20})
	require.NoError(t, err)
	require.Equal(t, Decision{Allowed: true, Limit: 10, Remaining: 19, ResetAfter: 100 * time.Millisecond}, d)
	d, err = l.Allow(ctx, "k", five)
	requireAllowed(t, 4, d, err) // and back: a fresh bucket again
}

func TestLocalExactTimes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, clock := newLocal(10)
	spendBurst(t, l, "k")
	d, err := l.Allow(ctx, "k", five)
	require.NoError(t, err)
	require.Equal(t, Decision{Limit: 5, RetryAfter: 200 * time.Millisecond, ResetAfter: time.Second}, d)
	// A microsecond early is still refused. (x/time/rate rounds waits down
	// to the nanosecond, so one nanosecond early would be let in.)
	clock.Advance(200*time.Millisecond - time.Microsecond)
	d, _ = l.Allow(ctx, "k", five)
	require.False(t, d.Allowed)
	require.InDelta(t, float64(time.Microsecond), float64(d.RetryAfter), 2)
	clock.Advance(time.Microsecond)
	d, _ = l.Allow(ctx, "k", five)
	require.True(t, d.Allowed)
}

func TestLocalMemoryBound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := newLocal(100)
	spendBurst(t, l, "first")
	for i := range 10_000 {
		_, err := l.Allow(ctx, fmt.Sprint("tenant-", i), five)
		require.NoError(t, err)
	}
	require.Equal(t, 100, l.buckets.Len())
	// The least recently used bucket went: its key starts over.
	d, err := l.Allow(ctx, "first", five)
	requireAllowed(t, 4, d, err)
	d, err = l.Allow(ctx, "tenant-9999", five)
	requireAllowed(t, 3, d, err)
}

func TestNewLocalRejectsNoKeys(t *testing.T) {
	t.Parallel()
	require.Panics(t, func() { NewLocal(0) })
}

// TestRedisReplicasShareLimit uses two clients as two gateway replicas.
func TestRedisReplicasShareLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := prefix()
	a, b := NewRedis(redisClient(t), p), NewRedis(redisClient(t), p)
	for remaining := 4; remaining >= 0; remaining-- {
		replica := []*Redis{a, b}[remaining%2]
		d, err := replica.Allow(ctx, "k", five)
		requireAllowed(t, remaining, d, err)
	}
	for _, replica := range []*Redis{a, b} {
		d, err := replica.Allow(ctx, "k", five)
		requireRefused(t, d, err)
	}
	d, err := NewRedis(redisClient(t), prefix()).Allow(ctx, "k", five)
	requireAllowed(t, 4, d, err) // another prefix limits apart
}

// TestRedisKeyExpires checks where the bucket lives and that it goes away
// by itself once it would be full again.
func TestRedisKeyExpires(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	client, p := redisClient(t), prefix()
	_, err := NewRedis(client, p).Allow(ctx, "k", five)
	require.NoError(t, err)
	ttl, err := client.TTL(ctx, "rate:"+p+"k").Result()
	require.NoError(t, err)
	require.Greater(t, ttl, time.Duration(0))
	require.LessOrEqual(t, ttl, time.Second)
}

func BenchmarkAllow(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		benchmarkAllow(b, NewLocal(10_000))
	})
	b.Run("redis", func(b *testing.B) {
		benchmarkAllow(b, NewRedis(redisClient(b), prefix()))
	})
	b.Run("redis-batched", func(b *testing.B) {
		benchmarkAllow(b, NewBatched(NewRedis(redisClient(b), prefix()), 10_000))
	})
}

// benchmarkAllow spreads requests over 1024 keys, so Local's LRU is
// exercised and not one hot entry; the limit is high enough that most are
// allowed, the path that writes. Redis keys expire a second after the run.
func benchmarkAllow(b *testing.B, l Limiter) {
	ctx := context.Background()
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint("tenant-", i)
	}
	lim := Limit{RPS: 1000}
	i := 0
	for b.Loop() {
		if _, err := l.Allow(ctx, keys[i%len(keys)], lim); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func redisClient(t testing.TB) *redis.Client { return tenancytest.RedisClient(t) }

func prefix() string { return tenancytest.RedisPrefix("ratelimit") }
