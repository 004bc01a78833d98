// Package broadcast carries messages between gateway replicas: placement
// invalidations now, tenant events later. With Redis it is Redis pub/sub;
// without, an in-process bus serves a single replica through the same
// interface. Delivery is best effort: callers keep a fallback (the placement
// cache's TTL) for messages lost while Redis is away.
package broadcast

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Bus publishes to named channels and delivers to subscribers.
type Bus interface {
	Publish(ctx context.Context, channel string, payload []byte) error
	// Subscribe calls fn with every payload published on channel until the
	// returned stop is called or the bus closes. fn must not block long.
	Subscribe(channel string, fn func(payload []byte)) (stop func())
	Close() error
}

// Local is a Bus for one process.
type Local struct {
	mu   sync.RWMutex
	subs map[string]map[*func([]byte)]struct{}
}

// NewLocal returns an in-process bus.
func NewLocal() *Local { return &Local{subs: map[string]map[*func([]byte)]struct{}{}} }

// Publish delivers payload to the channel's subscribers synchronously.
func (l *Local) Publish(_ context.Context, channel string, payload []byte) error {
	l.mu.RLock()
	fns := make([]func([]byte), 0, len(l.subs[channel]))
	for fn := range l.subs[channel] {
		fns = append(fns, *fn)
	}
	l.mu.RUnlock()
	for _, fn := range fns {
		fn(payload)
	}
	return nil
}

// Subscribe registers fn on channel.
func (l *Local) Subscribe(channel string, fn func([]byte)) func() {
	key := &fn
	l.mu.Lock()
	if l.subs[channel] == nil {
		l.subs[channel] = map[*func([]byte)]struct{}{}
	}
	l.subs[channel][key] = struct{}{}
	l.mu.Unlock()
	return func() {
		l.mu.Lock()
		delete(l.subs[channel], key)
		l.mu.Unlock()
	}
}

// Close does nothing: a Local bus holds no resources.
func (l *Local) Close() error { return nil }

// Redis is a Bus over Redis pub/sub, shared by every replica that uses the
// same Redis and prefix.
type Redis struct {
	client *redis.Client
	prefix string
	log    *slog.Logger
	wg     sync.WaitGroup
	mu     sync.Mutex
	subs   []*redis.PubSub
}

// NewRedis returns a bus on client whose channel names start with prefix.
func NewRedis(client *redis.Client, prefix string, log *slog.Logger) *Redis {
	return &Redis{client: client, prefix: prefix, log: log}
}

// Publish sends payload to every replica subscribed to channel.
func (r *Redis) Publish(ctx context.Context, channel string, payload []byte) error {
	return r.client.Publish(ctx, r.prefix+channel, payload).Err()
}

// Subscribe starts a goroutine, owned by the bus, that delivers channel's
// messages to fn. go-redis reconnects on its own after Redis comes back.
func (r *Redis) Subscribe(channel string, fn func([]byte)) func() {
	ps := r.client.Subscribe(context.Background(), r.prefix+channel)
	// Wait for Redis to confirm, so a message published right after
	// Subscribe returns is not missed. With Redis away, go on: the channel
	// below subscribes when it comes back.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if _, err := ps.Receive(ctx); err != nil {
		r.log.Warn("redis subscribe not confirmed; will retry in the background", "channel", channel, "err", err)
	}
	cancel()
	r.mu.Lock()
	r.subs = append(r.subs, ps)
	r.mu.Unlock()
	ch := ps.Channel(redis.WithChannelHealthCheckInterval(10 * time.Second))
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for msg := range ch {
			fn([]byte(msg.Payload))
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { ps.Close() }) }
}

// Close ends every subscription and waits for their goroutines.
func (r *Redis) Close() error {
	r.mu.Lock()
	subs := r.subs
	r.subs = nil
	r.mu.Unlock()
	for _, ps := range subs {
		ps.Close()
	}
	r.wg.Wait()
	return nil
}
