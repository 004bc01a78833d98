package throttle

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// withFallback is the Counter of WithFallback.
type withFallback struct {
	primary, fallback Counter
	log               *slog.Logger
	down              atomic.Bool // an outage of primary is going on
}

// WithFallback uses primary, and fallback whenever primary returns an error
// (Redis down), logging a warning once per outage and an info when primary
// works again. It never returns primary's error: throttling per replica is
// better than logins failing because Redis did.
//
// Every call tries primary first, so while it is away each call waits for
// its failure; give the Redis client short dial and read timeouts.
func WithFallback(primary, fallback Counter, log *slog.Logger) Counter {
	return &withFallback{primary: primary, fallback: fallback, log: log}
}

func (f *withFallback) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	// A bad window is the caller's bug, not an outage of primary.
	if err := checkWindow(window); err != nil {
		return 0, 0, err
	}
	n, resetIn, err := f.primary.Hit(ctx, key, window)
	if f.worked(ctx, err) {
		return n, resetIn, nil
	}
	return f.fallback.Hit(ctx, key, window)
}

func (f *withFallback) Peek(ctx context.Context, key string) (int64, time.Duration, error) {
	n, resetIn, err := f.primary.Peek(ctx, key)
	if f.worked(ctx, err) {
		return n, resetIn, nil
	}
	return f.fallback.Peek(ctx, key)
}

// Reset forgets key in both counters: counts taken during an outage stay in
// fallback and would otherwise return at the next one.
func (f *withFallback) Reset(ctx context.Context, key string) error {
	f.worked(ctx, f.primary.Reset(ctx, key))
	return f.fallback.Reset(ctx, key)
}

// worked reports whether primary answered, and logs when an outage starts
// or ends. An error after the caller's context ended says nothing about
// primary, so it neither starts nor ends an outage.
func (f *withFallback) worked(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		if f.down.CompareAndSwap(true, false) {
			f.log.Info("throttle: primary counter works again; counting there")
		}
		return true
	case ctx.Err() == nil && f.down.CompareAndSwap(false, true):
		f.log.Warn("throttle: primary counter failed; counting in process until it recovers", "err", err)
	}
	return false
}
