package router

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/events"
	"github.com/tenantgate/tenantgate/tenancy/identity"
)

// TestEventsCloseAtTokenExpiry: a socket opened with a session token ends
// with a close frame when the token expires, whether or not events are
// flowing, and no event reaches it after the expiry.
func TestEventsCloseAtTokenExpiry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	quietOrg := b.org(t, "ev-exp-quiet", tenancy.PlanPro) // nothing is published after expiry
	busyOrg := b.org(t, "ev-exp-busy", tenancy.PlanPro)   // events are published after expiry
	// The same secret as the app's: a token of the gateway, only short.
	short, err := identity.NewTokens(testSecret, nil, 4*time.Second)
	require.NoError(t, err)
	addr := listen(t, b)

	type socket struct {
		org    org
		frames <-chan frame
		exp    time.Time
	}
	var sockets []socket
	for _, o := range []org{quietOrg, busyOrg} {
		me := b.do(t, "GET", "/api/auth/me", o.token, nil)
		require.Equal(t, 200, me.status, me.text)
		user := me.json["user"].(map[string]any)
		tok, exp, err := short.Issue(tenancy.User{ID: user["id"].(string), OrganizationID: o.ID, Role: tenancy.RoleOwner})
		require.NoError(t, err)
		conn, _, err := dial(t, addr, "?access_token="+tok, nil)
		require.NoError(t, err, "the token is still valid")
		sockets = append(sockets, socket{org: o, frames: readFrames(conn), exp: exp})
	}
	publish := func(o org, phase string) {
		b.hub.Publish(context.Background(), events.Event{Type: "task.updated", OrganizationID: o.ID,
			Data: map[string]string{"phase": phase}})
	}
	// Both sockets deliver before the expiry (publishing until the hub has
	// joined them).
	for _, s := range sockets {
		waitLive(t, s.frames, func() { publish(s.org, "before") })
	}

	// Past the expiry (the issuer's: the token's own is at most as late).
	<-time.After(time.Until(sockets[1].exp))
	stop := make(chan struct{})
	published := make(chan struct{})
	go func() { // ends with the test's wait below
		defer close(published)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			publish(busyOrg, "after")
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stop); <-published }()

	for i, s := range sockets {
		closed := waitClose(t, s.frames)
		require.Equal(t, websocket.ClosePolicyViolation, closed.Code, "socket %d", i)
		require.Equal(t, "credential expired", closed.Text, "socket %d", i)
	}
}

// frame is one read from a client socket: a message or the error that
// ended the reads.
type frame struct {
	data []byte
	err  error
}

// readFrames reads conn until it fails, on a goroutine that ends with it.
func readFrames(conn *websocket.Conn) <-chan frame {
	frames := make(chan frame, 1024)
	go func() {
		defer close(frames)
		for {
			_, data, err := conn.ReadMessage()
			frames <- frame{data: data, err: err}
			if err != nil {
				return
			}
		}
	}()
	return frames
}

func phaseOf(t *testing.T, f frame) string {
	t.Helper()
	var e struct {
		Data struct{ Phase string } `json:"data"`
	}
	require.NoError(t, json.Unmarshal(f.data, &e), "%s", f.data)
	return e.Data.Phase
}

// waitLive publishes until the socket delivers an event.
func waitLive(t *testing.T, frames <-chan frame, publish func()) {
	t.Helper()
	timeout := time.After(3 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		publish()
		select {
		case f := <-frames:
			require.NoError(t, f.err, "the socket delivers before its token expires")
			require.Equal(t, "before", phaseOf(t, f))
			return
		case <-tick.C:
		case <-timeout:
			t.Fatal("no event reached the socket before its token expired")
		}
	}
}

// waitClose reads until the server closes the socket; every event read on
// the way must be one published before the expiry.
func waitClose(t *testing.T, frames <-chan frame) *websocket.CloseError {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case f := <-frames:
			if f.err == nil {
				require.Equal(t, "before", phaseOf(t, f), "no event is delivered after the token expired")
				continue
			}
			var ce *websocket.CloseError
			require.True(t, errors.As(f.err, &ce), "closed with a close frame, got %v", f.err)
			return ce
		case <-timeout:
			t.Fatal("the socket outlived its token")
		}
	}
}
