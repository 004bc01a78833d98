// Package events carries tenant events (agent.created, task.updated, …) to
// the WebSocket clients of their own organization, from whichever gateway
// replica made the change: each organization has a channel of its own on
// the broadcast bus (Redis pub/sub, or in process), and a gateway listens
// on the channel of an organization only while one of its clients is
// connected. Hub.Reserve caps the sockets one organization holds open on a
// gateway.
package events

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tenantgate/tenantgate/tenancy"
)

// Event is what a client receives.
type Event struct {
	Type           string    `json:"type"`
	OrganizationID string    `json:"organizationId"`
	Data           any       `json:"data"`
	At             time.Time `json:"at"`
}

// Bus is the broadcast bus (tenancy/broadcast).
type Bus interface {
	Publish(ctx context.Context, channel string, payload []byte) error
	Subscribe(channel string, fn func(payload []byte)) (stop func())
}

// Principal is who a client connected as: closing it when that credential
// ends (logout, key revoked, user deleted, organization suspended).
type Principal struct {
	OrganizationID, UserID, TokenID, KeyPrefix string
	// ExpiresAt is when the credential expires, and the socket with it;
	// zero when it does not expire.
	ExpiresAt time.Time
}

// Expired reports whether p's credential has expired at now.
func (p Principal) Expired(now time.Time) bool {
	return !p.ExpiresAt.IsZero() && !now.Before(p.ExpiresAt)
}

// Client is one connected socket's queue of events.
type Client struct {
	Principal Principal
	// Events delivers encoded events; it is closed when the client is
	// dropped (too slow, or its credential ended).
	Events chan []byte
	once   sync.Once
}

// queue is how many events a client may lag behind before it is dropped:
// a slow client must not slow anyone else.
const queue = 64

func (c *Client) drop() { c.once.Do(func() { close(c.Events) }) }

// Hub tracks a gateway's clients by organization.
type Hub struct {
	// MaxPerOrganization caps the event streams one organization may hold
	// open on this gateway replica (see Reserve); 0, the default, means no
	// cap. Set it before the hub is used.
	MaxPerOrganization int

	bus  Bus
	log  *slog.Logger
	mu   sync.Mutex
	orgs map[string]*room
	// streams counts each organization's reserved event streams.
	streams map[string]int
}

// reserveRetryAfter is what a client refused by the socket cap is told to
// wait: sockets end at their own pace, so there is no better estimate.
const reserveRetryAfter = 5 * time.Second

type room struct {
	clients map[*Client]struct{}
	stop    func()
}

// NewHub returns a hub on bus.
func NewHub(bus Bus, log *slog.Logger) *Hub {
	return &Hub{bus: bus, log: log, orgs: map[string]*room{}, streams: map[string]int{}}
}

// Reserve takes one of the organization's event-stream slots for a socket
// about to open, and returns the function that gives it back; release is
// safe to call more than once. With MaxPerOrganization streams already
// open it returns a *tenancy.Error with code rate_limited and a
// RetryAfter instead.
//
// The count is per gateway replica, kept in memory: behind a load
// balancer with N replicas an organization may hold up to N times
// MaxPerOrganization sockets in all. That bounds what one organization
// costs each replica, which is the point; a count shared through Redis
// would have to survive replicas that die holding slots.
func (h *Hub) Reserve(orgID string) (release func(), err error) {
	orgID = strings.Clone(orgID) // kept as a map key: never a view of a request buffer
	h.mu.Lock()
	defer h.mu.Unlock()
	if n := h.streams[orgID]; h.MaxPerOrganization > 0 && n >= h.MaxPerOrganization {
		e := tenancy.Errorf(tenancy.CodeRateLimited,
			"the organization has %d open event streams, the most allowed; close one or retry later", n)
		e.RetryAfter = reserveRetryAfter
		return nil, e
	}
	h.streams[orgID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if h.streams[orgID]--; h.streams[orgID] <= 0 {
				delete(h.streams, orgID) // no entry kept per organization ever seen
			}
		})
	}, nil
}

func channel(orgID string) string { return "events:" + orgID }

// Publish sends an event to every client of its organization, on every
// replica. Call it after the change committed.
func (h *Hub) Publish(ctx context.Context, e Event) {
	if e.At.IsZero() {
		e.At = time.Now().UTC()
	}
	payload, err := json.Marshal(e)
	if err != nil {
		h.log.Warn("encoding an event failed", "type", e.Type, "err", err)
		return
	}
	if err := h.bus.Publish(ctx, channel(e.OrganizationID), payload); err != nil {
		// Redis is away: this replica's own sockets still hear of the
		// change; other replicas' miss it until Redis returns.
		h.log.Warn("publishing an event failed; delivered on this replica only", "type", e.Type, "err", err)
		h.deliver(e.OrganizationID, payload)
	}
}

// Join registers a client of p's organization.
func (h *Hub) Join(p Principal) *Client {
	c := &Client{Principal: p, Events: make(chan []byte, queue)}
	org := p.OrganizationID
	h.mu.Lock()
	r, ok := h.orgs[org]
	if ok {
		r.clients[c] = struct{}{}
		h.mu.Unlock()
		return c
	}
	h.mu.Unlock()
	// Subscribing waits for Redis: not under the lock every delivery takes.
	stop := h.bus.Subscribe(channel(org), func(payload []byte) { h.deliver(org, payload) })
	h.mu.Lock()
	if r, ok = h.orgs[org]; ok {
		defer stop() // another client subscribed meanwhile: one is enough
	} else {
		r = &room{clients: map[*Client]struct{}{}, stop: stop}
		h.orgs[org] = r
	}
	r.clients[c] = struct{}{}
	h.mu.Unlock()
	return c
}

// Leave unregisters a client; the organization's channel is left with its
// last client.
func (h *Hub) Leave(c *Client) {
	h.mu.Lock()
	r, ok := h.orgs[c.Principal.OrganizationID]
	var stop func()
	if ok {
		delete(r.clients, c) // may be gone already: dropped
		if len(r.clients) == 0 {
			delete(h.orgs, c.Principal.OrganizationID)
			stop = r.stop
		}
	}
	h.mu.Unlock()
	c.drop()
	if stop != nil {
		stop() // outside the lock: a Redis unsubscribe does I/O
	}
}

func (h *Hub) deliver(org string, payload []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.orgs[org]
	if !ok {
		return
	}
	for c := range r.clients {
		select {
		case c.Events <- payload:
		default:
			// Too slow: dropped, never waited for. Out of the room at once,
			// so nothing is sent on its closed queue.
			delete(r.clients, c)
			c.drop()
		}
	}
}

// Disconnect drops every client whose principal matches.
func (h *Hub) Disconnect(match func(Principal) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.orgs {
		for c := range r.clients {
			if match(c.Principal) {
				delete(r.clients, c)
				c.drop()
			}
		}
	}
}
