package events

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/broadcast"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func receive(t *testing.T, c *Client) Event {
	t.Helper()
	select {
	case raw, ok := <-c.Events:
		require.True(t, ok, "client dropped")
		var e Event
		require.NoError(t, json.Unmarshal(raw, &e))
		return e
	case <-time.After(2 * time.Second):
		t.Fatal("no event")
	}
	return Event{}
}

func nothing(t *testing.T, c *Client) {
	t.Helper()
	select {
	case raw := <-c.Events:
		t.Fatalf("unexpected event %s", raw)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestEventsReachOnlyTheirOrganization(t *testing.T) {
	t.Parallel()
	h := NewHub(broadcast.NewLocal(), quiet)
	a1, a2 := h.Join(Principal{OrganizationID: "A"}), h.Join(Principal{OrganizationID: "A"})
	b := h.Join(Principal{OrganizationID: "B"})
	h.Publish(context.Background(), Event{Type: "agent.created", OrganizationID: "A", Data: map[string]string{"id": "x"}})
	for _, c := range []*Client{a1, a2} {
		e := receive(t, c)
		require.Equal(t, "agent.created", e.Type)
		require.Equal(t, "A", e.OrganizationID)
		require.False(t, e.At.IsZero())
	}
	nothing(t, b)
	h.Leave(a1)
	h.Leave(a2)
	h.Leave(b)
}

func TestSlowClientIsDropped(t *testing.T) {
	t.Parallel()
	h := NewHub(broadcast.NewLocal(), quiet)
	slow := h.Join(Principal{OrganizationID: "A"})
	fast := h.Join(Principal{OrganizationID: "A"})
	for i := range queue + 5 {
		h.Publish(context.Background(), Event{Type: "task.updated", OrganizationID: "A", Data: i})
		<-fast.Events // the fast one keeps up
	}
	n := 0
	for range slow.Events {
		n++
	}
	require.Equal(t, queue, n, "the slow client got what fit, then its queue was closed")
	h.Publish(context.Background(), Event{Type: "task.updated", OrganizationID: "A"})
	receive(t, fast)
	h.Leave(slow)
	h.Leave(fast)
}

func TestDisconnectByPrincipal(t *testing.T) {
	t.Parallel()
	h := NewHub(broadcast.NewLocal(), quiet)
	mine := h.Join(Principal{OrganizationID: "A", TokenID: "jti-1"})
	other := h.Join(Principal{OrganizationID: "A", TokenID: "jti-2"})
	h.Disconnect(func(p Principal) bool { return p.TokenID == "jti-1" })
	_, open := <-mine.Events
	require.False(t, open, "the logged-out session's socket is closed")
	h.Publish(context.Background(), Event{Type: "agent.deleted", OrganizationID: "A"})
	receive(t, other)
	h.Leave(mine)
	h.Leave(other)
}

// TestRedisDownDeliversLocally: with Redis unreachable, an event still
// reaches the sockets of the replica that made the change.
func TestRedisDownDeliversLocally(t *testing.T) {
	t.Parallel()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond,
		MaxRetries: -1, DialerRetries: 1})
	defer client.Close()
	bus := broadcast.NewRedis(client, "tgtest:", quiet)
	defer bus.Close()
	h := NewHub(bus, quiet)
	a, b := h.Join(Principal{OrganizationID: "A"}), h.Join(Principal{OrganizationID: "B"})
	h.Publish(context.Background(), Event{Type: "task.created", OrganizationID: "A"})
	require.Equal(t, "task.created", receive(t, a).Type)
	nothing(t, b)
	h.Leave(a)
	h.Leave(b)
}

func TestReserveCapsStreamsPerOrganization(t *testing.T) {
	t.Parallel()
	h := NewHub(broadcast.NewLocal(), quiet)
	h.MaxPerOrganization = 2
	r1, err := h.Reserve("A")
	require.NoError(t, err)
	r2, err := h.Reserve("A")
	require.NoError(t, err)

	_, err = h.Reserve("A")
	var te *tenancy.Error
	require.ErrorAs(t, err, &te)
	require.Equal(t, tenancy.CodeRateLimited, te.Code)
	require.Contains(t, te.Message, "2 open event streams, the most allowed")
	require.Positive(t, te.RetryAfter)

	rb, err := h.Reserve("B")
	require.NoError(t, err, "another organization has slots of its own")

	r1()
	r1() // a second release gives nothing back twice
	r3, err := h.Reserve("A")
	require.NoError(t, err, "a released slot is free again")
	_, err = h.Reserve("A")
	require.Equal(t, tenancy.CodeRateLimited, tenancy.ErrorCode(err), "released once, counted once")

	for _, release := range []func(){r2, r3, rb} {
		release()
	}
	h.mu.Lock()
	require.Empty(t, h.streams, "organizations without streams leave no entry")
	h.mu.Unlock()
}

func TestReserveUnlimitedByDefault(t *testing.T) {
	t.Parallel()
	h := NewHub(broadcast.NewLocal(), quiet)
	var releases []func()
	for range 1000 {
		release, err := h.Reserve("A")
		require.NoError(t, err)
		releases = append(releases, release)
	}
	for _, release := range releases {
		release()
	}
}

func TestPrincipalExpired(t *testing.T) {
	t.Parallel()
	now := time.Now()
	require.False(t, Principal{}.Expired(now), "no expiry: never")
	require.False(t, Principal{ExpiresAt: now.Add(time.Second)}.Expired(now))
	require.True(t, Principal{ExpiresAt: now}.Expired(now))
	require.True(t, Principal{ExpiresAt: now.Add(-time.Second)}.Expired(now))
}
