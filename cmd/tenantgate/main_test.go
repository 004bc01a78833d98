package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
)

// env points the command at a test's own databases.
func env(t *testing.T) *tenancytest.Env {
	e := tenancytest.NewEnv(t)
	t.Setenv("TENANTGATE_DATABASE_URL", e.CatalogURL)
	t.Setenv("TENANTGATE_SHARED_DATABASE_URL", e.SharedURL)
	t.Setenv("TENANTGATE_DEDICATED_DATABASE_PREFIX", e.DedicatedPrefix)
	t.Setenv("TENANTGATE_APP_ROLE", e.AppRole)
	t.Setenv("TENANTGATE_LOG_LEVEL", "warn")
	// Several provisioners may run in one test: each takes a free port.
	t.Setenv("TENANTGATE_PROVISIONER_ADMIN_ADDR", "127.0.0.1:0")
	return e
}

func tg(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := run(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), err
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

func TestOperatorFlow(t *testing.T) {
	env(t)
	for range 2 {
		out, _, err := tg(t, "init")
		require.NoError(t, err, "init is idempotent")
		require.Contains(t, out, "ready")
	}

	stopProvisioner := background(t, "provisioner")
	defer stopProvisioner()
	_, _, err := tg(t, "tenants", "create", "--slug", "acme", "--name", "Acme", "--plan", "pro",
		"--owner-email", "ops@acme.test", "--owner-password", "correct-horse-1")
	require.NoError(t, err)
	out, _, err := tg(t, "tenants", "create", "--slug", "megacorp", "--name", "Mega", "--plan", "enterprise",
		"--owner-email", "ops@mega.test", "--owner-password", "correct-horse-2", "--wait")
	require.NoError(t, err)
	require.Contains(t, out, "succeeded", "--wait follows the provisioning job to its end")

	out, _, err = tg(t, "tenants", "list", "--output", "json")
	require.NoError(t, err)
	var orgs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &orgs), out)
	require.Len(t, orgs, 2)
	placements := map[string]string{}
	for _, o := range orgs {
		placements[o["slug"].(string)] = o["placement"].(string)
	}
	require.Equal(t, map[string]string{"acme": "shared", "megacorp": "dedicated"}, placements)

	out, _, err = tg(t, "tenants", "show", "megacorp")
	require.NoError(t, err)
	require.Contains(t, out, "SLUG")
	require.Contains(t, out, "enterprise")
	require.Contains(t, out, "dedicated")

	_, stderr, err := tg(t, "tenants", "show", "nobody")
	require.Error(t, err)
	require.Equal(t, 1, report(&bytes.Buffer{}, err))
	_ = stderr

	for _, bad := range [][]string{
		{"tenants", "create", "--slug", "x", "--name", "X", "--plan", "gold"},
		{"tenants", "create", "--slug", "Bad Slug", "--name", "X"},
		{"tenants", "create", "--slug", "short", "--name", "X", "--owner-email", "a@b.c", "--owner-password", "short"},
		{"tenants", "list", "--output", "yaml"},
	} {
		_, _, err := tg(t, bad...)
		require.Error(t, err, bad)
		require.Equal(t, 2, report(&bytes.Buffer{}, err), "%v is refused as a bad request", bad)
	}
	_, _, err = tg(t, "tenants", "create", "--slug", "acme", "--name", "Again")
	require.ErrorContains(t, err, "already exists")

	out, _, err = tg(t, "tenants", "set-limits", "acme", "--max-agents", "2", "--rps", "7")
	require.NoError(t, err)
	require.Contains(t, out, "limits updated")
	out, _, err = tg(t, "tenants", "set-usage", "acme", "--agent-minutes", "42")
	require.NoError(t, err)
	require.Contains(t, out, "agent-minutes this period set to 42")
	out, _, err = tg(t, "tenants", "show", "acme", "--output", "json")
	require.NoError(t, err)
	require.Contains(t, out, `"agentMinutesUsed": 42`)
	for _, bad := range [][]string{{"tenants", "set-limits", "acme"}, {"tenants", "set-limits", "acme", "--rps", "-3"},
		{"tenants", "set-usage", "acme"}} {
		_, _, err := tg(t, bad...)
		require.Equal(t, 2, report(&bytes.Buffer{}, err), "%v", bad)
	}
	_, _, err = tg(t, "tenants", "set-usage", "nobody", "--agent-minutes", "1")
	require.ErrorContains(t, err, "not found")

	// serve refuses to start without a secret and says what to set.
	_, _, err = tg(t, "serve")
	require.ErrorContains(t, err, "TENANTGATE_JWT_SECRET")

	// serve answers, then shuts down gracefully when its context ends.
	t.Setenv("TENANTGATE_JWT_SECRET", "e2e-secret-e2e-secret-e2e-secret-e2e")
	t.Setenv("TENANTGATE_HTTP_ADDR", "127.0.0.1:1") // the flag below must win
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		var out, errOut bytes.Buffer
		done <- run(ctx, []string{"serve", "--http-addr", httpAddr, "--admin-addr", adminAddr}, &out, &errOut)
	}()
	waitHealthy(t, "http://"+adminAddr+"/healthz")
	token := login(t, "http://"+httpAddr, "ops@mega.test", "correct-horse-2")
	res := call(t, "POST", "http://"+httpAddr+"/api/agents", token, `{"name":"e2e"}`)
	require.Equal(t, 201, res.StatusCode)
	res = call(t, "GET", "http://"+adminAddr+"/readyz", "", "")
	require.Equal(t, 200, res.StatusCode)
	res = call(t, "GET", "http://"+adminAddr+"/admin/pools", "", "")
	require.Equal(t, 403, res.StatusCode, "no admin_token: the admin API is closed")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestDev(t *testing.T) {
	env(t)
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	t.Setenv("TENANTGATE_ADMIN_TOKEN", "dev-admin-token")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"dev", "--http-addr", httpAddr, "--admin-addr", adminAddr}, &out, &bytes.Buffer{})
	}()
	waitHealthy(t, "http://"+adminAddr+"/healthz")
	for _, slug := range []string{"acme", "initech"} {
		token := login(t, "http://"+httpAddr, "owner@"+slug+".test", demoPassword)
		res := call(t, "POST", "http://"+httpAddr+"/api/agents", token, `{"name":"researcher","model":"gpt-5"}`)
		require.Equal(t, 201, res.StatusCode)
		res = call(t, "GET", "http://"+httpAddr+"/api/agents", token, "")
		require.Equal(t, 200, res.StatusCode)
	}
	res := call(t, "GET", "http://"+adminAddr+"/admin/tenants", "dev-admin-token", "")
	require.Equal(t, 200, res.StatusCode)
	var tenants struct{ Data []map[string]any }
	require.NoError(t, json.NewDecoder(res.Body).Decode(&tenants))
	require.Len(t, tenants.Data, 3, "two shared and one dedicated demo tenant")
	res = call(t, "GET", "http://"+adminAddr+"/admin/pools", "dev-admin-token", "")
	require.Equal(t, 200, res.StatusCode)
	res = call(t, "GET", "http://"+adminAddr+"/metrics", "", "")
	require.Equal(t, 200, res.StatusCode)
	cancel()
	require.NoError(t, <-done)
	require.Contains(t, out.String(), "curl")
	require.Contains(t, out.String(), "owner@initech.test")
}

func waitHealthy(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never became healthy", url)
}

func call(t *testing.T, method, url, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func login(t *testing.T, base, email, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	res := call(t, "POST", base+"/api/auth/login", "", string(body))
	require.Equal(t, 200, res.StatusCode)
	var out struct{ Token string }
	require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
	return out.Token
}

// TestWaitlistApproval: a waitlisted signup is let in by `tenants approve`,
// and `suspend`/`resume` take effect on the running gateway.
func TestWaitlistApproval(t *testing.T) {
	env(t)
	t.Setenv("TENANTGATE_JWT_SECRET", "waitlist-secret-waitlist-secret-waitl")
	t.Setenv("TENANTGATE_SIGNUP_MODE", "waitlist")
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--http-addr", httpAddr, "--admin-addr", adminAddr}, &bytes.Buffer{}, &bytes.Buffer{})
	}()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	waitHealthy(t, "http://"+adminAddr+"/healthz")
	base := "http://" + httpAddr
	res := call(t, "POST", base+"/api/auth/signup", "",
		`{"email":"hopeful@wait.test","password":"hopeful-password","organizationName":"Hopeful","organizationSlug":"hopeful"}`)
	require.Equal(t, 202, res.StatusCode)
	token := login(t, base, "hopeful@wait.test", "hopeful-password")
	require.Equal(t, 403, call(t, "GET", base+"/api/agents", token, "").StatusCode)

	out, _, err := tg(t, "tenants", "approve", "hopeful")
	require.NoError(t, err)
	require.Contains(t, out, "active")
	require.Eventually(t, func() bool { return call(t, "GET", base+"/api/agents", token, "").StatusCode == 200 },
		5*time.Second, 50*time.Millisecond, "approved: the gateway lets it in")

	_, _, err = tg(t, "tenants", "suspend", "hopeful")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return call(t, "GET", base+"/api/agents", token, "").StatusCode == 403 },
		5*time.Second, 50*time.Millisecond, "suspended")
	_, _, err = tg(t, "tenants", "approve", "hopeful")
	require.ErrorContains(t, err, "suspended", "approve does not lift a suspension")
	_, _, err = tg(t, "tenants", "resume", "hopeful")
	require.NoError(t, err)
	require.Eventually(t, func() bool { return call(t, "GET", base+"/api/agents", token, "").StatusCode == 200 },
		5*time.Second, 50*time.Millisecond, "resumed")
}

// background runs the command in args until the returned stop is called.
func background(t *testing.T, args ...string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, &bytes.Buffer{}, &bytes.Buffer{}) }()
	return func() {
		cancel()
		require.NoError(t, <-done)
	}
}
