package throttle

import (
	"context"
	"errors"
	"time"
)

// Counter counts events per key in fixed windows that start at a key's first event.
type Counter interface {
	// Hit records one event for key and returns the count in the key's current window and the time left in it.
	Hit(ctx context.Context, key string, window time.Duration) (count int64, resetIn time.Duration, err error)
	// Peek returns the same without recording anything (count 0 when the key has no live window).
	Peek(ctx context.Context, key string) (count int64, resetIn time.Duration, err error)
	// Reset forgets key.
	Reset(ctx context.Context, key string) error
	// Undo takes back one event of key's live window, if it has any: an
	// attempt counted before it was judged, which turned out not to count.
	Undo(ctx context.Context, key string) error
}

var (
	_ Counter = (*Local)(nil)
	_ Counter = (*Redis)(nil)
	_ Counter = (*withFallback)(nil)
)

// errWindow rejects windows Redis cannot express: PEXPIRE counts whole
// milliseconds, and a zero expiry would delete the key at once.
var errWindow = errors.New("throttle: window must be at least 1ms")

func checkWindow(window time.Duration) error {
	if window < time.Millisecond {
		return errWindow
	}
	return nil
}
