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
	"sync/atomic"
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
	// subs holds the subscriptions not yet stopped, for Close. stop takes
	// its own out: a gateway subscribes and stops once per organization
	// whose sockets come and go, so anything kept here until Close grows
	// for as long as the process runs.
	subs   map[*redis.PubSub]struct{}
	closed bool
}

// NewRedis returns a bus on client whose channel names start with prefix.
func NewRedis(client *redis.Client, prefix string, log *slog.Logger) *Redis {
	return &Redis{client: client, prefix: prefix, log: log, subs: map[*redis.PubSub]struct{}{}}
}

// Publish sends payload to every replica subscribed to channel.
func (r *Redis) Publish(ctx context.Context, channel string, payload []byte) error {
	return r.client.Publish(ctx, r.prefix+channel, payload).Err()
}

// Subscribe starts a goroutine, owned by the bus, that delivers channel's
// messages to fn. go-redis reconnects on its own after Redis comes back.
// stop unsubscribes and forgets the subscription; its goroutine ends once
// go-redis has closed the message channel. Messages still queued when stop
// is called are not delivered (one being delivered at that moment may
// be). stop does not wait for the goroutine, so fn may call it; Close
// waits for every goroutine.
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
	ch := ps.Channel(redis.WithChannelHealthCheckInterval(10 * time.Second))
	r.mu.Lock()
	if r.closed { // nothing would close it
		r.mu.Unlock()
		ps.Close()
		return func() {}
	}
	r.subs[ps] = struct{}{}
	r.wg.Add(1) // under mu, so never concurrent with Close's Wait
	r.mu.Unlock()
	var stopped atomic.Bool
	go func() {
		defer r.wg.Done()
		for msg := range ch { // closed by ps.Close
			if !stopped.Load() {
				fn([]byte(msg.Payload))
			}
		}
	}()
	return func() {
		if stopped.Swap(true) {
			return
		}
		r.mu.Lock()
		_, mine := r.subs[ps]
		delete(r.subs, ps)
		r.mu.Unlock()
		if mine { // else Close has closed it
			ps.Close()
		}
	}
}

// subscriptions is how many subscriptions the bus is tracking.
func (r *Redis) subscriptions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.subs)
}

// Close ends every subscription and waits for their goroutines. Subscribe
// after Close returns a subscription that delivers nothing.
func (r *Redis) Close() error {
	r.mu.Lock()
	subs := r.subs
	r.subs, r.closed = nil, true
	r.mu.Unlock()
	for ps := range subs {
		ps.Close()
	}
	r.wg.Wait()
	return nil
}
