package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Batched is a Redis Limiter that takes tokens in chunks: one Redis call
// reserves up to a twentieth of a second's worth of a tenant's rate (at
// most maxChunk), and the replica hands them out locally until they run
// out or go stale. The limit still holds across replicas — Redis never
// grants more tokens than the bucket has — while a busy tenant costs one
// round trip per chunk instead of one per request. A tenant below 20 rps
// gets chunks of one: exactly the plain Redis limiter. A refusal is
// remembered until the time Redis gave for the next token, so a flood
// costs Redis one call per refill, not one per request.
type Batched struct {
	shared *Redis
	now    func() time.Time
	mu     sync.Mutex
	chunks *simplelru.LRU[string, *chunk]
}

type chunk struct {
	limit   Limit
	left    int
	expires time.Time
	// refusedUntil is when Redis said the next token comes: until then a
	// flood is refused here, without a round trip per request.
	refusedUntil time.Time
}

const (
	maxChunk = 100
	// chunkTTL bounds how long reserved tokens wait: ones left unused are
	// dropped, so a replica cannot bank rate from a quiet moment.
	chunkTTL = 250 * time.Millisecond
)

// NewBatched returns a chunking limiter over shared tracking at most
// maxKeys tenants' chunks.
func NewBatched(shared *Redis, maxKeys int) *Batched {
	lru, err := simplelru.NewLRU[string, *chunk](maxKeys, nil)
	if err != nil {
		panic(err) // only for maxKeys < 1, a programming error
	}
	return &Batched{shared: shared, now: time.Now, chunks: lru}
}

// Allow admits a request from the key's reserved chunk, or reserves a new
// chunk from Redis.
func (b *Batched) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	l, err := l.normalize()
	if err != nil {
		return Decision{}, err
	}
	if d, ok := b.fromChunk(key, l); ok {
		return d, nil
	}
	size := min(max(l.RPS/20, 1), maxChunk, l.Burst)
	got, d, err := b.shared.take(ctx, key, l, size)
	if err != nil {
		return d, err
	}
	c := &chunk{limit: l, expires: b.now().Add(chunkTTL)}
	switch {
	case got == 0:
		c.refusedUntil = b.now().Add(d.RetryAfter)
	case got > 1:
		c.left = got - 1
		d.Remaining += got - 1
	default:
		return d, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	// Requests that missed at the same time each took a chunk: pool them
	// rather than let the last overwrite the others.
	if old, ok := b.chunks.Get(key); ok && old.limit == l && c.left > 0 && b.now().Before(old.expires) {
		old.left += c.left
		return d, nil
	}
	b.chunks.Add(key, c)
	return d, nil
}

func (b *Batched) fromChunk(key string, l Limit) (Decision, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.chunks.Get(key)
	now := b.now()
	switch {
	case !ok || c.limit != l:
		return Decision{}, false
	case now.Before(c.refusedUntil):
		wait := c.refusedUntil.Sub(now)
		return Decision{Limit: l.RPS, RetryAfter: wait, ResetAfter: max(wait, time.Second)}, true
	case c.left == 0 || !now.Before(c.expires):
		return Decision{}, false
	}
	c.left--
	return Decision{Allowed: true, Limit: l.RPS, Remaining: c.left, ResetAfter: time.Second}, true
}
