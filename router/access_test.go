package router

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/service"
)

// keyAuth makes an Authorization header value for an API key.
func keyAuth(key string) []string { return []string{"Authorization", "Key " + key} }

func TestAPIKeyLifecycle(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "keys", tenancy.PlanPro)
	other := b.org(t, "keys-other", tenancy.PlanPro)

	created := b.do(t, "POST", "/api/api-keys", o.token, map[string]string{"name": "ci"})
	require.Equal(t, 201, created.status, created.text)
	key := created.json["key"].(string)
	prefix := created.json["keyPrefix"].(string)
	require.True(t, strings.HasPrefix(key, "tg_"+prefix+"_"), key)
	for _, f := range []string{"id", "name", "keyPrefix", "key", "expiresAt", "createdAt"} {
		require.Contains(t, created.json, f)
	}

	r := b.do(t, "POST", "/api/agents", "", map[string]string{"name": "from-a-program"}, keyAuth(key)...)
	require.Equal(t, 201, r.status, r.text)
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", "", nil, keyAuth(key)...).status)
	b.touches.Flush(testCtx(t))

	listed := b.do(t, "GET", "/api/api-keys", o.token, nil)
	require.Equal(t, 200, listed.status)
	require.NotContains(t, listed.text, key, "the secret is never listed")
	require.NotContains(t, listed.text, key[len(key)-20:])
	items := listed.json["data"].([]any)
	require.Len(t, items, 1)
	require.NotNil(t, items[0].(map[string]any)["lastUsedAt"], "use is recorded (in the background)")

	wrong := key[:len(key)-4] + "AAAA"
	if wrong == key {
		wrong = key[:len(key)-4] + "BBBB"
	}
	bad := b.do(t, "GET", "/api/agents", "", nil, keyAuth(wrong)...)
	require.Equal(t, 401, bad.status)

	require.Equal(t, 404, b.do(t, "DELETE", "/api/api-keys/"+created.json["id"].(string), other.token, nil).status,
		"another organization's key is not found")
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", "", nil, keyAuth(key)...).status, "…and still works")
	require.Equal(t, 204, b.do(t, "DELETE", "/api/api-keys/"+created.json["id"].(string), o.token, nil).status)
	revoked := b.do(t, "GET", "/api/agents", "", nil, keyAuth(key)...)
	require.Equal(t, 401, revoked.status, "a revoked key stops at once")
	require.Equal(t, bad.withoutRequestID(), revoked.withoutRequestID(), "wrong and revoked keys look the same")
	require.Equal(t, 404, b.do(t, "DELETE", "/api/api-keys/"+created.json["id"].(string), o.token, nil).status)

	soon := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	expiring := b.do(t, "POST", "/api/api-keys", o.token, map[string]string{"name": "short", "expiresAt": soon})
	require.Equal(t, 201, expiring.status, expiring.text)
	ek := expiring.json["key"].(string)
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", "", nil, keyAuth(ek)...).status)
	require.Eventually(t, func() bool { return b.do(t, "GET", "/api/agents", "", nil, keyAuth(ek)...).status == 401 },
		5*time.Second, 100*time.Millisecond, "an expired key is refused")
	expired := b.do(t, "GET", "/api/agents", "", nil, keyAuth(ek)...)
	require.Equal(t, bad.withoutRequestID(), expired.withoutRequestID(), "expired keys look like wrong ones")

	past := b.do(t, "POST", "/api/api-keys", o.token, map[string]string{"name": "x", "expiresAt": "2001-01-01T00:00:00Z"})
	require.Equal(t, 400, past.status)
	require.Contains(t, past.text, "expiresAt")
	require.Equal(t, 400, b.do(t, "POST", "/api/api-keys", o.token, map[string]string{"name": "x", "expiresAt": "tomorrow"}).status)
	require.Equal(t, 400, b.do(t, "POST", "/api/auth/logout", "", nil, keyAuth(createKey(t, b, o.token))...).status,
		"logout is for sessions")
}

func createKey(t *testing.T, b *bundle, token string) string {
	r := b.do(t, "POST", "/api/api-keys", token, map[string]string{"name": "k-" + uuid.NewString()[:6]})
	require.Equal(t, 201, r.status, r.text)
	return r.json["key"].(string)
}

// memberToken adds a user with role to o and logs it in.
func memberToken(t *testing.T, b *bundle, o org, role string) (string, string) {
	email := fmt.Sprintf("%s-%s@%s.test", role, uuid.NewString()[:6], o.Slug)
	r := b.do(t, "POST", "/api/users", o.token, map[string]string{"email": email, "password": "member-password", "role": role})
	require.Equal(t, 201, r.status, r.text)
	login := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": email, "password": "member-password"})
	require.Equal(t, 200, login.status)
	return login.json["token"].(string), r.json["id"].(string)
}

func TestUsersAndRoles(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "team", tenancy.PlanPro)
	other := b.org(t, "team-other", tenancy.PlanPro)
	ownerID := userID(t, b, "owner@team.test")
	admin, adminID := memberToken(t, b, o, "admin")
	member, memberID := memberToken(t, b, o, "member")

	list := b.do(t, "GET", "/api/users", admin, nil)
	require.Equal(t, 200, list.status)
	require.Len(t, list.json["data"], 3)
	require.NotContains(t, list.text, "password")

	forbidden := b.do(t, "GET", "/api/users", member, nil)
	require.Equal(t, 403, forbidden.status)
	require.Equal(t, "forbidden", forbidden.errorCode())
	require.Equal(t, 403, b.do(t, "POST", "/api/api-keys", member, map[string]string{"name": "x"}).status)

	r := b.do(t, "POST", "/api/users", admin, map[string]string{"email": "boss@team.test", "password": "boss-password", "role": "owner"})
	require.Equal(t, 403, r.status, "only owners make owners")
	require.Equal(t, 403, b.do(t, "PATCH", "/api/users/"+ownerID, admin, map[string]string{"role": "member"}).status,
		"admins cannot demote owners")
	require.Equal(t, 403, b.do(t, "DELETE", "/api/users/"+ownerID, admin, nil).status)

	r = b.do(t, "PATCH", "/api/users/"+ownerID, o.token, map[string]string{"role": "admin"})
	require.Equal(t, 409, r.status, "the last owner cannot demote itself")
	require.Equal(t, 409, b.do(t, "DELETE", "/api/users/"+ownerID, o.token, nil).status, "nor leave")

	dup := b.do(t, "POST", "/api/users", admin, map[string]string{"email": "OWNER@TEAM.test", "password": "whatever-pw", "role": "member"})
	require.Equal(t, 409, dup.status)
	require.Equal(t, 400, b.do(t, "POST", "/api/users", admin, map[string]string{"email": "x@team.test", "password": "whatever-pw", "role": "god"}).status)

	require.Equal(t, 404, b.do(t, "PATCH", "/api/users/"+memberID, other.token, map[string]string{"role": "admin"}).status,
		"another organization's user is not found")
	require.Equal(t, 404, b.do(t, "DELETE", "/api/users/"+memberID, other.token, nil).status)

	// A role change applies to the user's existing session, and keys, at once.
	adminKey := createKey(t, b, admin)
	require.Equal(t, 200, b.do(t, "GET", "/api/users", admin, nil).status)
	require.Equal(t, 200, b.do(t, "GET", "/api/users", "", nil, keyAuth(adminKey)...).status)
	require.Equal(t, 200, b.do(t, "PATCH", "/api/users/"+adminID, o.token, map[string]string{"role": "member"}).status)
	require.Equal(t, 403, b.do(t, "GET", "/api/users", admin, nil).status, "demoted: the old token carries the new role")
	require.Equal(t, 403, b.do(t, "GET", "/api/users", "", nil, keyAuth(adminKey)...).status, "and so do the user's keys")
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", "", nil, keyAuth(adminKey)...).status)

	// Deleting a user ends its sessions at once.
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", member, nil).status)
	require.Equal(t, 204, b.do(t, "DELETE", "/api/users/"+memberID, o.token, nil).status)
	require.Equal(t, 401, b.do(t, "GET", "/api/agents", member, nil).status)

	// With a second owner, the first may step down.
	second, secondID := memberToken(t, b, o, "owner")
	require.Equal(t, 200, b.do(t, "PATCH", "/api/users/"+ownerID, second, map[string]string{"role": "admin"}).status)
	require.Equal(t, 409, b.do(t, "DELETE", "/api/users/"+secondID, second, nil).status)
}

// TestRoleMatrix runs over the router's own route list, so a new route
// without an entry here fails the test.
func TestRoleMatrix(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "roles", tenancy.PlanPro)
	admin, _ := memberToken(t, b, o, "admin")
	member, _ := memberToken(t, b, o, "member")
	// Keys act with their creator's role, and only admins create keys, so
	// there is no member key to try.
	adminKey := createKey(t, b, admin)

	minimum := map[string]tenancy.Role{
		"POST /api/auth/signup": "", "POST /api/auth/login": "", "POST /api/auth/logout": tenancy.RoleMember,
		"GET /api/events": tenancy.RoleMember, "POST /api/billing/webhook": "", "GET /api/billing": tenancy.RoleOwner, "GET /api/auth/me": tenancy.RoleMember,
		"GET /api/agents": tenancy.RoleMember, "POST /api/agents": tenancy.RoleMember,
		"GET /api/agents/:id": tenancy.RoleMember, "PATCH /api/agents/:id": tenancy.RoleMember, "DELETE /api/agents/:id": tenancy.RoleMember,
		"GET /api/tasks": tenancy.RoleMember, "POST /api/tasks": tenancy.RoleMember, "GET /api/tasks/:id": tenancy.RoleMember,
		"PATCH /api/tasks/:id": tenancy.RoleMember, "DELETE /api/tasks/:id": tenancy.RoleMember,
		"POST /api/tasks/:id/start": tenancy.RoleMember, "POST /api/tasks/:id/complete": tenancy.RoleMember,
		"GET /api/messages": tenancy.RoleMember, "POST /api/messages": tenancy.RoleMember, "GET /api/activity": tenancy.RoleMember,
		"GET /api/sessions": tenancy.RoleMember, "POST /api/sessions": tenancy.RoleMember, "PATCH /api/sessions/:id": tenancy.RoleMember,
		"GET /api/schedules": tenancy.RoleMember, "POST /api/schedules": tenancy.RoleMember,
		"PATCH /api/schedules/:id": tenancy.RoleMember, "DELETE /api/schedules/:id": tenancy.RoleMember,
		"GET /api/organization": tenancy.RoleMember, "GET /api/organization/export": tenancy.RoleOwner,
		"GET /api/organization/usage": tenancy.RoleAdmin,
		"GET /api/api-keys":           tenancy.RoleAdmin, "POST /api/api-keys": tenancy.RoleAdmin, "DELETE /api/api-keys/:id": tenancy.RoleAdmin,
		"GET /api/users": tenancy.RoleAdmin, "POST /api/users": tenancy.RoleAdmin,
		"PATCH /api/users/:id": tenancy.RoleAdmin, "DELETE /api/users/:id": tenancy.RoleAdmin,
	}
	seen := map[string]bool{}
	for _, rt := range b.app.GetRoutes(true) {
		if !strings.HasPrefix(rt.Path, "/api") || rt.Method == "HEAD" {
			continue
		}
		name := rt.Method + " " + rt.Path
		want, ok := minimum[name]
		require.True(t, ok, "route %s has no entry in the role matrix", name)
		seen[name] = true
		if want == "" {
			continue
		}
		path := strings.ReplaceAll(rt.Path, ":id", uuid.NewString())
		for _, caller := range []struct {
			role tenancy.Role
			auth []string
		}{
			{tenancy.RoleMember, []string{"Authorization", "Bearer " + member}},
			{tenancy.RoleAdmin, []string{"Authorization", "Bearer " + admin}},
			{tenancy.RoleAdmin, keyAuth(adminKey)},
		} {
			if name == "POST /api/auth/logout" {
				continue // would end the session the loop uses
			}
			r := b.do(t, rt.Method, path, "", `{}`, caller.auth...)
			require.Less(t, r.status, 500, "%s as %s: %s", name, caller.role, r.text)
			if caller.role.AtLeast(want) {
				require.NotEqual(t, 403, r.status, "%s as %s: %s", name, caller.role, r.text)
			} else {
				require.Equal(t, 403, r.status, "%s as %s must be forbidden", name, caller.role)
				require.Equal(t, "forbidden", r.errorCode())
			}
		}
	}
	require.Len(t, seen, len(minimum), "every matrix entry is a real route")
}

// TestLoginBruteForce: failures are throttled per account and address and
// per address; the right password works again once the window passes.
func TestLoginBruteForce(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{login: service.LoginPolicy{MaxFailures: 3, MaxFailuresPerIP: 6, Window: 1500 * time.Millisecond}})
	b.org(t, "victim", tenancy.PlanFree)
	attacker := []string{"X-Real-IP", "203.0.113.7"}
	login := func(email, password string, from []string) response {
		return b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": email, "password": password}, from...)
	}
	for range 3 {
		require.Equal(t, 401, login("owner@victim.test", "guess-guess-guess", attacker).status)
	}
	r := login("owner@victim.test", "password-victim", attacker)
	require.Equal(t, 429, r.status, "locked for this account from this address, even with the right password")
	require.Equal(t, "rate_limited", r.errorCode())
	require.NotEmpty(t, r.header.Get("Retry-After"))

	victim := []string{"X-Real-IP", "198.51.100.20"}
	require.Equal(t, 200, login("owner@victim.test", "password-victim", victim).status,
		"the owner, from elsewhere, is not locked out by the attacker")

	for i := range 3 {
		require.Equal(t, 401, login(fmt.Sprintf("nobody%d@victim.test", i), "guess-guess-guess", attacker).status)
	}
	require.Equal(t, 429, login("someone-else@victim.test", "guess-guess-guess", attacker).status, "the address is throttled across accounts")

	time.Sleep(1600 * time.Millisecond)
	require.Equal(t, 200, login("owner@victim.test", "password-victim", attacker).status, "the window passed")
}
