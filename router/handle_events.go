package router

import (
	"strings"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/events"
	"github.com/tenantgate/tenantgate/tenancy/metering"
)

const (
	// pingEvery keeps idle sockets honest: a peer that stops answering is
	// dropped after pongWait.
	pingEvery = 30 * time.Second
	pongWait  = 75 * time.Second
	// maxClientMessage bounds what a client may send (it has nothing to say).
	maxClientMessage = 4096
	// maxClientMessagesPerSecond bounds what a client may send.
	maxClientMessagesPerSecond = 10
	principalKey               = "eventsPrincipal"
	slotKey                    = "eventsSlot"
	// slotHandoff is how long a reserved socket slot waits for the
	// upgraded connection's handler to claim it: far longer than writing
	// the 101 answer can take (the server's WriteTimeout is 30s).
	slotHandoff = time.Minute
)

// eventsToken lets a browser, which cannot set headers on a WebSocket,
// pass its credential as ?access_token=.
func eventsToken(c *fiber.Ctx) error {
	if c.Get(fiber.HeaderAuthorization) == "" {
		if tok := c.Query("access_token"); tok != "" {
			scheme := "Bearer "
			if strings.HasPrefix(tok, "tg_") {
				scheme = "Key "
			}
			c.Request().Header.Set(fiber.HeaderAuthorization, scheme+tok)
		}
	}
	return c.Next()
}

// eventsUpgrade admits the upgrade: a WebSocket handshake, from an allowed
// Origin (requests without one, from programs, are allowed), while the
// organization has a free socket slot on this replica (Hub.Reserve). The
// slot is taken before the upgrade, so a client past the cap gets a plain
// 429 with Retry-After rather than a socket closed at once.
func (s *server) eventsUpgrade(c *fiber.Ctx) error {
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !contains(s.AllowedOrigins, origin) {
		return tenancy.Errorf(tenancy.CodeForbidden, "Origin %q is not allowed to open event streams", origin)
	}
	if !websocket.IsWebSocketUpgrade(c) {
		return tenancy.Errorf(tenancy.CodeInvalid, "GET /api/events is a WebSocket: send an Upgrade: websocket handshake")
	}
	t, id := tenantOf(c)
	release, err := s.Events.Reserve(t.Organization.ID)
	if err != nil {
		return err
	}
	slot := &eventSlot{release: release, timer: time.AfterFunc(slotHandoff, release)}
	// Locals outlive the handler: every string here is owned, not a view.
	c.Locals(principalKey, events.Principal{OrganizationID: t.Organization.ID, UserID: id.UserID, TokenID: id.TokenID,
		KeyPrefix: id.KeyPrefix, ExpiresAt: id.ExpiresAt})
	c.Locals(slotKey, slot)
	if err := c.Next(); err != nil || !c.Context().Hijacked() {
		slot.abandon() // the handshake was refused: no socket will run
		return err
	}
	return nil
}

// eventSlot carries a reserved socket slot from eventsUpgrade, which runs
// before the 101 answer, to handleEvents, which runs after it on the
// hijacked connection. fasthttp drops a hijack without a word when writing
// the 101 fails (the client left mid-handshake) or the server is shutting
// down, and handleEvents then never runs: the timer gives the slot back in
// that case, so it cannot leak.
type eventSlot struct {
	release func() // idempotent
	timer   *time.Timer
}

// abandon gives the slot back now.
func (sl *eventSlot) abandon() {
	sl.timer.Stop()
	sl.release()
}

// claim hands the slot to the socket's handler and returns its release.
// If the handoff timer gave the slot back already, it takes one anew with
// reserve, as a new socket would. A nil slot (no reservation) holds
// nothing.
func (sl *eventSlot) claim(reserve func() (func(), error)) (release func(), err error) {
	if sl == nil {
		return func() {}, nil
	}
	if sl.timer.Stop() {
		return sl.release, nil
	}
	return reserve()
}

// closeWith ends a socket with a close frame saying why.
func closeWith(conn *websocket.Conn, code int, reason string) {
	_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
	conn.Close()
}

// handleEvents streams the organization's events to one socket until the
// client goes, falls behind, or its credential ends: revoked (the hub drops
// the client) or expired (a timer here).
func (s *server) handleEvents(conn *websocket.Conn) {
	p, _ := conn.Locals(principalKey).(events.Principal)
	slot, _ := conn.Locals(slotKey).(*eventSlot)
	release, err := slot.claim(func() (func(), error) { return s.Events.Reserve(p.OrganizationID) })
	if err != nil {
		closeWith(conn, websocket.CloseTryAgainLater, "too many open event streams")
		return
	}
	defer release()
	if p.Expired(time.Now()) {
		// Verify accepts a token a few seconds past its expiry (clock
		// skew between replicas); the socket itself ends at the expiry.
		closeWith(conn, websocket.ClosePolicyViolation, "credential expired")
		return
	}
	client := s.Events.Join(p)
	defer s.Events.Leave(client)
	opened := time.Now()
	defer func() { s.record(p.OrganizationID, metering.Usage{SocketSeconds: int64(time.Since(opened).Seconds())}) }()
	conn.SetReadLimit(maxClientMessage)
	_ = conn.SetReadDeadline(time.Now().Add(pongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(pongWait)) })
	gone := make(chan struct{})
	go func() { // owned by this handler: ends when the socket does
		defer close(gone)
		// The stream is one-way: a client sending more than a few
		// messages a second is misbehaving, and is cut off.
		window, n := time.Now(), 0
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
			if n++; time.Since(window) > time.Second {
				window, n = time.Now(), 1
			}
			if n > maxClientMessagesPerSecond {
				conn.Close()
				return
			}
		}
	}()
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	var expired <-chan time.Time // nil, never ready, for credentials without expiry
	if !p.ExpiresAt.IsZero() {
		expiry := time.NewTimer(time.Until(p.ExpiresAt))
		defer expiry.Stop()
		expired = expiry.C
	}
	end := func(code int, reason string) {
		closeWith(conn, code, reason)
		<-gone
	}
	for {
		select {
		case msg, ok := <-client.Events:
			if !ok {
				end(websocket.ClosePolicyViolation, "dropped")
				return
			}
			// Checked at each event too: the timer and an event may be
			// ready at once, and select picks either.
			if p.Expired(time.Now()) {
				end(websocket.ClosePolicyViolation, "credential expired")
				return
			}
			_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				conn.Close()
				<-gone
				return
			}
			s.record(p.OrganizationID, metering.Usage{Events: 1, BytesSent: int64(len(msg))})
		case <-expired:
			end(websocket.ClosePolicyViolation, "credential expired")
			return
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second)); err != nil {
				conn.Close()
				<-gone
				return
			}
		case <-gone:
			return
		}
	}
}

// record meters a tenant's socket use, when usage is metered.
func (s *server) record(orgID string, u metering.Usage) {
	if s.Usage != nil {
		s.Usage.Record(orgID, u)
	}
}
