package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// Below 20 rps a chunk is one token: the batched limiter must behave as
// every limiter does.
func TestBatchedConformance(t *testing.T) {
	t.Parallel()
	conformance(t, func(t testing.TB) subject {
		return subject{l: NewBatched(NewRedis(redisClient(t), prefix()), 100), pass: time.Sleep}
	})
}

// countingHook counts the commands a Redis client sends.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestBatchedHoldsTheLimitAcrossReplicas: two replicas taking chunks from
// one bucket never admit more than the bucket grants, however slowly the
// machine runs them, and call Redis at most once per request. Only what is
// always true is asserted: how much of the bucket is used and how few calls
// it takes depend on timing (a chunk left unused goes stale), so they are
// figures of BenchmarkBatchedAcrossReplicas.
func TestBatchedHoldsTheLimitAcrossReplicas(t *testing.T) {
	t.Parallel()
	lim := Limit{RPS: 200, Burst: 200} // chunks of 10
	r := runReplicas(t, prefix(), lim, 10, 60)
	t.Logf("%d of %d allowed in %v (at most %d), %d Redis calls", r.allowed, r.requests, r.elapsed, r.most, r.calls)
	// A slower run only raises the bound: more time, more tokens refilled.
	require.LessOrEqual(t, r.allowed, r.most, "never more than the shared bucket grants")
	require.Positive(t, r.allowed, "a full bucket admits the first request")
	require.LessOrEqual(t, r.calls, r.requests, "at most one Redis call per request")
}

// TestBatchedCallsRedisOncePerChunk: while the replica's clock stands
// still (no chunk goes stale), a chunk's requests after the first cost no
// Redis call.
func TestBatchedCallsRedisOncePerChunk(t *testing.T) {
	t.Parallel()
	hook := &countingHook{}
	c := redisClient(t)
	c.AddHook(hook)
	b := NewBatched(NewRedis(c, prefix()), 100)
	now := time.Now()
	b.now = func() time.Time { return now }
	lim := Limit{RPS: 200, Burst: 200} // chunks of 10, and a full bucket holds 20 of them
	for i := range 25 {
		d, err := b.Allow(context.Background(), "k", lim)
		require.NoError(t, err)
		require.True(t, d.Allowed, "request %d", i)
		require.EqualValues(t, i/10+1, hook.n.Load(), "request %d: one call per chunk of 10", i)
	}
}

// replicasRun is what runReplicas saw.
type replicasRun struct {
	requests, allowed, calls, most int64
	elapsed                        time.Duration
}

// runReplicas sends goroutines × each requests for one tenant through two
// Batched replicas sharing the bucket under prefix p, and counts what was
// allowed and the Redis calls. most is the most the bucket can have
// granted: its burst, plus what refilled while the requests ran.
func runReplicas(t testing.TB, p string, lim Limit, goroutines, each int) replicasRun {
	hook := &countingHook{}
	var replicas []*Batched
	for range 2 {
		c := redisClient(t)
		c.AddHook(hook)
		replicas = append(replicas, NewBatched(NewRedis(c, p), 100))
	}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range goroutines {
		wg.Go(func() {
			for range each {
				d, err := replicas[i%2].Allow(context.Background(), "tenant", lim)
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
	return replicasRun{
		requests: int64(goroutines * each), allowed: allowed.Load(), calls: hook.n.Load(), elapsed: elapsed,
		// Every request fell within elapsed; the 1 absorbs Redis's clock
		// and ours disagreeing by a little.
		most: int64(lim.Burst) + int64(elapsed.Seconds()*float64(lim.RPS)) + 1,
	}
}

// BenchmarkBatchedAcrossReplicas: how efficient the batched limiter is
// with two replicas flooding one tenant (each op: 600 requests from 10
// goroutines on a fresh bucket of 200 at 200 rps, chunks of 10). used/most
// is the share of what the bucket granted that was admitted (the rest went
// stale in chunks); calls/allowed the Redis calls per admitted request
// (1 would be the plain limiter).
func BenchmarkBatchedAcrossReplicas(b *testing.B) {
	lim := Limit{RPS: 200, Burst: 200}
	var used, calls float64
	n := 0
	for b.Loop() {
		r := runReplicas(b, prefix(), lim, 10, 60)
		if r.allowed > r.most {
			b.Fatalf("%d allowed, more than the %d the bucket granted", r.allowed, r.most)
		}
		used += float64(r.allowed) / float64(r.most)
		calls += float64(r.calls) / float64(max(r.allowed, 1))
		n++
	}
	b.ReportMetric(used/float64(n), "used/most")
	b.ReportMetric(calls/float64(n), "calls/allowed")
}

func TestBatchedChunkExpires(t *testing.T) {
	t.Parallel()
	b := NewBatched(NewRedis(redisClient(t), prefix()), 100)
	now := time.Now()
	b.now = func() time.Time { return now }
	lim := Limit{RPS: 100, Burst: 100}
	d, err := b.Allow(context.Background(), "k", lim)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	_, ok := b.fromChunk("k", lim)
	require.True(t, ok, "the chunk serves the next request locally")
	now = now.Add(chunkTTL)
	_, ok = b.fromChunk("k", lim)
	require.False(t, ok, "a stale chunk is not used")
	_, ok = b.fromChunk("k", Limit{RPS: 50, Burst: 50})
	require.False(t, ok, "nor one taken under another limit")
}
