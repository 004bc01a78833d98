package ratelimit

import (
	"context"
	"log/slog"
	"time"

	"github.com/tenantgate/tenantgate/tenancy/outage"
)

// withFallback is the Limiter of WithFallback.
type withFallback struct {
	primary, fallback Limiter
	outage            *outage.Tracker
}

// WithFallback uses primary, and fallback whenever primary returns an error
// (Redis down), logging a warning once per outage and an info when primary
// works again. It never returns primary's error: limiting per replica is
// better than failing every request because Redis did.
//
// While primary is down, calls go straight to fallback and one call a
// second tries primary again, so an outage costs requests no waiting.
func WithFallback(primary, fallback Limiter, log *slog.Logger) Limiter {
	return &withFallback{primary: primary, fallback: fallback, outage: outage.New("rate limiter (Redis)", log, time.Second)}
}

func (f *withFallback) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	// A bad limit is the caller's bug, not an outage of primary.
	if _, err := l.normalize(); err != nil {
		return Decision{}, err
	}
	if !f.outage.Skip() {
		d, err := f.primary.Allow(ctx, key, l)
		if f.worked(ctx, err) {
			return d, nil
		}
	}
	return f.fallback.Allow(ctx, key, l)
}

// worked reports whether primary answered (see outage.Tracker).
func (f *withFallback) worked(ctx context.Context, err error) bool {
	return f.outage.Report(ctx, err)
}
