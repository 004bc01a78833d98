package config

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDefaults(t *testing.T) {
	c, err := Load(New(), "")
	require.NoError(t, err)
	require.Equal(t, "postgres://localhost:5432/tenantgate?sslmode=disable", c.DatabaseURL)
	require.Equal(t, c.DatabaseURL, c.Dedicated.ServerURL, "dedicated.server_url defaults to the catalog's server")
	require.Equal(t, "tg_tenant_", c.Dedicated.DatabasePrefix)
	require.Equal(t, ":8080", c.HTTPAddr)
	require.Equal(t, "127.0.0.1:9090", c.AdminAddr)
	require.Equal(t, time.Hour, c.JWTTTL)
	require.Equal(t, "waitlist", c.Signup.Mode)
	require.Equal(t, 64, c.Pools.MaxOpen)
	require.Equal(t, 80, c.Pools.MaxTotalConns)
	require.Equal(t, 72*time.Hour, c.Stripe.GracePeriod)
	require.Equal(t, PlanLimits{5, 1000, 10}, c.Plans["free"])
	require.Equal(t, PlanLimits{20, 5000, 50}, c.Plans["starter"])
	require.Equal(t, PlanLimits{100, 25000, 200}, c.Plans["pro"])
	require.Equal(t, PlanLimits{1000, 250000, 1000}, c.Plans["enterprise"])
	require.NoError(t, c.Validate())
}

// Precedence: defaults < file < environment. (Flags are bound by cmd and
// tested there.)
func TestPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "tg.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
http_addr: ":7000"
admin_addr: "127.0.0.1:7001"
jwt_previous_secrets: [a, b]
plans:
  free:
    max_agents: 7
pools:
  max_open: 3
`), 0o600))
	t.Setenv("TENANTGATE_ADMIN_ADDR", "127.0.0.1:7002")
	t.Setenv("TENANTGATE_PLANS_PRO_RPS", "999")
	t.Setenv("TENANTGATE_EVENTS_ALLOWED_ORIGINS", "https://a.example, https://b.example")
	c, err := Load(New(), file)
	require.NoError(t, err)
	require.Equal(t, ":7000", c.HTTPAddr, "file beats default")
	require.Equal(t, "127.0.0.1:7002", c.AdminAddr, "environment beats file")
	require.Equal(t, 7, c.Plans["free"].MaxAgents)
	require.Equal(t, 1000, c.Plans["free"].MaxAgentMinutes, "keys the file leaves out keep their defaults")
	require.Equal(t, 999, c.Plans["pro"].RPS)
	require.Equal(t, 3, c.Pools.MaxOpen)
	require.Equal(t, []string{"a", "b"}, c.JWTPrevious)
	require.Equal(t, []string{"https://a.example", "https://b.example"}, c.Events.AllowedOrigins)
}

func TestPreviousSecretsFromEnv(t *testing.T) {
	t.Setenv("TENANTGATE_JWT_PREVIOUS_SECRETS", "one,two")
	c, err := Load(New(), "")
	require.NoError(t, err)
	require.Equal(t, []string{"one", "two"}, c.JWTPrevious)
}

func TestMissingFileNamed(t *testing.T) {
	_, err := Load(New(), filepath.Join(t.TempDir(), "nope.yaml"))
	require.ErrorContains(t, err, "nope.yaml")
}

func TestValidateMessages(t *testing.T) {
	c, err := Load(New(), "")
	require.NoError(t, err)

	err = c.ValidateServe()
	require.ErrorContains(t, err, "TENANTGATE_JWT_SECRET", "serve without a secret names the variable to set")

	c.JWTSecret = "short"
	require.ErrorContains(t, c.ValidateServe(), "at least 32")

	c.JWTSecret = "0123456789abcdef0123456789abcdef"
	require.NoError(t, c.ValidateServe())

	bad := c
	bad.Signup.Mode = "sometimes"
	bad.Pools.MaxOpen = 0
	bad.DatabaseURL = "mysql://x/y"
	bad.Dedicated.DatabasePrefix = "Bad-Prefix"
	bad.JWTTTL = 0
	err = bad.Validate()
	for _, want := range []string{"TENANTGATE_SIGNUP_MODE", "TENANTGATE_POOLS_MAX_OPEN", "TENANTGATE_DATABASE_URL",
		"TENANTGATE_DEDICATED_DATABASE_PREFIX", "TENANTGATE_JWT_TTL"} {
		require.ErrorContains(t, err, want)
	}
}

func TestStripePricesFromEnv(t *testing.T) {
	t.Setenv("TENANTGATE_STRIPE_PRICES", "price_a=pro, price_b=enterprise")
	c, err := Load(New(), "")
	require.NoError(t, err)
	require.Equal(t, map[string]string{"price_a": "pro", "price_b": "enterprise"}, c.Stripe.Prices)
	require.NoError(t, c.Validate())
	t.Setenv("TENANTGATE_STRIPE_PRICES", "price_a=platinum")
	c, err = Load(New(), "")
	require.NoError(t, err)
	require.ErrorContains(t, c.Validate(), "platinum")
}
