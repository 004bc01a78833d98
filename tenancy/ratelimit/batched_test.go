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
// one bucket never admit more than the bucket allows, waste at most a
// chunk each, and call Redis far less than once per request.
func TestBatchedHoldsTheLimitAcrossReplicas(t *testing.T) {
	t.Parallel()
	p := prefix()
	lim := Limit{RPS: 200, Burst: 200} // chunks of 10
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
	for i := range 10 {
		wg.Go(func() {
			for range 60 {
				d, err := replicas[i%2].Allow(context.Background(), "tenant", lim)
				require.NoError(t, err)
				if d.Allowed {
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	most := int64(lim.Burst) + int64(elapsed.Seconds()*float64(lim.RPS)) + 1
	t.Logf("%d of 600 allowed in %v (at most %d), %d Redis calls", allowed.Load(), elapsed, most, hook.n.Load())
	require.LessOrEqual(t, allowed.Load(), most, "never more than the shared bucket grants")
	// Each replica may end with part of a chunk unused (chunks are 10).
	require.GreaterOrEqual(t, allowed.Load(), int64(lim.Burst-40), "little of the bucket is lost in unused chunks")
	require.Less(t, hook.n.Load(), allowed.Load()/4+50, "Redis is called per chunk, not per request")
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
