package router

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/events"
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
// Origin (requests without one, from programs, are allowed).
func (s *server) eventsUpgrade(c *fiber.Ctx) error {
	if origin := c.Get(fiber.HeaderOrigin); origin != "" && !contains(s.AllowedOrigins, origin) {
		return tenancy.Errorf(tenancy.CodeForbidden, "Origin %q is not allowed to open event streams", origin)
	}
	if !websocket.IsWebSocketUpgrade(c) {
		return tenancy.Errorf(tenancy.CodeInvalid, "GET /api/events is a WebSocket: send an Upgrade: websocket handshake")
	}
	t, id := tenantOf(c)
	// Locals outlive the handler: every string here is owned, not a view.
	c.Locals(principalKey, events.Principal{OrganizationID: t.Organization.ID, UserID: id.UserID, TokenID: id.TokenID, KeyPrefix: id.KeyPrefix})
	return c.Next()
}

// handleEvents streams the organization's events to one socket until the
// client goes, falls behind, or its credential ends.
func (s *server) handleEvents(conn *websocket.Conn) {
	p, _ := conn.Locals(principalKey).(events.Principal)
	client := s.Events.Join(p)
	defer s.Events.Leave(client)
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
	for {
		select {
		case msg, ok := <-client.Events:
			if !ok {
				_ = conn.WriteControl(websocket.CloseMessage,
					websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "dropped"), time.Now().Add(time.Second))
				conn.Close()
				<-gone
				return
			}
			_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := conn.WriteMessage(websocket.TextMessage, msg); err != nil {
				conn.Close()
				<-gone
				return
			}
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

// emit publishes an event of the caller's organization after its change
// committed. Without a hub (some tests) it does nothing.
func (s *server) emit(c *fiber.Ctx, typ string, data any) {
	if s.Events == nil {
		return
	}
	t, _ := tenantOf(c)
	s.Events.Publish(context.WithoutCancel(c.UserContext()), events.Event{Type: typ, OrganizationID: t.Organization.ID, Data: data})
}
