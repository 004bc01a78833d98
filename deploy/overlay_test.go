package deploy

import (
	"maps"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/config"
)

// overlayLiterals reads the configMapGenerator literals of the
// kustomization in dir: the settings it merges over base/config.env.
func overlayLiterals(t *testing.T, dir string) map[string]string {
	t.Helper()
	docs := yamlDocs(t, filepath.Join(dir, "kustomization.yaml"))
	require.Len(t, docs, 1)
	var k struct {
		ConfigMapGenerator []struct {
			Name     string   `yaml:"name"`
			Behavior string   `yaml:"behavior"`
			Literals []string `yaml:"literals"`
		} `yaml:"configMapGenerator"`
	}
	require.NoError(t, docs[0].Decode(&k))
	out := map[string]string{}
	for _, g := range k.ConfigMapGenerator {
		if g.Name != "tenantgate-config" {
			continue
		}
		require.Equal(t, "merge", g.Behavior, "%s: the overlay's tenantgate-config must merge into base's", dir)
		for _, l := range g.Literals {
			key, value, ok := strings.Cut(l, "=")
			require.True(t, ok, "%s: literal %q is not KEY=VALUE", dir, l)
			out[key] = value
		}
	}
	return out
}

// TestProductionOverlayConfigValidates: the production overlay runs behind
// an ingress, so it names the header the ingress sets and the proxies
// trusted to set it; and the ConfigMap it produces (base/config.env with
// the overlay's literals) passes config's own Validate, as the pods will
// check it when they start.
func TestProductionOverlayConfigValidates(t *testing.T) {
	const dir = "kubernetes/overlays/production"
	literals := overlayLiterals(t, dir)
	require.Equal(t, "X-Forwarded-For", literals["TENANTGATE_PROXY_HEADER"], "%s: the ingress sets X-Forwarded-For", dir)
	require.NotEmpty(t, literals["TENANTGATE_TRUSTED_PROXIES"], "%s: proxy_header needs trusted_proxies", dir)

	env := envFile(t, configEnv)
	maps.Copy(env, literals)
	for k, v := range env {
		t.Setenv(k, v)
	}
	c, err := config.Load(config.New(), "")
	require.NoError(t, err)
	require.NoError(t, c.Validate(), "the ConfigMap of %s", dir)
	require.Equal(t, "X-Forwarded-For", c.ProxyHeader)
	require.NotEmpty(t, c.TrustedProxies)
}
