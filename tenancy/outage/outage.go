// Package outage tracks whether a primary dependency (Redis, for the
// throttle and the rate limiter) is down, so that its callers fall back at
// once instead of each waiting for the dependency to fail again, and log
// an outage once when it starts and once when it ends.
package outage

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Tracker follows one dependency.
type Tracker struct {
	name       string
	log        *slog.Logger
	retryEvery time.Duration
	now        func() time.Time
	down       atomic.Bool
	retryAt    atomic.Int64 // unix nanos: while down, the next time to try again
}

// New returns a tracker for the dependency called name that, while it is
// down, lets one attempt through every retryEvery.
func New(name string, log *slog.Logger, retryEvery time.Duration) *Tracker {
	return &Tracker{name: name, log: log, retryEvery: retryEvery, now: time.Now}
}

// Skip reports whether to go straight to the fallback: the dependency is
// down and it is not yet time to try it again. One caller per interval is
// told to try.
func (t *Tracker) Skip() bool {
	if !t.down.Load() {
		return false
	}
	at := t.retryAt.Load()
	now := t.now().UnixNano()
	return now < at || !t.retryAt.CompareAndSwap(at, now+int64(t.retryEvery))
}

// Report records the outcome of an attempt and reports whether it worked.
// An error after the caller's context ended says nothing about the
// dependency, so it neither starts nor ends an outage.
func (t *Tracker) Report(ctx context.Context, err error) bool {
	switch {
	case err == nil:
		if t.down.CompareAndSwap(true, false) {
			t.log.Info(t.name + " works again")
		}
		return true
	case ctx.Err() != nil:
		return false
	}
	t.retryAt.Store(t.now().Add(t.retryEvery).UnixNano())
	if t.down.CompareAndSwap(false, true) {
		t.log.Warn(t.name+" failed; using the in-process fallback until it recovers", "err", err)
	}
	return false
}
