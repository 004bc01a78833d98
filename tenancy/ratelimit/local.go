package ratelimit

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Local is a Limiter for one process. It keeps at most maxKeys buckets, the
// least recently used going first, so memory stays bounded however many keys
// come. The price is that an evicted key starts over with a full burst: size
// maxKeys above the number of tenants active at once.
type Local struct {
	now func() time.Time // time.Now; replaced by tests

	// mu guards buckets and makes each Allow one step: the decision and the
	// tokens left it reports belong together. It is held for a lookup and a
	// few float operations, so keys barely wait on each other.
	mu      sync.Mutex
	buckets *simplelru.LRU[string, *bucket]
}

// bucket is one key's token bucket and the limit it was made for.
type bucket struct {
	limit  Limit
	tokens *rate.Limiter
}

// NewLocal returns an in-process Limiter holding at most maxKeys buckets. It
// panics if maxKeys < 1, like other constructors given an impossible bound:
// a Limiter that remembers nothing would never refuse.
func NewLocal(maxKeys int) *Local {
	if maxKeys < 1 {
		panic("ratelimit: NewLocal needs maxKeys >= 1")
	}
	buckets, err := simplelru.NewLRU[string, *bucket](maxKeys, nil)
	if err != nil {
		panic(err) // only for size < 1, excluded above
	}
	return &Local{now: time.Now, buckets: buckets}
}

// Allow counts one request for key against l, if it is allowed.
func (l *Local) Allow(_ context.Context, key string, lim Limit) (Decision, error) {
	lim, err := lim.normalize()
	if err != nil {
		return Decision{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// Read the clock under the lock, so time never runs backwards for a
	// bucket between concurrent calls.
	now := l.now()
	tokens := l.bucketLocked(key, lim)
	allowed := tokens.AllowN(now, 1)
	return decision(lim, allowed, tokens.TokensAt(now)), nil
}

// bucketLocked returns key's token bucket, made afresh when key is new or
// its limit changed (a plan change): adjusting the old bucket would carry a
// debt or a credit earned under the old plan into the new one.
func (l *Local) bucketLocked(key string, lim Limit) *rate.Limiter {
	if b, ok := l.buckets.Get(key); ok && b.limit == lim {
		return b.tokens
	}
	b := &bucket{limit: lim, tokens: rate.NewLimiter(rate.Limit(lim.RPS), lim.Burst)}
	l.buckets.Add(key, b)
	return b.tokens
}

// decision describes a bucket holding tokens after one request was allowed
// or refused.
func decision(lim Limit, allowed bool, tokens float64) Decision {
	d := Decision{
		Allowed:    allowed,
		Limit:      lim.RPS,
		Remaining:  int(tokens),
		ResetAfter: refillTime(float64(lim.Burst)-tokens, lim.RPS),
	}
	if !allowed {
		d.RetryAfter = refillTime(1-tokens, lim.RPS)
	}
	return d
}

// refillTime is how long rps takes to add n tokens, rounded up to the
// nanosecond so that a refusal never reports a zero wait.
func refillTime(n float64, rps int) time.Duration {
	return time.Duration(math.Ceil(max(n, 0) / float64(rps) * float64(time.Second)))
}
