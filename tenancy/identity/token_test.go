package identity

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/stretchr/testify/require"
	"github.com/tenantgate/tenantgate/tenancy"
)

const secret = "0123456789abcdef0123456789abcdef-current"

var user = tenancy.User{ID: "u1", OrganizationID: "o1", Role: tenancy.RoleAdmin}

func TestIssueVerify(t *testing.T) {
	t.Parallel()
	tk, err := NewTokens(secret, nil, time.Hour)
	require.NoError(t, err)
	before := time.Now()
	raw, exp, err := tk.Issue(user)
	after := time.Now()
	require.NoError(t, err)
	// An hour from the moment of issue, whenever that was between the two
	// readings: no allowance for how long the machine took.
	require.False(t, exp.Before(before.Add(time.Hour)), "exp %v is an hour after the issue", exp)
	require.False(t, exp.After(after.Add(time.Hour)), "exp %v is an hour after the issue", exp)
	id, err := tk.Verify(raw)
	require.NoError(t, err)
	require.Equal(t, "u1", id.UserID)
	require.Equal(t, "o1", id.OrganizationID)
	require.Equal(t, tenancy.RoleAdmin, id.Role)
	require.NotEmpty(t, id.TokenID)
}

func TestRotation(t *testing.T) {
	t.Parallel()
	old, _ := NewTokens("old-secret-old-secret-old-secret-123", nil, time.Hour)
	raw, _, _ := old.Issue(user)
	rotated, _ := NewTokens(secret, []string{"old-secret-old-secret-old-secret-123"}, time.Hour)
	_, err := rotated.Verify(raw)
	require.NoError(t, err, "a token of a previous secret still verifies")
	fresh, _ := NewTokens(secret, nil, time.Hour)
	_, err = fresh.Verify(raw)
	require.ErrorIs(t, err, ErrInvalidToken, "once the old secret is dropped its tokens fail")
}

func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	tk, _ := NewTokens(secret, nil, time.Hour)
	sign := func(method jwt.SigningMethod, key any, mutate func(*Claims)) string {
		now := time.Now()
		c := Claims{OrganizationID: "o1", Role: tenancy.RoleOwner, RegisteredClaims: jwt.RegisteredClaims{
			Issuer: Issuer, Subject: "u1", Audience: jwt.ClaimStrings{Audience}, ID: "j1",
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now),
		}}
		mutate(&c)
		tok := jwt.NewWithClaims(method, c)
		tok.Header["kid"] = tk.current
		s, err := tok.SignedString(key)
		require.NoError(t, err)
		return s
	}
	key := []byte(secret)
	good := sign(jwt.SigningMethodHS256, key, func(*Claims) {})
	_, err := tk.Verify(good)
	require.NoError(t, err, "control: the unmutated token verifies")

	parts := strings.Split(good, ".")
	cases := map[string]string{
		"tampered signature": parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])),
		"alg none":           sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, func(*Claims) {}),
		"other secret":       sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-000"), func(*Claims) {}),
		"HS512":              sign(jwt.SigningMethodHS512, key, func(*Claims) {}),
		"expired":            sign(jwt.SigningMethodHS256, key, func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(-time.Minute)) }),
		"no exp":             sign(jwt.SigningMethodHS256, key, func(c *Claims) { c.ExpiresAt = nil }),
		"future nbf":         sign(jwt.SigningMethodHS256, key, func(c *Claims) { c.NotBefore = jwt.NewNumericDate(time.Now().Add(time.Hour)) }),
		"future iat":         sign(jwt.SigningMethodHS256, key, func(c *Claims) { c.IssuedAt = jwt.NewNumericDate(time.Now().Add(time.Hour)) }),
		"wrong iss":          sign(jwt.SigningMethodHS256, key, func(c *Claims) { c.Issuer = "evil" }),
		"wrong aud":          sign(jwt.SigningMethodHS256, key, func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} }),
		"no org":             sign(jwt.SigningMethodHS256, key, func(c *Claims) { c.OrganizationID = "" }),
		"bad role":           sign(jwt.SigningMethodHS256, key, func(c *Claims) { c.Role = "god" }),
		"garbage":            "not.a.jwt",
	}
	for name, raw := range cases {
		_, err := tk.Verify(raw)
		require.ErrorIs(t, err, ErrInvalidToken, name)
	}
}

func TestPassword(t *testing.T) {
	t.Parallel()
	p := PasswordParams{Memory: 64, Time: 1, Threads: 1}
	h, err := HashPassword("correct horse battery", p)
	require.NoError(t, err)
	require.NoError(t, CheckPassword(h, "correct horse battery"))
	require.ErrorIs(t, CheckPassword(h, "correct horse batterz"), ErrPasswordMismatch)
	h2, _ := HashPassword("correct horse battery", p)
	require.NotEqual(t, h, h2, "salted")
	require.Error(t, CheckPassword("plain", "plain"))
}

// TestVerifiedCacheHonoursExpiry: a cached token still expires.
func TestVerifiedCacheHonoursExpiry(t *testing.T) {
	t.Parallel()
	tk, _ := NewTokens(secret, nil, time.Minute)
	now := time.Now()
	tk.now = func() time.Time { return now }
	raw, _, _ := tk.Issue(user)
	_, err := tk.Verify(raw)
	require.NoError(t, err)
	_, err = tk.Verify(raw)
	require.NoError(t, err, "served from the cache")
	now = now.Add(2 * time.Minute)
	_, err = tk.Verify(raw)
	require.ErrorIs(t, err, ErrInvalidToken, "expired even though cached")

	// A tampered copy of a cached token is not a cache hit.
	now = time.Now()
	raw, _, _ = tk.Issue(user)
	_, err = tk.Verify(raw)
	require.NoError(t, err)
	_, err = tk.Verify(raw[:len(raw)-2] + "xx")
	require.ErrorIs(t, err, ErrInvalidToken)
}

func BenchmarkVerify(b *testing.B) {
	tk, _ := NewTokens(secret, nil, time.Hour)
	raw, _, _ := tk.Issue(user)
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := tk.Verify(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("full", func(b *testing.B) { // signature and claims checked every time
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := tk.verify(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
