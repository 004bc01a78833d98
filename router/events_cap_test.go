package router

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/broadcast"
	"github.com/tenantgate/tenantgate/tenancy/events"
)

// TestEventsSocketCap: past events.max_sockets_per_organization open
// sockets, the upgrade is refused with the contract's 429 before any
// socket opens; a socket that closes frees its slot.
func TestEventsSocketCap(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.hub.MaxPerOrganization = 3
	a := b.org(t, "ev-cap", tenancy.PlanPro)
	other := b.org(t, "ev-cap-other", tenancy.PlanPro)
	addr := listen(t, b)
	auth := http.Header{"Authorization": {"Bearer " + a.token}}

	var open []*websocket.Conn
	for range 3 {
		conn, _, err := dial(t, addr, "", auth)
		require.NoError(t, err)
		open = append(open, conn)
	}
	requireCapped(t, addr, auth)
	_, _, err := dial(t, addr, "?access_token="+other.token, nil)
	require.NoError(t, err, "another organization's slots are its own")

	// A closed socket gives its slot back once the server notices.
	require.NoError(t, open[0].Close())
	waitDial(t, addr, auth)
	requireCapped(t, addr, auth) // three again: refusals took no slot
}

// TestEventsSocketCapFailedUpgrade: a handshake refused after the slot was
// reserved gives the slot back.
func TestEventsSocketCapFailedUpgrade(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.hub.MaxPerOrganization = 1
	a := b.org(t, "ev-cap-bad", tenancy.PlanPro)
	for range 3 {
		// Upgrade headers, but no Sec-WebSocket-Key or -Version: the
		// upgrader refuses it after eventsUpgrade reserved a slot.
		r := b.do(t, "GET", "/api/events", a.token, nil, "Connection", "Upgrade", "Upgrade", "websocket")
		require.NotEqual(t, http.StatusSwitchingProtocols, r.status)
		require.NotEqual(t, http.StatusTooManyRequests, r.status, "the failed upgrades' slots were given back")
	}
	addr := listen(t, b)
	_, _, err := dial(t, addr, "?access_token="+a.token, nil)
	require.NoError(t, err, "the one slot is free")
}

// TestEventSlotHandoff: a slot the socket's handler never claims (fasthttp
// dropped the hijacked connection) goes back when the handoff timer fires,
// and a handler that claims too late takes a slot anew.
func TestEventSlotHandoff(t *testing.T) {
	t.Parallel()
	hub := events.NewHub(broadcast.NewLocal(), quiet)
	hub.MaxPerOrganization = 1
	reserve := func() (func(), error) { return hub.Reserve("A") }

	release, err := reserve()
	require.NoError(t, err)
	fired := make(chan struct{})
	slot := &eventSlot{release: release, timer: time.AfterFunc(time.Millisecond, func() { release(); close(fired) })}
	select {
	case <-fired:
	case <-time.After(5 * time.Second):
		t.Fatal("the handoff timer did not fire")
	}
	again, err := reserve()
	require.NoError(t, err, "the unclaimed slot went back")

	_, err = slot.claim(reserve)
	require.Equal(t, tenancy.CodeRateLimited, tenancy.ErrorCode(err), "a late handler takes a slot anew, and there is none")
	again()
	late, err := slot.claim(reserve)
	require.NoError(t, err)
	_, err = reserve()
	require.Error(t, err, "the late handler holds the one slot")
	late()

	// Claimed in time: the handler owns the reservation, the timer is off.
	release, err = reserve()
	require.NoError(t, err)
	slot = &eventSlot{release: release, timer: time.AfterFunc(time.Hour, release)}
	owned, err := slot.claim(reserve)
	require.NoError(t, err)
	_, err = reserve()
	require.Error(t, err, "claimed: still held")
	owned()
	_, err = reserve()
	require.NoError(t, err)
}

// requireCapped dials once more and expects the contract's 429.
func requireCapped(t *testing.T, addr string, header http.Header) {
	t.Helper()
	conn, res, err := dial(t, addr, "", header)
	require.Error(t, err)
	require.Nil(t, conn)
	require.NotNil(t, res)
	defer res.Body.Close()
	require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
	require.Equal(t, "5", res.Header.Get("Retry-After"))
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
		RequestID string `json:"requestId"`
	}
	require.NoError(t, json.Unmarshal(raw, &body), "%s", raw)
	require.Equal(t, "rate_limited", body.Error.Code)
	require.Contains(t, body.Error.Message, "3 open event streams, the most allowed")
	require.NotEmpty(t, body.RequestID)
	require.Equal(t, body.RequestID, res.Header.Get("X-Request-Id"))
}

// waitDial dials until the upgrade is admitted: a slot is given back when
// the server sees its socket close, a moment after the client closed it.
func waitDial(t *testing.T, addr string, header http.Header) *websocket.Conn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, res, err := dial(t, addr, "", header)
		if err == nil {
			return conn
		}
		require.NotNil(t, res, "%v", err)
		res.Body.Close()
		require.Equal(t, http.StatusTooManyRequests, res.StatusCode)
		if time.Now().After(deadline) {
			t.Fatal("no slot was given back after a socket closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
