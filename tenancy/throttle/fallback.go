package throttle

import (
	"context"
	"log/slog"
	"time"

	"github.com/tenantgate/tenantgate/tenancy/outage"
)

// withFallback is the Counter of WithFallback.
type withFallback struct {
	primary, fallback Counter
	outage            *outage.Tracker
}

// WithFallback uses primary, and fallback whenever primary returns an error
// (Redis down), logging a warning once per outage and an info when primary
// works again. It never returns primary's error: throttling per replica is
// better than logins failing because Redis did.
//
// While primary is down, calls go straight to fallback and one call a
// second tries primary again, so an outage costs requests no waiting.
func WithFallback(primary, fallback Counter, log *slog.Logger) Counter {
	return &withFallback{primary: primary, fallback: fallback, outage: outage.New("throttle counter (Redis)", log, time.Second)}
}

func (f *withFallback) Hit(ctx context.Context, key string, window time.Duration) (int64, time.Duration, error) {
	// A bad window is the caller's bug, not an outage of primary.
	if err := checkWindow(window); err != nil {
		return 0, 0, err
	}
	if !f.outage.Skip() {
		n, resetIn, err := f.primary.Hit(ctx, key, window)
		if f.worked(ctx, err) {
			return n, resetIn, nil
		}
	}
	return f.fallback.Hit(ctx, key, window)
}

func (f *withFallback) Peek(ctx context.Context, key string) (int64, time.Duration, error) {
	if !f.outage.Skip() {
		n, resetIn, err := f.primary.Peek(ctx, key)
		if f.worked(ctx, err) {
			return n, resetIn, nil
		}
	}
	return f.fallback.Peek(ctx, key)
}

// Reset forgets key in both counters: counts taken during an outage stay in
// fallback and would otherwise return at the next one.
func (f *withFallback) Reset(ctx context.Context, key string) error {
	if !f.outage.Skip() {
		f.worked(ctx, f.primary.Reset(ctx, key))
	}
	return f.fallback.Reset(ctx, key)
}

// Undo takes back one event where it was counted: in primary, or in
// fallback during an outage.
func (f *withFallback) Undo(ctx context.Context, key string) error {
	if !f.outage.Skip() {
		if err := f.primary.Undo(ctx, key); f.worked(ctx, err) {
			return nil
		}
	}
	return f.fallback.Undo(ctx, key)
}

// worked reports whether primary answered (see outage.Tracker).
func (f *withFallback) worked(ctx context.Context, err error) bool {
	return f.outage.Report(ctx, err)
}
