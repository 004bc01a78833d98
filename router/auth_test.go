package router

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/identity"
)

func TestSignupOpen(t *testing.T) {
	t.Parallel()
	b := setup(t)
	r := b.do(t, "POST", "/api/auth/signup", "", map[string]string{
		"email": "Founder@Startup.test", "password": "long-enough-pw", "organizationName": "Startup Inc."})
	require.Equal(t, 201, r.status, r.text)
	org := r.json["organization"].(map[string]any)
	require.Equal(t, "startup-inc", org["slug"], "slug derived from the name")
	require.Equal(t, "free", org["plan"])
	require.Equal(t, "active", org["status"])
	require.Equal(t, "shared", org["placement"])
	user := r.json["user"].(map[string]any)
	require.Equal(t, "owner", user["role"])
	require.Equal(t, "founder@startup.test", user["email"], "emails are stored normalised")
	token := r.json["token"].(string)
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", token, nil).status)

	again := b.do(t, "POST", "/api/auth/signup", "", map[string]string{
		"email": "other@startup.test", "password": "long-enough-pw", "organizationName": "Startup Inc."})
	require.Equal(t, 201, again.status, again.text)
	require.Equal(t, "startup-inc-2", again.json["organization"].(map[string]any)["slug"], "a taken derived slug gets a number")

	cases := []struct {
		body   map[string]string
		status int
		field  string
	}{
		{map[string]string{"email": "FOUNDER@startup.test", "password": "long-enough-pw", "organizationName": "X"}, 409, "email"},
		{map[string]string{"email": "new@startup.test", "password": "long-enough-pw", "organizationName": "X", "organizationSlug": "startup-inc"}, 409, ""},
		{map[string]string{"email": "new@startup.test", "password": "short", "organizationName": "X"}, 400, "password"},
		{map[string]string{"email": "not-an-email", "password": "long-enough-pw", "organizationName": "X"}, 400, "email"},
		{map[string]string{"email": "new@startup.test", "password": "long-enough-pw", "organizationName": ""}, 400, "organizationName"},
		{map[string]string{"email": "new@startup.test", "password": "long-enough-pw", "organizationName": "X", "organizationSlug": "Bad Slug"}, 400, "organizationSlug"},
	}
	for _, c := range cases {
		r := b.do(t, "POST", "/api/auth/signup", "", c.body)
		require.Equal(t, c.status, r.status, "%v: %s", c.body, r.text)
		require.Contains(t, r.text, c.field)
	}
	r = b.do(t, "POST", "/api/auth/signup", "", `{"email":"a@b.test","password":"long-enough-pw","organizationName":"X","plan":"pro"}`)
	require.Equal(t, 400, r.status, "a client cannot pick its plan")
}

func TestSignupWaitlist(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOptions{signupMode: "waitlist"})
	r := b.do(t, "POST", "/api/auth/signup", "", map[string]string{
		"email": "wait@list.test", "password": "long-enough-pw", "organizationName": "Waiting", "organizationSlug": "waiting"})
	require.Equal(t, 202, r.status, r.text)
	require.Equal(t, "pending", r.json["organization"].(map[string]any)["status"])
	require.NotContains(t, r.json, "token")

	login := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": "wait@list.test", "password": "long-enough-pw"})
	require.Equal(t, 200, login.status, "waitlisted users can log in")
	token := login.json["token"].(string)
	require.Equal(t, 200, b.do(t, "GET", "/api/auth/me", token, nil).status)
	pending := b.do(t, "GET", "/api/agents", token, nil)
	require.Equal(t, 403, pending.status)
	require.Equal(t, "organization_pending", pending.errorCode())

	org, err := b.store.SetOrganizationStatus(testCtx(t), "waiting", tenancy.StatusActive, tenancy.StatusPending)
	require.NoError(t, err)
	require.NoError(t, b.feed.Publish(testCtx(t), tenancy.ChangeOrganization, org.ID, time.Time{}))
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", token, nil).status, "approved: in at once")
}

func TestLogout(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "bye", tenancy.PlanFree)
	second := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": "owner@bye.test", "password": "password-bye"})
	require.Equal(t, 200, second.status)

	require.Equal(t, 204, b.do(t, "POST", "/api/auth/logout", o.token, nil).status)
	r := b.do(t, "GET", "/api/agents", o.token, nil)
	require.Equal(t, 401, r.status, "a logged-out token is refused")
	require.Equal(t, 401, b.do(t, "POST", "/api/auth/logout", o.token, nil).status)
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", second.json["token"].(string), nil).status, "other sessions live on")

	var n int
	require.NoError(t, tenancyConn(t, b).QueryRow(testCtx(t), `SELECT count(*) FROM revoked_tokens`).Scan(&n))
	require.Equal(t, 1, n, "the revocation is durable in the catalog")
}

// TestAuthenticationMatrix: every way a credential can be wrong is a 401
// (or the documented 403), never a 5xx.
func TestAuthenticationMatrix(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "matrix", tenancy.PlanFree)
	gone := b.org(t, "gone", tenancy.PlanFree)
	suspended := b.org(t, "frozen", tenancy.PlanFree)
	ctx := testCtx(t)

	claims := func(mut func(*identity.Claims)) *identity.Claims {
		now := time.Now()
		c := &identity.Claims{OrganizationID: o.ID, Role: tenancy.RoleOwner, RegisteredClaims: jwt.RegisteredClaims{
			Issuer: identity.Issuer, Subject: userID(t, b, "owner@matrix.test"), Audience: jwt.ClaimStrings{identity.Audience},
			ID: "matrix-jti", ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now)}}
		if mut != nil {
			mut(c)
		}
		return c
	}
	kid := strings.Split(o.token, ".")[0]
	sign := func(key string, c *identity.Claims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		hdr, _ := base64.RawURLEncoding.DecodeString(kid)
		var h map[string]any
		require.NoError(t, json.Unmarshal(hdr, &h))
		tok.Header["kid"] = h["kid"]
		s, err := tok.SignedString([]byte(key))
		require.NoError(t, err)
		return s
	}
	control := sign(testSecret, claims(nil))
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", control, nil).status, "control: a well-made token works")

	unsigned := func(alg string) string {
		h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"` + alg + `","typ":"JWT"}`))
		p, _ := json.Marshal(claims(nil))
		return h + "." + base64.RawURLEncoding.EncodeToString(p) + "."
	}
	parts := strings.Split(control, ".")

	logoutToken := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": "owner@matrix.test", "password": "password-matrix"}).json["token"].(string)
	require.Equal(t, 204, b.do(t, "POST", "/api/auth/logout", logoutToken, nil).status)
	suspendedKey := createKey(t, b, suspended.token)
	_, err := b.store.SetOrganizationStatus(ctx, "frozen", tenancy.StatusSuspended, tenancy.StatusActive)
	require.NoError(t, err)
	require.NoError(t, b.feed.Publish(ctx, tenancy.ChangeOrganization, suspended.ID, time.Time{}))
	// The API refuses to delete a last owner; remove the row directly to
	// test a token whose user is gone.
	goneID := userID(t, b, "owner@gone.test")
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", gone.token, nil).status, "control: cached while it exists")
	_, err = tenancyConn(t, b).Exec(ctx, `DELETE FROM users WHERE id = $1`, goneID)
	require.NoError(t, err)
	require.NoError(t, b.feed.Publish(ctx, tenancy.ChangeUser, goneID, time.Time{}))

	headers := map[string]string{
		"tampered signature": "Bearer " + parts[0] + "." + parts[1] + "." + strings.Repeat("x", len(parts[2])),
		"tampered payload":   "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"org":"x"}`)) + "." + parts[2],
		"alg none":           "Bearer " + unsigned("none"),
		"alg None":           "Bearer " + unsigned("None"),
		"alg NONE":           "Bearer " + unsigned("NONE"),
		"alg nOnE":           "Bearer " + unsigned("nOnE"),
		"another secret":     "Bearer " + sign("another-secret-another-secret-another", claims(nil)),
		"expired":            "Bearer " + sign(testSecret, claims(func(c *identity.Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) })),
		"no exp":             "Bearer " + sign(testSecret, claims(func(c *identity.Claims) { c.ExpiresAt = nil })),
		"future nbf":         "Bearer " + sign(testSecret, claims(func(c *identity.Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) })),
		"future iat":         "Bearer " + sign(testSecret, claims(func(c *identity.Claims) { c.IssuedAt = jwt.NewNumericDate(time.Now().Add(time.Hour)) })),
		"wrong iss":          "Bearer " + sign(testSecret, claims(func(c *identity.Claims) { c.Issuer = "someone-else" })),
		"wrong aud":          "Bearer " + sign(testSecret, claims(func(c *identity.Claims) { c.Audience = jwt.ClaimStrings{"other-api"} })),
		"other org claimed":  "Bearer " + sign(testSecret, claims(func(c *identity.Claims) { c.OrganizationID = gone.ID })),
		"revoked jti":        "Bearer " + logoutToken,
		"deleted user":       "Bearer " + gone.token,
		"no scheme":          o.token,
		"scheme only":        "Bearer",
		"empty":              "",
		"basic":              "Basic " + base64.StdEncoding.EncodeToString([]byte("owner@matrix.test:password-matrix")),
		"64 KiB token":       "Bearer " + strings.Repeat("a", 64<<10),
		"dots":               "Bearer ......",
		"three dots":         "Bearer ..",
		"garbage base64":     "Bearer !!!.@@@.###",
		"key scheme, junk":   "Key tg_nothing_here",
		"key scheme, jwt":    "Key " + o.token,
	}
	for name, h := range headers {
		r := b.do(t, "GET", "/api/agents", "", nil, "Authorization", h)
		require.Equal(t, 401, r.status, "%s: %s", name, r.text)
		require.Equal(t, "unauthorized", r.errorCode(), name)
	}
	r := b.do(t, "GET", "/api/agents", suspended.token, nil)
	require.Equal(t, 403, r.status)
	require.Equal(t, "organization_suspended", r.errorCode())
	r = b.do(t, "GET", "/api/agents", "", nil, keyAuth(suspendedKey)...)
	require.Equal(t, 403, r.status, "API keys of a suspended organization too")
	require.Equal(t, "organization_suspended", r.errorCode())
}

func userID(t *testing.T, b *bundle, email string) string {
	c, err := b.store.UserByEmail(testCtx(t), email)
	require.NoError(t, err)
	return c.User.ID
}
