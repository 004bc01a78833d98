package catalog

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// KeyTouches batches "this API key was just used" into one write every
// interval, so an API key request never waits on, or multiplies, writes.
type KeyTouches struct {
	store   *Store
	log     *slog.Logger
	mu      sync.Mutex
	pending map[string]time.Time
}

// NewKeyTouches returns a batcher writing to s.
func (s *Store) NewKeyTouches(log *slog.Logger) *KeyTouches {
	return &KeyTouches{store: s, log: log, pending: map[string]time.Time{}}
}

// Touch records that key id was used now. id must be a string the caller
// will not reuse (not a view of a request buffer).
func (k *KeyTouches) Touch(id string) {
	now := time.Now()
	k.mu.Lock()
	k.pending[id] = now
	k.mu.Unlock()
}

// Run flushes every interval until ctx ends, then flushes once more.
func (k *KeyTouches) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			k.Flush(flushCtx)
			cancel()
			return
		case <-t.C:
			k.Flush(ctx)
		}
	}
}

// Flush writes what is pending; on failure it is kept for the next flush.
func (k *KeyTouches) Flush(ctx context.Context) {
	k.mu.Lock()
	batch := k.pending
	k.pending = map[string]time.Time{}
	k.mu.Unlock()
	if err := k.store.TouchAPIKeys(ctx, batch); err != nil {
		k.log.Warn("recording API key use failed", "keys", len(batch), "err", err)
		k.mu.Lock()
		for id, at := range batch {
			if at.After(k.pending[id]) {
				k.pending[id] = at
			}
		}
		k.mu.Unlock()
	}
}
