package router

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy/catalog"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
)

// TestReadiness: /readyz is 503 while the catalog is unreachable, unless
// asked with ?catalog=optional (load balancers' readiness), which answers
// 200 naming the catalog as degraded; a failing Redis check is degraded,
// never unready.
func TestReadiness(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig("postgres://nobody@127.0.0.1:1/catalog?connect_timeout=1")
	require.NoError(t, err)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	defer pool.Close()
	pools := poolcache.New(poolcache.Config{}, nil, quiet)
	defer pools.Close()
	app := NewOps(OpsDeps{Catalog: catalog.New(pool), Pools: pools, Log: quiet,
		Degradable: map[string]func(context.Context) error{"redis": func(context.Context) error { return errors.New("down") }}})

	get := func(path string) (int, map[string]any) {
		res, err := app.Test(httptest.NewRequest("GET", path, nil), int((5 * time.Second).Milliseconds()))
		require.NoError(t, err)
		raw, _ := io.ReadAll(res.Body)
		var body map[string]any
		require.NoError(t, json.Unmarshal(raw, &body), string(raw))
		return res.StatusCode, body
	}
	status, body := get("/readyz")
	require.Equal(t, 503, status)
	require.Equal(t, []any{"catalog"}, body["failing"])
	require.Equal(t, []any{"redis"}, body["degraded"])

	status, body = get("/readyz?catalog=optional")
	require.Equal(t, 200, status)
	require.ElementsMatch(t, []any{"redis", "catalog"}, body["degraded"])

	status, _ = get("/healthz")
	require.Equal(t, 200, status)
}
