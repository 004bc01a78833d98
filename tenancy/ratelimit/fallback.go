package ratelimit

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// withFallback is the Limiter of WithFallback.
type withFallback struct {
	primary, fallback Limiter
	log               *slog.Logger
	down              atomic.Bool // an outage of primary is going on
}

// WithFallback uses primary, and fallback whenever primary returns an error
// (Redis down), logging a warning once per outage and an info when primary
// works again. It never returns primary's error: limiting per replica is
// better than failing every request because Redis did.
//
// Every call tries primary first, so while it is away each call waits for
// its failure; give the Redis client short dial and read timeouts.
func WithFallback(primary, fallback Limiter, log *slog.Logger) Limiter {
	return &withFallback{primary: primary, fallback: fallback, log: log}
}

func (f *withFallback) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	// A bad limit is the caller's bug, not an outage of primary.
	if _, err := l.normalize(); err != nil {
		return Decision{}, err
	}
	d, err := f.primary.Allow(ctx, key, l)
	if f.worked(ctx, err) {
		return d, nil
	}
	return f.fallback.Allow(ctx, key, l)
}

// worked reports whether primary answered, and logs when an outage starts
// or ends. An error after the caller's context ended says nothing about
// primary, so it neither starts nor ends an outage.
func (f *withFallback) worked(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		if f.down.CompareAndSwap(true, false) {
			f.log.Info("ratelimit: primary limiter works again; limiting there")
		}
		return true
	case ctx.Err() == nil && f.down.CompareAndSwap(false, true):
		f.log.Warn("ratelimit: primary limiter failed; limiting in process until it recovers", "err", err)
	}
	return false
}
