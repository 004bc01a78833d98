package router

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/migrations"
	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/tenancy"
	"github.com/tenantgate/tenantgate/tenancy/broadcast"
	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/changes"
	"github.com/tenantgate/tenantgate/tenancy/events"
	"github.com/tenantgate/tenantgate/tenancy/identity"
	"github.com/tenantgate/tenantgate/tenancy/metering"
	"github.com/tenantgate/tenantgate/tenancy/placement"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
	"github.com/tenantgate/tenantgate/tenancy/ratelimit"
	"github.com/tenantgate/tenantgate/tenancy/schema"
	"github.com/tenantgate/tenantgate/tenancy/service"
	"github.com/tenantgate/tenantgate/tenancy/tenancytest"
	"github.com/tenantgate/tenantgate/tenancy/tenantdb"
	"github.com/tenantgate/tenantgate/tenancy/throttle"
)

const testSecret = "router-test-secret-router-test-secret"

// cheap keeps password hashing out of the tests' time.
var cheap = identity.PasswordParams{Memory: 64, Time: 1, Threads: 1}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// bundle is one test's running gateway over its own databases.
type bundle struct {
	env    *tenancytest.Env
	app    *fiber.App
	store  *catalog.Store
	pools  *poolcache.Cache
	prov   *provisioner.Provisioner
	scope  *tenantdb.Scope
	agents *tenantdb.Agents
	data   tenantdb.Stores
	svc    *service.Service
	usage  *metering.Store
	meter  *metering.Meter

	placements  *placement.Cache
	keys        *identity.Keys
	principals  *identity.Principals
	revocations *identity.Revocations
	bus         *broadcast.Local
	feed        *changes.Feed
	touches     *catalog.KeyTouches
	hub         *events.Hub
	tokens      *identity.Tokens
	cfg         provisioner.Config
}

type setupOptions struct {
	pools      poolcache.Config
	baseDomain string
	log        *slog.Logger // default: discard
	timeout    time.Duration
	metrics    *Metrics
	signupMode string // default open
	login      service.LoginPolicy
	plans      map[tenancy.Plan]tenancy.Limits // default: the contract's
	limiter    ratelimit.Limiter               // default: in-process
	// stripeSecret is the webhook secret; default whsec_test.
	stripeSecret string
	// unmetered leaves usage metering out (the overhead benchmark's
	// reference).
	unmetered bool
}

func setup(t testing.TB, opts ...setupOptions) *bundle {
	t.Helper()
	var o setupOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx := testCtx(t)
	e := tenancytest.NewEnv(t)
	cfg := provisioner.Config{CatalogURL: e.CatalogURL, SharedURL: e.SharedURL, DedicatedServerURL: e.ServerURL,
		DedicatedPrefix: e.DedicatedPrefix, AppRole: e.AppRole}
	require.NoError(t, provisioner.Init(ctx, cfg, quiet))
	catPool, err := pgxpool.New(ctx, e.CatalogURL)
	require.NoError(t, err)
	t.Cleanup(catPool.Close)
	b := &bundle{env: e, store: catalog.New(catPool), cfg: cfg}
	versions, err := schema.Versions(migrations.Tenant, "tenant")
	require.NoError(t, err)
	b.store.RequireTenantVersion(versions[len(versions)-1])
	b.prov = provisioner.New(cfg, b.store, quiet)
	t.Cleanup(b.prov.Close)
	b.usage = metering.NewStore(catPool, nil)
	b.meter = b.usage.NewMeter(metering.Config{Log: quiet})
	var recorder UsageRecorder = b.meter
	if o.unmetered {
		recorder = nil
	} else {
		o.pools.Tracer = b.meter.Tracer()
	}
	o.pools.AppName = "tgtest-" + e.Prefix
	b.pools = poolcache.New(o.pools, func(ctx context.Context, id string) (poolcache.Target, error) {
		db, err := b.store.Database(ctx, id)
		if err != nil {
			return poolcache.Target{}, err
		}
		dsn, err := schema.WithUser(db.DSN, e.AppRole, "")
		return poolcache.Target{DSN: dsn, Pinned: db.Kind == tenancy.KindShared}, err
	}, quiet)
	t.Cleanup(b.pools.Close)
	b.tokens, err = identity.NewTokens(testSecret, nil, time.Hour)
	require.NoError(t, err)
	b.scope = tenantdb.NewScope(func(ctx context.Context, id string) (*pgxpool.Pool, func(error), error) {
		l, err := b.pools.Lease(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		return l.Pool(), l.Release, nil
	})
	if o.log == nil {
		o.log = quiet
	}
	if o.signupMode == "" {
		o.signupMode = "open"
	}
	if o.plans == nil {
		o.plans = contractPlans()
	}
	if o.stripeSecret == "" {
		o.stripeSecret = "whsec_test"
	}
	if o.limiter == nil {
		o.limiter = ratelimit.NewLocal(10_000)
	}
	b.placements = placement.New(1000, time.Minute, b.store.Tenant)
	b.keys = identity.NewKeys(func(ctx context.Context, prefix string) (identity.KeyRecord, error) {
		k, err := b.store.APIKeyByPrefix(ctx, prefix)
		return identity.KeyRecord(k), err
	}, 1000, time.Minute, 10*time.Second)
	b.principals = identity.NewPrincipals(b.store.User, 1000, time.Minute)
	b.revocations = identity.NewRevocations()
	b.bus = broadcast.NewLocal()
	b.feed = changes.New(b.store, b.bus, quiet)
	b.hub = events.NewHub(b.bus, quiet)
	stopFeed := b.feed.Follow(Caches{Placements: b.placements, Keys: b.keys, Principals: b.principals,
		Revocations: b.revocations, Events: b.hub}.Apply)
	t.Cleanup(stopFeed)
	b.touches = b.store.NewKeyTouches(quiet)
	b.data = tenantdb.NewStores(b.scope)
	b.agents = b.data.Agents
	b.svc = service.New(service.Deps{Catalog: b.store, Tenants: b.placements.Lookup, Data: b.data, Plans: o.plans,
		Tokens: b.tokens, Keys: b.keys, Principals: b.principals, Revocations: b.revocations, Changes: b.feed, Events: b.hub,
		Throttle: throttle.NewLocal(10_000), RateLimiter: o.limiter, LoginThrottle: o.login, SignupMode: o.signupMode,
		CreateOrganization: func(ctx context.Context, slug, name, email, hash string, status tenancy.Status) (tenancy.Organization, error) {
			return b.prov.CreateOrganization(ctx, provisioner.CreateOrganization{Slug: slug, Name: name, Plan: tenancy.PlanFree,
				Status: status, OwnerEmail: email, OwnerPasswordHash: hash})
		},
		KeyUsed: b.touches.Touch,
		Billing: service.Billing{WebhookSecret: o.stripeSecret, GracePeriod: time.Hour,
			Prices: map[string]tenancy.Plan{"price_pro": tenancy.PlanPro, "price_ent": tenancy.PlanEnterprise}},
		Usage: b.usage, Log: o.log, PasswordParams: cheap})
	// app.Test's requests come from 0.0.0.0: a trusted proxy here, so
	// tests can name client addresses in X-Real-IP.
	b.app = New(Deps{Service: b.svc, Events: b.hub, AllowedOrigins: []string{"https://app.example"}, Usage: recorder,
		ProxyHeader: "X-Real-IP", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")},
		Log: o.log, BaseDomain: o.baseDomain, RequestTimeout: o.timeout, Metrics: o.metrics})
	return b
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// org creates an organization with an owner and returns it with a token.
type org struct {
	tenancy.Organization
	token string
}

func (b *bundle) org(t testing.TB, slug string, plan tenancy.Plan) org {
	t.Helper()
	hash, err := identity.HashPassword("password-"+slug, cheap)
	require.NoError(t, err)
	o, err := b.prov.CreateOrganization(testCtx(t), provisioner.CreateOrganization{
		Slug: slug, Name: slug, Plan: plan, OwnerEmail: "owner@" + slug + ".test", OwnerPasswordHash: hash})
	require.NoError(t, err)
	res := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": "owner@" + slug + ".test", "password": "password-" + slug})
	require.Equal(t, 200, res.status, res.text)
	return org{Organization: o, token: res.json["token"].(string)}
}

// response is an answer with its body decoded.
type response struct {
	status int
	header http.Header
	text   string
	json   map[string]any
}

// errorCode is the contract's error code of an error answer.
func (r response) errorCode() string {
	e, _ := r.json["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

// withoutRequestID is the body with the per-request id removed, so two
// answers can be compared byte for byte.
func (r response) withoutRequestID() string {
	m := map[string]any{}
	for k, v := range r.json {
		if k != "requestId" {
			m[k] = v
		}
	}
	out, _ := json.Marshal(m)
	return string(out)
}

func (b *bundle) do(t testing.TB, method, path, token string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(v)
	case []byte:
		rd = bytes.NewReader(v)
	default:
		raw, err := json.Marshal(v)
		require.NoError(t, err)
		rd = bytes.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1] // net/http ignores a Host header field
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := b.app.Test(req, -1)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	r := response{status: res.StatusCode, header: res.Header, text: string(raw)}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &r.json)
	}
	return r
}

// contractPlans are the plan limits of CONTRACT §2, except rps: tests
// fire requests far faster than a plan allows, and the rate limit has
// tests of its own.
func contractPlans() map[tenancy.Plan]tenancy.Limits {
	const fast = 1_000_000
	return map[tenancy.Plan]tenancy.Limits{
		tenancy.PlanFree:       {MaxAgents: 5, MaxAgentMinutes: 1000, RPS: fast, MaxSchedules: 5, MaxTokens: 1_000_000},
		tenancy.PlanStarter:    {MaxAgents: 20, MaxAgentMinutes: 5000, RPS: fast, MaxSchedules: 20, MaxTokens: 10_000_000},
		tenancy.PlanPro:        {MaxAgents: 100, MaxAgentMinutes: 25000, RPS: fast, MaxSchedules: 100, MaxTokens: 100_000_000},
		tenancy.PlanEnterprise: {MaxAgents: 1000, MaxAgentMinutes: 250000, RPS: fast, MaxSchedules: 1000},
	}
}
