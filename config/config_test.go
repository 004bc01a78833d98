package config

import (
	"net/netip"
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
	require.Equal(t, PlanLimits{MaxAgents: 5, MaxAgentMinutes: 1000, RPS: 10, MaxSchedules: 5, MaxTokens: 1_000_000}, c.Plans["free"])
	require.Equal(t, PlanLimits{MaxAgents: 20, MaxAgentMinutes: 5000, RPS: 50, MaxSchedules: 20, MaxTokens: 10_000_000}, c.Plans["starter"])
	require.Equal(t, PlanLimits{MaxAgents: 100, MaxAgentMinutes: 25000, RPS: 200, MaxSchedules: 100, MaxTokens: 100_000_000}, c.Plans["pro"])
	require.Equal(t, PlanLimits{MaxAgents: 1000, MaxAgentMinutes: 250000, RPS: 1000, MaxSchedules: 1000}, c.Plans["enterprise"])
	require.Equal(t, 100, c.Events.MaxSocketsPerOrganization)
	require.Empty(t, c.ProxyHeader)
	require.Empty(t, c.TrustedProxies)
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
    max_schedules: 9
events:
  max_sockets_per_organization: 12
pools:
  max_open: 3
`), 0o600))
	t.Setenv("TENANTGATE_ADMIN_ADDR", "127.0.0.1:7002")
	t.Setenv("TENANTGATE_PLANS_PRO_RPS", "999")
	t.Setenv("TENANTGATE_PLANS_PRO_MAX_SCHEDULES", "321")
	t.Setenv("TENANTGATE_EVENTS_ALLOWED_ORIGINS", "https://a.example, https://b.example")
	c, err := Load(New(), file)
	require.NoError(t, err)
	require.Equal(t, ":7000", c.HTTPAddr, "file beats default")
	require.Equal(t, "127.0.0.1:7002", c.AdminAddr, "environment beats file")
	require.Equal(t, 7, c.Plans["free"].MaxAgents)
	require.Equal(t, 1000, c.Plans["free"].MaxAgentMinutes, "keys the file leaves out keep their defaults")
	require.Equal(t, 999, c.Plans["pro"].RPS)
	require.Equal(t, 9, c.Plans["free"].MaxSchedules)
	require.Equal(t, 321, c.Plans["pro"].MaxSchedules)
	require.Equal(t, 20, c.Plans["starter"].MaxSchedules, "keys the file leaves out keep their defaults")
	require.Equal(t, 12, c.Events.MaxSocketsPerOrganization)
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

func TestTrustedProxiesFromEnv(t *testing.T) {
	t.Setenv("TENANTGATE_PROXY_HEADER", "X-Forwarded-For")
	t.Setenv("TENANTGATE_TRUSTED_PROXIES", " 10.0.0.0/8, 192.168.1.7 ,2001:db8::/32, 2001:db8:1::5, 172.16.3.9/12, ::ffff:100.64.0.0/106")
	c, err := Load(New(), "")
	require.NoError(t, err)
	require.Equal(t, []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("2001:db8::/32"),
		netip.MustParsePrefix("2001:db8:1::5/128"),
		netip.MustParsePrefix("172.16.0.0/12"), // host bits masked off
		netip.MustParsePrefix("100.64.0.0/10"), // an IPv4-mapped CIDR is the IPv4 one
	}, c.TrustedProxies)
	require.NoError(t, c.Validate())
}

func TestTrustedProxiesFromFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tg.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`
proxy_header: X-Forwarded-For
trusted_proxies:
  - 10.42.0.0/16
  - fd00::1
`), 0o600))
	c, err := Load(New(), file)
	require.NoError(t, err)
	require.Equal(t, "X-Forwarded-For", c.ProxyHeader)
	require.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.42.0.0/16"), netip.MustParsePrefix("fd00::1/128")}, c.TrustedProxies)
	require.NoError(t, c.Validate())
}

func TestTrustedProxiesValidation(t *testing.T) {
	t.Setenv("TENANTGATE_TRUSTED_PROXIES", "10.0.0.0/8,10.0.0.0/33,proxy.internal,fe80::1%eth0")
	c, err := Load(New(), "")
	require.NoError(t, err)
	err = c.Validate()
	require.ErrorContains(t, err, "TENANTGATE_TRUSTED_PROXIES")
	for _, bad := range []string{"10.0.0.0/33", "proxy.internal", "fe80::1%eth0"} {
		require.ErrorContains(t, err, bad)
	}
	require.NotContains(t, err.Error(), `"10.0.0.0/8"`, "only the bad entries are named")

	// A header without proxies to trust would be ignored: say so instead.
	t.Setenv("TENANTGATE_TRUSTED_PROXIES", "")
	t.Setenv("TENANTGATE_PROXY_HEADER", "X-Forwarded-For")
	c, err = Load(New(), "")
	require.NoError(t, err)
	err = c.Validate()
	require.ErrorContains(t, err, "TENANTGATE_PROXY_HEADER")
	require.ErrorContains(t, err, "TENANTGATE_TRUSTED_PROXIES")
	require.ErrorContains(t, err, "ignored")

	// Proxies without a header are harmless: nothing reads them.
	t.Setenv("TENANTGATE_PROXY_HEADER", "")
	t.Setenv("TENANTGATE_TRUSTED_PROXIES", "10.0.0.0/8")
	c, err = Load(New(), "")
	require.NoError(t, err)
	require.NoError(t, c.Validate())
}

func TestNewLimitsValidated(t *testing.T) {
	c, err := Load(New(), "")
	require.NoError(t, err)
	c.Events.MaxSocketsPerOrganization = 0
	require.NoError(t, c.Validate(), "0 turns the socket cap off")
	c.Events.MaxSocketsPerOrganization = -1
	require.ErrorContains(t, c.Validate(), "TENANTGATE_EVENTS_MAX_SOCKETS_PER_ORGANIZATION")

	c, err = Load(New(), "")
	require.NoError(t, err)
	starter := c.Plans["starter"]
	starter.MaxSchedules = 0
	c.Plans["starter"] = starter
	require.ErrorContains(t, c.Validate(), "TENANTGATE_PLANS_STARTER_MAX_SCHEDULES")
}

// Without --config only ./tenantgate.yaml is read: not an extensionless
// ./tenantgate (the binary itself, run from its own directory), nor
// tenantgate.json or the like, which viper's name search would find.
func TestOnlyTenantgateYAML(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	require.NoError(t, os.WriteFile("tenantgate", []byte("\x7fELF\x02\x01\x01\x00: [not yaml\n\t"), 0o755))
	c, err := Load(New(), "")
	require.NoError(t, err, "the binary beside the config is not a config file")
	require.Equal(t, ":8080", c.HTTPAddr)

	require.NoError(t, os.WriteFile("tenantgate.json", []byte(`{"http_addr": ":1111"}`), 0o600))
	c, err = Load(New(), "")
	require.NoError(t, err)
	require.Equal(t, ":8080", c.HTTPAddr, "tenantgate.json is not read")

	require.NoError(t, os.WriteFile("tenantgate.yaml", []byte("http_addr: \":2222\"\n"), 0o600))
	c, err = Load(New(), "")
	require.NoError(t, err)
	require.Equal(t, ":2222", c.HTTPAddr, "tenantgate.yaml is read")

	require.NoError(t, os.WriteFile("tenantgate.yaml", []byte("http_addr: [\n"), 0o600))
	_, err = Load(New(), "")
	require.ErrorContains(t, err, "tenantgate.yaml", "a broken tenantgate.yaml is an error, not ignored")
}

func TestUsageRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"90d": 90 * 24 * time.Hour, "1d": 24 * time.Hour, "36h": 36 * time.Hour} {
		t.Setenv("TENANTGATE_USAGE_RETENTION", in)
		c, err := Load(New(), "")
		require.NoError(t, err)
		require.Equal(t, want, c.Usage.Retention, in)
	}
	for _, bad := range []string{"0d", "-3d", "ninety", "0s"} {
		t.Setenv("TENANTGATE_USAGE_RETENTION", bad)
		_, err := Load(New(), "")
		require.ErrorContains(t, err, "usage.retention", bad)
	}
}
