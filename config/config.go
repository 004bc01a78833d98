// Package config loads tenantgate's configuration with viper: defaults, then
// tenantgate.yaml (or --config FILE), then TENANTGATE_* environment
// variables, then flags. Only cmd imports it; everything else takes plain
// values.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/viper"
)

// PlanLimits are one plan's limits (plans.<plan>.*): zero means unlimited
// nowhere; every plan has all of them.
type PlanLimits struct {
	MaxAgents       int `mapstructure:"max_agents"`        // live agents per organization; free 5, starter 20, pro 100, enterprise 1000
	MaxAgentMinutes int `mapstructure:"max_agent_minutes"` // agent-minutes per billing period; free 1000, starter 5000, pro 25000, enterprise 250000
	RPS             int `mapstructure:"rps"`               // requests per second per organization; free 10, starter 50, pro 200, enterprise 1000
	MaxSchedules    int `mapstructure:"max_schedules"`     // schedules per organization; free 5, starter 20, pro 100, enterprise 1000
	// MaxTokens is model tokens per billing period; free 1M, starter 10M,
	// pro 100M, enterprise 0 (0: unlimited, the one limit where it may be).
	MaxTokens int64 `mapstructure:"max_tokens"`
}

// Config is every setting of CONTRACT §2 plus a few of our own.
type Config struct {
	DatabaseURL       string `mapstructure:"database_url"`        // catalog; default postgres://localhost:5432/tenantgate
	SharedDatabaseURL string `mapstructure:"shared_database_url"` // the shared tenant database
	Dedicated         struct {
		ServerURL      string `mapstructure:"server_url"`      // default: the catalog's server
		DatabasePrefix string `mapstructure:"database_prefix"` // default tg_tenant_
	} `mapstructure:"dedicated"`
	AppRole         string `mapstructure:"app_role"`          // role tenant data is queried as; default tenantgate_app
	AppRolePassword string `mapstructure:"app_role_password"` // its password; empty for trust/peer auth
	RedisURL        string `mapstructure:"redis_url"`         // empty: single-replica, in-process
	RedisPrefix     string `mapstructure:"redis_prefix"`      // starts every Redis key and channel; default tenantgate:
	HTTPAddr        string `mapstructure:"http_addr"`         // default :8080
	AdminAddr       string `mapstructure:"admin_addr"`        // default 127.0.0.1:9090
	AdminToken      string `mapstructure:"admin_token"`       // empty: /admin/* answers 403
	JWTSecret       string `mapstructure:"jwt_secret"`        // required by serve
	JWTPrevious     []string
	JWTTTL          time.Duration  `mapstructure:"jwt_ttl"`         // default 1h
	RequestTimeout  time.Duration  `mapstructure:"request_timeout"` // per-request deadline; default 10s
	BaseDomain      string         `mapstructure:"base_domain"`
	ProxyHeader     string         `mapstructure:"proxy_header"` // client address header set by a trusted proxy; empty (default): the connection's
	TrustedProxies  []netip.Prefix `mapstructure:"-"`            // trusted_proxies: CIDRs (a bare address is a /32 or /128) of the proxies allowed to set ProxyHeader; default empty, required with it
	LogLevel        string         `mapstructure:"log_level"`    // debug, info, warn, error; default info
	Signup          struct {
		Mode string `mapstructure:"mode"` // open or waitlist; default waitlist
	} `mapstructure:"signup"`
	Pools struct {
		MaxOpen        int           `mapstructure:"max_open"`         // default 64
		MaxTotalConns  int           `mapstructure:"max_total_conns"`  // default 80
		SharedConns    int           `mapstructure:"shared_conns"`     // per shared pool; default 16
		DedicatedConns int           `mapstructure:"dedicated_conns"`  // per dedicated pool; default 4
		ConnectTimeout time.Duration `mapstructure:"connect_timeout"`  // default 2s
		MaxServerConns int           `mapstructure:"max_server_conns"` // per PostgreSQL server; 0 (default): only max_total_conns
	} `mapstructure:"pools"`
	Login struct {
		MaxFailures      int           `mapstructure:"max_failures"`        // per account and client address per window; default 5
		MaxFailuresPerIP int           `mapstructure:"max_failures_per_ip"` // per client address, any account; default 30
		Window           time.Duration `mapstructure:"window"`              // default 15m
	} `mapstructure:"login"`
	Placement struct {
		TTL time.Duration `mapstructure:"ttl"` // how long a cached placement is trusted without invalidation; default 30s
	} `mapstructure:"placement"`
	Export struct {
		// PerDay is how many exports an owner may take of its
		// organization a day (GET /api/organization/export); default 4.
		PerDay int `mapstructure:"per_day"`
	} `mapstructure:"export"`
	Usage struct {
		// Retention is how long metered usage is kept (hourly after a
		// day); default 90d. Days are written as a number of days ("90d").
		Retention time.Duration `mapstructure:"-"`
	} `mapstructure:"usage"`
	Audit struct {
		// Interval is how often the provisioner audits the isolation
		// posture of the whole fleet; default 10m.
		Interval time.Duration `mapstructure:"interval"`
	} `mapstructure:"audit"`
	Stripe struct {
		WebhookSecret string            `mapstructure:"webhook_secret"`
		Prices        map[string]string `mapstructure:"prices"`
		GracePeriod   time.Duration     `mapstructure:"grace_period"` // default 72h
	} `mapstructure:"stripe"`
	Events struct {
		AllowedOrigins []string `mapstructure:"allowed_origins"` // Origins allowed to open /api/events; default empty (any Origin refused)
		// MaxSocketsPerOrganization is how many WebSockets one organization
		// may hold open on one gateway replica (a count, not per user);
		// past it the upgrade gets 429. Default 100; 0 turns the cap off.
		MaxSocketsPerOrganization int `mapstructure:"max_sockets_per_organization"`
	} `mapstructure:"events"`
	Provisioner struct {
		// AdminAddr is the provisioner's ops listener (/healthz, /readyz,
		// /metrics); default 127.0.0.1:9091, beside a gateway's 9090.
		// Empty: none.
		AdminAddr string `mapstructure:"admin_addr"`
	} `mapstructure:"provisioner"`
	Metrics struct {
		// TopTenants is how many of the busiest organizations get series
		// of their own (tenantgate_tenant_requests_total); default 10, 0
		// for none. Everything else is labelled by plan only.
		TopTenants int `mapstructure:"top_tenants"`
	} `mapstructure:"metrics"`
	OTel struct {
		// Endpoint is an OTLP/HTTP collector (host:port or URL); empty
		// (default): no tracing.
		Endpoint    string  `mapstructure:"endpoint"`
		Insecure    bool    `mapstructure:"insecure"`     // plain HTTP to the collector; default false
		ServiceName string  `mapstructure:"service_name"` // default tenantgate
		SampleRatio float64 `mapstructure:"sample_ratio"` // of root spans; default 1
	} `mapstructure:"otel"`
	Plans map[string]PlanLimits `mapstructure:"plans"`

	// badProxies are the trusted_proxies entries Load could not read, for
	// Validate to report: TrustedProxies can only hold good ones.
	badProxies []string
}

// Defaults of every key. viper only sees environment variables for keys it
// knows, so every key has a default here, even an empty one.
var defaults = map[string]any{
	"database_url":                        "postgres://localhost:5432/tenantgate?sslmode=disable",
	"shared_database_url":                 "postgres://localhost:5432/tenantgate_shared?sslmode=disable",
	"dedicated.server_url":                "",
	"dedicated.database_prefix":           "tg_tenant_",
	"app_role":                            "tenantgate_app",
	"app_role_password":                   "",
	"redis_url":                           "",
	"redis_prefix":                        "tenantgate:",
	"http_addr":                           ":8080",
	"admin_addr":                          "127.0.0.1:9090",
	"admin_token":                         "",
	"jwt_secret":                          "",
	"jwt_previous_secrets":                "",
	"jwt_ttl":                             "1h",
	"request_timeout":                     "10s",
	"base_domain":                         "",
	"proxy_header":                        "",
	"trusted_proxies":                     "",
	"log_level":                           "info",
	"signup.mode":                         "waitlist",
	"pools.max_open":                      64,
	"pools.max_total_conns":               80,
	"pools.shared_conns":                  16,
	"pools.dedicated_conns":               4,
	"pools.connect_timeout":               "2s",
	"pools.max_server_conns":              0,
	"placement.ttl":                       "30s",
	"login.max_failures":                  5,
	"login.max_failures_per_ip":           30,
	"login.window":                        "15m",
	"stripe.webhook_secret":               "",
	"stripe.prices":                       map[string]string{},
	"stripe.grace_period":                 "72h",
	"events.allowed_origins":              "",
	"events.max_sockets_per_organization": 100,
	"provisioner.admin_addr":              "127.0.0.1:9091",
	"metrics.top_tenants":                 10,
	"otel.endpoint":                       "",
	"otel.insecure":                       false,
	"otel.service_name":                   "tenantgate",
	"otel.sample_ratio":                   1.0,
	"audit.interval":                      "10m",
	"export.per_day":                      4,
	"usage.retention":                     "90d",
	"plans.free.max_agents":               5,
	"plans.free.max_agent_minutes":        1000,
	"plans.free.rps":                      10,
	"plans.free.max_tokens":               1_000_000,
	"plans.free.max_schedules":            5,
	"plans.starter.max_agents":            20,
	"plans.starter.max_agent_minutes":     5000,
	"plans.starter.rps":                   50,
	"plans.starter.max_tokens":            10_000_000,
	"plans.starter.max_schedules":         20,
	"plans.pro.max_agents":                100,
	"plans.pro.max_agent_minutes":         25000,
	"plans.pro.rps":                       200,
	"plans.pro.max_tokens":                100_000_000,
	"plans.pro.max_schedules":             100,
	"plans.enterprise.max_agents":         1000,
	"plans.enterprise.max_agent_minutes":  250000,
	"plans.enterprise.rps":                1000,
	"plans.enterprise.max_tokens":         0,
	"plans.enterprise.max_schedules":      1000,
}

// New returns a viper with tenantgate's defaults and environment binding.
// cmd binds its flags to it, then calls Load.
func New() *viper.Viper {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("TENANTGATE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	return v
}

// DefaultFile is the config file read from the working directory when no
// --config is given.
const DefaultFile = "tenantgate.yaml"

// Load reads file (or ./tenantgate.yaml when file is empty and it exists)
// into v and returns the resulting Config.
//
// Without a file it names ./tenantgate.yaml exactly instead of letting viper
// search for "tenantgate": viper's search also takes an extensionless
// ./tenantgate, which is the binary itself when it runs from its own
// directory, and tenantgate.json, .toml and the like, which the contract
// does not promise to read.
func Load(v *viper.Viper, file string) (Config, error) {
	name := file
	if name == "" {
		if _, err := os.Stat(DefaultFile); err == nil || !errors.Is(err, os.ErrNotExist) {
			name = DefaultFile // present, or there but unreadable: ReadInConfig says why
		}
	}
	if name != "" {
		v.SetConfigFile(name)
		if err := v.ReadInConfig(); err != nil {
			return Config{}, fmt.Errorf("config: read %s: %w", name, err)
		}
	}
	if raw, ok := v.Get("stripe.prices").(string); ok {
		// The environment spells the map price_id=plan,price_id=plan.
		prices := map[string]string{}
		for _, pair := range list(raw) {
			price, plan, _ := strings.Cut(pair, "=")
			prices[strings.TrimSpace(price)] = strings.TrimSpace(plan)
		}
		v.Set("stripe.prices", prices)
	}
	var c Config
	if err := v.Unmarshal(&c); err != nil {
		return Config{}, fmt.Errorf("config: %w", err)
	}
	c.JWTPrevious = list(v.Get("jwt_previous_secrets"))

	c.Events.AllowedOrigins = list(v.Get("events.allowed_origins"))
	c.TrustedProxies, c.badProxies = parsePrefixes(list(v.Get("trusted_proxies")))
	retention, err := parseDays(v.GetString("usage.retention"))
	if err != nil {
		return Config{}, fmt.Errorf("usage.retention (%s): %w", envName("usage.retention"), err)
	}
	c.Usage.Retention = retention
	if c.Dedicated.ServerURL == "" {
		c.Dedicated.ServerURL = c.DatabaseURL
	}
	return c, nil
}

// list reads a key that is a YAML list in files and comma-separated in the
// environment.
func list(raw any) []string {
	var items []string
	switch x := raw.(type) {
	case string:
		items = strings.Split(x, ",")
	case []any:
		for _, i := range x {
			items = append(items, fmt.Sprint(i))
		}
	case []string:
		items = x
	}
	var out []string
	for _, i := range items {
		if i = strings.TrimSpace(i); i != "" {
			out = append(out, i)
		}
	}
	return out
}

// parsePrefixes reads CIDRs and single addresses (as /32 or /128), masked
// to their network; it returns the entries it could not read apart.
func parsePrefixes(items []string) (prefixes []netip.Prefix, bad []string) {
	for _, item := range items {
		if p, err := netip.ParsePrefix(item); err == nil {
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				// ::ffff:10.0.0.0/104 is 10.0.0.0/8: addresses are compared
				// unmapped.
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			prefixes = append(prefixes, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil || a.Zone() != "" {
			bad = append(bad, item)
			continue
		}
		a = a.Unmap()
		prefixes = append(prefixes, netip.PrefixFrom(a, a.BitLen()))
	}
	return prefixes, bad
}

var prefixPattern = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,21}$`)

// Validate checks the settings every command needs, with messages that say
// which variable to change.
func (c Config) Validate() error {
	var errs []error
	for key, val := range map[string]string{
		"database_url": c.DatabaseURL, "shared_database_url": c.SharedDatabaseURL, "dedicated.server_url": c.Dedicated.ServerURL,
	} {
		if err := checkPostgresURL(val); err != nil {
			errs = append(errs, fmt.Errorf("%s (%s): %w", key, envName(key), err))
		}
	}
	if !prefixPattern.MatchString(c.Dedicated.DatabasePrefix) {
		errs = append(errs, fmt.Errorf("dedicated.database_prefix (%s): must be 1-22 lowercase letters, digits and _ (got %q)",
			envName("dedicated.database_prefix"), c.Dedicated.DatabasePrefix))
	}
	if c.AppRole == "" {
		errs = append(errs, fmt.Errorf("app_role (%s): must not be empty", envName("app_role")))
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") {
			errs = append(errs, fmt.Errorf("redis_url (%s): must be a redis:// URL", envName("redis_url")))
		}
	}
	if c.Signup.Mode != "open" && c.Signup.Mode != "waitlist" {
		errs = append(errs, fmt.Errorf("signup.mode (%s): must be open or waitlist (got %q)", envName("signup.mode"), c.Signup.Mode))
	}
	errs = append(errs, positive("pools.max_open", c.Pools.MaxOpen), positive("pools.max_total_conns", c.Pools.MaxTotalConns),
		positive("pools.shared_conns", c.Pools.SharedConns), positive("pools.dedicated_conns", c.Pools.DedicatedConns))
	errs = append(errs, positiveDuration("jwt_ttl", c.JWTTTL), positiveDuration("request_timeout", c.RequestTimeout),
		positiveDuration("pools.connect_timeout", c.Pools.ConnectTimeout), positiveDuration("placement.ttl", c.Placement.TTL),
		positiveDuration("audit.interval", c.Audit.Interval), positive("export.per_day", c.Export.PerDay),
		positive("login.max_failures", c.Login.MaxFailures), positive("login.max_failures_per_ip", c.Login.MaxFailuresPerIP),
		positiveDuration("login.window", c.Login.Window))
	if len(c.badProxies) > 0 {
		errs = append(errs, fmt.Errorf("trusted_proxies (%s): %q: not a CIDR (10.0.0.0/8) or an address (10.0.0.1)",
			envName("trusted_proxies"), c.badProxies))
	}
	if c.ProxyHeader != "" && len(c.TrustedProxies) == 0 && len(c.badProxies) == 0 {
		errs = append(errs, fmt.Errorf("proxy_header (%s) is %q but trusted_proxies (%s) is empty: the header would be ignored; "+
			"list the CIDRs of the proxies that set it, or unset proxy_header",
			envName("proxy_header"), c.ProxyHeader, envName("trusted_proxies")))
	}
	if c.Events.MaxSocketsPerOrganization < 0 {
		errs = append(errs, fmt.Errorf("events.max_sockets_per_organization (%s): must be 0 or more (got %d)",
			envName("events.max_sockets_per_organization"), c.Events.MaxSocketsPerOrganization))
	}
	if c.Metrics.TopTenants < 0 {
		errs = append(errs, fmt.Errorf("metrics.top_tenants (%s): must be 0 or more (got %d)", envName("metrics.top_tenants"), c.Metrics.TopTenants))
	}
	if c.OTel.SampleRatio < 0 || c.OTel.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("otel.sample_ratio (%s): must be between 0 and 1 (got %g)", envName("otel.sample_ratio"), c.OTel.SampleRatio))
	}
	for price, plan := range c.Stripe.Prices {
		switch plan {
		case "free", "starter", "pro", "enterprise":
		default:
			errs = append(errs, fmt.Errorf("stripe.prices (%s): price %q maps to %q, not a plan (free, starter, pro, enterprise)",
				envName("stripe.prices"), price, plan))
		}
	}
	for _, p := range []string{"free", "starter", "pro", "enterprise"} {
		l := c.Plans[p]
		errs = append(errs, positive("plans."+p+".max_agents", l.MaxAgents),
			positive("plans."+p+".max_agent_minutes", l.MaxAgentMinutes), positive("plans."+p+".rps", l.RPS),
			positive("plans."+p+".max_schedules", l.MaxSchedules))
		if l.MaxTokens < 0 {
			errs = append(errs, fmt.Errorf("plans.%s.max_tokens (%s): must be 0 (unlimited) or more (got %d)", p,
				envName("plans."+p+".max_tokens"), l.MaxTokens))
		}
	}
	return errors.Join(errs...)
}

// ValidateServe adds what a gateway needs on top of Validate.
func (c Config) ValidateServe() error {
	err := c.Validate()
	switch {
	case c.JWTSecret == "":
		err = errors.Join(err, fmt.Errorf("jwt_secret is not set: set %s to a random string of at least 32 bytes (e.g. `openssl rand -hex 32`), or jwt_secret in tenantgate.yaml", envName("jwt_secret")))
	case len(c.JWTSecret) < 32:
		err = errors.Join(err, fmt.Errorf("jwt_secret (%s) is %d bytes: use at least 32", envName("jwt_secret"), len(c.JWTSecret)))
	}
	return err
}

func checkPostgresURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return errors.New("must be a postgres:// URL")
	}
	if strings.TrimPrefix(u.Path, "/") == "" {
		return errors.New("must name a database")
	}
	return nil
}

func positive(key string, n int) error {
	if n <= 0 {
		return fmt.Errorf("%s (%s): must be a positive number (got %d)", key, envName(key), n)
	}
	return nil
}

func positiveDuration(key string, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("%s (%s): must be a positive duration such as 30s (got %s)", key, envName(key), d)
	}
	return nil
}

// envName is the environment variable of a key.
func envName(key string) string {
	return "TENANTGATE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// parseDays reads a duration that may be given in days ("90d"), which
// time.ParseDuration does not know, or as any Go duration ("2160h").
func parseDays(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("must be a positive number of days such as 90d, or a duration such as 2160h (got %q)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("must be a positive number of days such as 90d, or a duration such as 2160h (got %q)", s)
	}
	return d, nil
}
