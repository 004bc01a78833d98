package ratelimit

import (
	"context"
	"errors"
	"time"
)

// Limit is a steady rate of RPS requests per second with bursts of up to
// Burst requests. Burst <= 0 means Burst = RPS.
type Limit struct {
	RPS, Burst int
}

// Decision is the outcome of one request.
type Decision struct {
	Allowed    bool
	Limit      int           // the RPS applied
	Remaining  int           // requests left in the current burst
	RetryAfter time.Duration // > 0 when refused: when one request would be allowed
	ResetAfter time.Duration // when the bucket is full again
}

// Limiter decides whether a request under key may go ahead.
type Limiter interface {
	// Allow counts one request for key against l, if it is allowed.
	// Refused requests cost nothing, so a client that keeps retrying is
	// let in again as soon as the rate allows.
	Allow(ctx context.Context, key string, l Limit) (Decision, error)
}

var (
	_ Limiter = (*Local)(nil)
	_ Limiter = (*Redis)(nil)
	_ Limiter = (*withFallback)(nil)
)

// errLimit rejects limits that admit nothing: the GCRA script divides by the
// rate, and a zero-rate token bucket would never refill. A plan that should
// refuse every request is the caller's to express, not a rate.
var errLimit = errors.New("ratelimit: RPS must be at least 1")

// normalize fills in the default burst, so that Limit{5, 0} and Limit{5, 5}
// are the same limit everywhere (Local would otherwise reset a bucket that
// is given both).
func (l Limit) normalize() (Limit, error) {
	if l.RPS < 1 {
		return Limit{}, errLimit
	}
	if l.Burst <= 0 {
		l.Burst = l.RPS
	}
	return l, nil
}
