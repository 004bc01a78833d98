package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/config"
	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/identity"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// replicas starts two gateways over one catalog and the given Redis, with
// an organization whose owner is logged in.
type replicas struct {
	a, b  *gateway
	org   tenancy.Organization
	token string
}

func twoReplicas(t *testing.T, redisURL string) *replicas {
	e := env(t)
	t.Setenv("TENANTGATE_REDIS_URL", redisURL)
	t.Setenv("TENANTGATE_REDIS_PREFIX", e.RedisPrefix)
	t.Setenv("TENANTGATE_JWT_SECRET", "replica-secret-replica-secret-replica")
	t.Setenv("TENANTGATE_PLACEMENT_TTL", "1h") // only an invalidation can refresh
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := config.Load(config.New(), "")
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	require.NoError(t, provisioner.Init(ctx, provisionerConfig(cfg), log))
	r := &replicas{}
	r.a, err = newGateway(ctx, cfg, log)
	require.NoError(t, err)
	t.Cleanup(r.a.close)
	r.b, err = newGateway(ctx, cfg, log)
	require.NoError(t, err)
	t.Cleanup(r.b.close)
	hash, err := identity.HashPassword("replica-password", identity.PasswordParams{Memory: 64, Time: 1, Threads: 1})
	require.NoError(t, err)
	r.org, err = provisioner.New(provisionerConfig(cfg), r.a.store, log).CreateOrganization(ctx, provisioner.CreateOrganization{
		Slug: "replicated", Name: "R", Plan: tenancy.PlanFree, OwnerEmail: "o@replicated.test", OwnerPasswordHash: hash})
	require.NoError(t, err)
	res := r.call(t, r.a, "POST", "/api/auth/login", "", `{"email":"o@replicated.test","password":"replica-password"}`)
	require.Equal(t, 200, res.status)
	r.token = res.token
	return r
}

type result struct {
	status int
	token  string
	body   map[string]any
}

func (r *replicas) call(t *testing.T, g *gateway, method, path, token, body string) result {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	switch {
	case strings.HasPrefix(token, "tg_"):
		req.Header.Set("Authorization", "Key "+token)
	case token != "":
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := g.public.Test(req, -1)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := result{status: res.StatusCode}
	_ = json.Unmarshal(raw, &out.body)
	out.token, _ = out.body["token"].(string)
	return out
}

func (r *replicas) get(t *testing.T, g *gateway) int {
	return r.call(t, g, "GET", "/api/agents", r.token, "").status
}

// TestInvalidationAcrossReplicas: a change published by one replica makes
// the other drop its cached tenant at once, not after the TTL.
func TestInvalidationAcrossReplicas(t *testing.T) {
	r := twoReplicas(t, tenancytest.RedisURL())
	ctx := context.Background()
	require.Equal(t, 200, r.get(t, r.b), "replica b caches the active tenant")
	_, err := r.a.catalogPool.Exec(ctx, `UPDATE organizations SET status = 'suspended' WHERE id = $1`, r.org.ID)
	require.NoError(t, err)
	require.Equal(t, 200, r.get(t, r.b), "control: without a change b still serves its cached tenant")
	require.NoError(t, r.a.feed.Publish(ctx, tenancy.ChangeOrganization, r.org.ID, time.Time{}))
	require.Eventually(t, func() bool { return r.get(t, r.b) == 403 }, 5*time.Second, 20*time.Millisecond,
		"after a's change, b refuses the suspended tenant")
}

// TestLogoutAcrossReplicas: logging out on one replica is refused on the
// other at once (Redis), and a replica started later refuses it too (the
// catalog), whatever Redis forgot.
func TestLogoutAcrossReplicas(t *testing.T) {
	r := twoReplicas(t, tenancytest.RedisURL())
	require.Equal(t, 200, r.get(t, r.b))
	require.Equal(t, 204, r.call(t, r.a, "POST", "/api/auth/logout", r.token, "").status)
	// A guard, not a deadline under test: b's own caches would trust the
	// token far longer (its TTL is the hour of the token), so only a's
	// revocation reaching b, through Redis, makes b refuse it.
	require.Eventually(t, func() bool { return r.get(t, r.b) == 401 }, 10*time.Second, 5*time.Millisecond,
		"b refuses the logged-out token")

	cfg, err := config.Load(config.New(), "")
	require.NoError(t, err)
	late, err := newGateway(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	defer late.close()
	require.Equal(t, 401, r.get(t, late), "a replica started after the logout refuses it from the catalog")
}

// TestKeyRevocationAcrossReplicas: a key revoked through one replica stops
// working on the other at once, though the other had it cached.
func TestKeyRevocationAcrossReplicas(t *testing.T) {
	r := twoReplicas(t, tenancytest.RedisURL())
	created := r.call(t, r.a, "POST", "/api/api-keys", r.token, `{"name":"shared"}`)
	require.Equal(t, 201, created.status)
	key := created.body["key"].(string)
	require.Equal(t, 200, r.call(t, r.b, "GET", "/api/agents", key, "").status, "b caches the key")
	require.Equal(t, 204, r.call(t, r.a, "DELETE", "/api/api-keys/"+created.body["id"].(string), r.token, "").status)
	// A guard, as in TestLogoutAcrossReplicas: b caches keys for an hour,
	// so only the revocation reaching it makes it refuse the key.
	require.Eventually(t, func() bool { return r.call(t, r.b, "GET", "/api/agents", key, "").status == 401 },
		10*time.Second, 5*time.Millisecond, "b refuses the revoked key")
}

// TestEventsAcrossReplicas: a client connected to one replica receives the
// changes made through another.
func TestEventsAcrossReplicas(t *testing.T) {
	r := twoReplicas(t, tenancytest.RedisURL())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go r.b.public.Listener(ln)
	defer r.b.public.Shutdown()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial("ws://"+ln.Addr().String()+"/api/events?access_token="+r.token, nil)
	require.NoError(t, err)
	defer conn.Close()
	// b subscribes to the organization's channel a moment after the
	// upgrade; rather than sleep for it, create agents on a until one of
	// them reaches b's socket.
	events := make(chan []byte, 100)
	reading := make(chan struct{})
	go func() {
		defer close(reading)
		for {
			_, raw, err := conn.ReadMessage()
			if err != nil {
				return
			}
			events <- raw
		}
	}()
	defer func() { conn.Close(); <-reading }()
	ids := map[any]bool{}
	var raw []byte
	for i := 0; raw == nil; i++ {
		require.Less(t, i, 100, "no agent created on a reached b's socket")
		created := r.call(t, r.a, "POST", "/api/agents", r.token, fmt.Sprintf(`{"name":"from-a-%d"}`, i))
		require.Equal(t, 201, created.status)
		ids[created.body["id"]] = true
		select {
		case raw = <-events:
		case <-time.After(300 * time.Millisecond): // not subscribed yet: again
		}
	}
	var e map[string]any
	require.NoError(t, json.Unmarshal(raw, &e))
	require.Equal(t, "agent.created", e["type"])
	require.True(t, ids[e["data"].(map[string]any)["id"]], "the event is of an agent created on a: %v", e)
}
