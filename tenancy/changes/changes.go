// Package changes tells every gateway replica what it must forget or
// refuse: an organization suspended or moved, a user deleted or demoted, a
// session logged out, an API key revoked. A change is written to the
// catalog's feed (durable) and broadcast (fast). Replicas apply broadcasts
// at once and also poll the feed, so a change lost with Redis still lands
// within a poll interval.
package changes

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
)

// Store is the catalog's side of the feed.
type Store interface {
	InsertChange(ctx context.Context, c tenancy.Change) (tenancy.Change, error)
	RecentChanges(ctx context.Context, window time.Duration) ([]tenancy.Change, error)
	PruneChanges(ctx context.Context, age time.Duration) error
}

// Bus is the broadcast side of the feed (tenancy/broadcast).
type Bus interface {
	Publish(ctx context.Context, channel string, payload []byte) error
	Subscribe(channel string, fn func(payload []byte)) (stop func())
}

// channel is the broadcast channel of the feed.
const channel = "changes"

// Feed publishes changes and follows them.
type Feed struct {
	store Store
	bus   Bus
	log   *slog.Logger
	// PollEvery is how often Follow reads the catalog; Window how far back
	// each read looks (longer than any transaction that writes a change).
	PollEvery, Window time.Duration
}

// New returns a feed over store and bus.
func New(store Store, bus Bus, log *slog.Logger) *Feed {
	return &Feed{store: store, bus: bus, log: log, PollEvery: time.Second, Window: 30 * time.Second}
}

// Publish records a change durably, then broadcasts it. A failed broadcast
// is logged, not returned: the change is already safe in the catalog.
func (f *Feed) Publish(ctx context.Context, kind, subject string, until time.Time) error {
	c, err := f.store.InsertChange(ctx, tenancy.Change{Kind: kind, Subject: subject, Until: until})
	if err != nil {
		return err
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := f.bus.Publish(ctx, channel, payload); err != nil {
		f.log.Warn("change broadcast failed; replicas will read it from the catalog", "kind", kind, "err", err)
	}
	return nil
}

// Follow calls apply once for every change published from now on, from the
// broadcast or the catalog, whichever brings it first. It returns a stop
// function that waits for the poller to end. apply must be idempotent and
// quick.
func (f *Feed) Follow(apply func(tenancy.Change)) (stop func()) {
	fl := &follower{apply: apply, seen: map[int64]time.Time{}}
	unsubscribe := f.bus.Subscribe(channel, func(payload []byte) {
		var c tenancy.Change
		if err := json.Unmarshal(payload, &c); err != nil {
			f.log.Warn("bad change broadcast", "err", err)
			return
		}
		fl.deliver(c)
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.poll(ctx, fl)
	}()
	return func() {
		unsubscribe()
		cancel()
		<-done
	}
}

func (f *Feed) poll(ctx context.Context, fl *follower) {
	tick := time.NewTicker(f.PollEvery)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		changes, err := f.store.RecentChanges(ctx, f.Window)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Warn("change feed poll failed", "err", err)
			}
			continue
		}
		for _, c := range changes {
			fl.deliver(c)
		}
		fl.forget(time.Now().Add(-2 * f.Window))
		if n%3600 == 0 {
			_ = f.store.PruneChanges(ctx, 24*time.Hour)
		}
	}
}

// follower delivers each change once, though both the broadcast and the
// polls bring it. Changes from just before it started may be applied too:
// applying is idempotent, so that is harmless.
type follower struct {
	mu    sync.Mutex
	apply func(tenancy.Change)
	seen  map[int64]time.Time
}

func (fl *follower) deliver(c tenancy.Change) {
	fl.mu.Lock()
	_, dup := fl.seen[c.ID]
	if !dup {
		fl.seen[c.ID] = c.At
	}
	fl.mu.Unlock()
	if !dup {
		fl.apply(c)
	}
}

func (fl *follower) forget(before time.Time) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	for id, at := range fl.seen {
		if at.Before(before) {
			delete(fl.seen, id)
		}
	}
}
