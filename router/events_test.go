package router

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

// listen serves b.app on a real socket: WebSockets need one.
func listen(t *testing.T, b *bundle) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go b.app.Listener(ln)
	t.Cleanup(func() { _ = b.app.Shutdown() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr, query string, header http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, res, err := d.Dial("ws://"+addr+"/api/events"+query, header)
	if conn != nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, res, err
}

func nextEvent(t *testing.T, conn *websocket.Conn) map[string]any {
	t.Helper()
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, raw, err := conn.ReadMessage()
	require.NoError(t, err)
	var e map[string]any
	require.NoError(t, json.Unmarshal(raw, &e))
	return e
}

func TestEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.org(t, "ev-a", tenancy.PlanPro)
	other := b.org(t, "ev-b", tenancy.PlanEnterprise)
	addr := listen(t, b)

	mine, _, err := dial(t, addr, "", http.Header{"Authorization": {"Bearer " + a.token}})
	require.NoError(t, err)
	byQuery, _, err := dial(t, addr, "?access_token="+a.token, nil)
	require.NoError(t, err, "a browser passes its token in the query")
	theirs, _, err := dial(t, addr, "", http.Header{"Authorization": {"Bearer " + other.token}})
	require.NoError(t, err)
	time.Sleep(100 * time.Millisecond) // the hub subscribed

	agent := b.create(t, a.token, "/api/agents", map[string]string{"name": "evented"})
	for _, conn := range []*websocket.Conn{mine, byQuery} {
		e := nextEvent(t, conn)
		require.Equal(t, "agent.created", e["type"])
		require.Equal(t, a.ID, e["organizationId"])
		require.Equal(t, agent["id"], e["data"].(map[string]any)["id"])
		require.NotEmpty(t, e["at"])
	}
	task := b.create(t, a.token, "/api/tasks", map[string]any{"title": "t"})
	require.Equal(t, "task.created", nextEvent(t, mine)["type"])
	require.Equal(t, 200, b.do(t, "POST", "/api/tasks/"+task["id"].(string)+"/start", a.token, nil).status)
	require.Equal(t, "task.updated", nextEvent(t, mine)["type"])
	b.create(t, a.token, "/api/messages", map[string]any{"role": "user", "content": "hi"})
	require.Equal(t, "message.created", nextEvent(t, mine)["type"])

	require.NoError(t, theirs.SetReadDeadline(time.Now().Add(300*time.Millisecond)))
	_, _, err = theirs.ReadMessage()
	require.Error(t, err, "another organization's socket received nothing")

	// Logout closes that session's socket.
	require.Equal(t, 204, b.do(t, "POST", "/api/auth/logout", a.token, nil).status)
	require.NoError(t, mine.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, _, err = mine.ReadMessage()
	require.Error(t, err, "the logged-out session's socket is closed")
}

func TestEventsRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.org(t, "ev-refuse", tenancy.PlanPro)
	addr := listen(t, b)
	_, res, err := dial(t, addr, "", http.Header{"Authorization": {"Bearer " + a.token}, "Origin": {"https://evil.example"}})
	require.Error(t, err)
	require.Equal(t, 403, res.StatusCode, "an Origin not on the allow-list is refused")
	_, _, err = dial(t, addr, "", http.Header{"Authorization": {"Bearer " + a.token}, "Origin": {"https://app.example"}})
	require.NoError(t, err, "an allowed Origin connects")
	_, res, err = dial(t, addr, "?access_token=forged", nil)
	require.Error(t, err)
	require.Equal(t, 401, res.StatusCode)
	r := b.do(t, "GET", "/api/events", a.token, nil)
	require.Equal(t, 400, r.status, "a plain GET is told to upgrade")
	require.Equal(t, "invalid_request", r.errorCode())
}

// TestEventsBoundClients: a client that floods messages, or sends one
// larger than the limit, is disconnected.
func TestEventsBoundClients(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := b.org(t, "ev-bounds", tenancy.PlanPro)
	addr := listen(t, b)
	for name, send := range map[string]func(*websocket.Conn) error{
		"flood": func(c *websocket.Conn) error {
			for range 50 {
				if err := c.WriteMessage(websocket.TextMessage, []byte("hi")); err != nil {
					return nil
				}
			}
			return nil
		},
		"huge": func(c *websocket.Conn) error {
			return c.WriteMessage(websocket.TextMessage, make([]byte, 64<<10))
		},
	} {
		conn, _, err := dial(t, addr, "?access_token="+a.token, nil)
		require.NoError(t, err, name)
		_ = send(conn)
		// The deadline only keeps a broken server from hanging the test:
		// that the server closed the socket, not the deadline, is the check.
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(30*time.Second)))
		_, _, err = conn.ReadMessage()
		require.Error(t, err, "%s: the server closed the socket", name)
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "%s: closed by the server, not a read timeout", name)
	}
}
