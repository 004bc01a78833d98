// Package deploy holds the deployment files (Dockerfile, compose.yaml,
// Kubernetes manifests, Grafana dashboard) and deploy/README.md, the
// operations guide; its tests keep them in step with the code: every
// configuration key is wired, every variable named is a key, the manifests
// hang together and the dashboard asks only for metrics that exist.
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/tenantgate/tenantgate/config"
)

// secretKeys are the configuration keys whose values are secrets: DSNs
// carry passwords, the rest are passwords, tokens or signing keys. They go
// in the Secret, every other key in the ConfigMap.
var secretKeys = []string{
	"database_url", "shared_database_url", "dedicated.server_url", "redis_url",
	"jwt_secret", "jwt_previous_secrets", "admin_token", "app_role_password",
	"stripe.webhook_secret",
}

const (
	configEnv     = "kubernetes/base/config.env"
	secretExample = "kubernetes/overlays/production/secrets.env.example"
)

// envName is the environment variable of a configuration key.
func envName(key string) string {
	return "TENANTGATE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// knownEnv maps the environment variable of every configuration key to
// the key.
func knownEnv() map[string]string {
	known := map[string]string{}
	for _, k := range config.New().AllKeys() {
		known[envName(k)] = k
	}
	return known
}

// deployFiles lists the files of deploy/ that name configuration: YAML,
// env files (and their examples), the Dockerfile, JSON and Markdown.
func deployFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name := d.Name()
		switch {
		case strings.HasSuffix(name, ".yaml"), strings.HasSuffix(name, ".yml"), strings.HasSuffix(name, ".env"),
			strings.HasSuffix(name, ".env.example"), strings.HasSuffix(name, ".json"), strings.HasSuffix(name, ".md"),
			name == "Dockerfile":
			files = append(files, path)
		}
		return nil
	})
	require.NoError(t, err)
	return files
}

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []*yaml.Node
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		require.NoError(t, err, "%s does not parse", path)
		docs = append(docs, &doc)
	}
}

var envKey = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// envFile reads a KEY=VALUE file as kustomize's env generators do: blank
// lines and # comments skipped, the value is everything after the first =.
// It fails on a malformed line and on a key given twice.
func envFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok && envKey.MatchString(k), "%s:%d: not KEY=VALUE: %q", path, n, line)
		_, dup := out[k]
		require.False(t, dup, "%s:%d: %s is set twice", path, n, k)
		out[k] = v
	}
	require.NoError(t, sc.Err())
	return out
}

// TestManifestsParseAndNameRealKeys: every YAML document and env file in
// deploy/ parses, and every TENANTGATE_* name used anywhere in deploy/
// (manifests, env files, Dockerfile, dashboard, README) is the variable of
// a configuration key.
func TestManifestsParseAndNameRealKeys(t *testing.T) {
	t.Parallel()
	known := knownEnv()
	files := deployFiles(t)
	require.Contains(t, files, "compose.yaml")
	require.Contains(t, files, filepath.FromSlash(configEnv))
	require.Contains(t, files, "README.md")
	name := regexp.MustCompile(`TENANTGATE_[A-Z0-9_]+`)
	for _, f := range files {
		switch {
		case strings.HasSuffix(f, ".yaml"), strings.HasSuffix(f, ".yml"):
			require.NotEmpty(t, yamlDocs(t, f), "%s has no YAML document", f)
		case strings.HasSuffix(f, ".env"), strings.HasSuffix(f, ".env.example"):
			envFile(t, f)
		}
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, n := range name.FindAllString(string(raw), -1) {
			_, ok := known[n]
			require.True(t, ok, "%s names %s, which is not a configuration key", f, n)
		}
	}
}

// TestEveryKeyIsWired: each configuration key has its variable in the
// ConfigMap (base/config.env) or in the Secret (the production overlay's
// secrets.env, shown by secrets.env.example) — the secret ones in the
// Secret and only there — and the kustomizations really generate the two
// from those files.
func TestEveryKeyIsWired(t *testing.T) {
	t.Parallel()
	cm := envFile(t, configEnv)
	secret := envFile(t, secretExample)
	keys := config.New().AllKeys()
	for _, k := range secretKeys {
		require.Contains(t, keys, k, "secretKeys names %s, which is not a configuration key", k)
	}
	for _, k := range keys {
		env := envName(k)
		_, inCM := cm[env]
		_, inSecret := secret[env]
		if slices.Contains(secretKeys, k) {
			require.True(t, inSecret, "%s (%s) is a secret and missing from %s", k, env, secretExample)
			require.False(t, inCM, "%s (%s) is a secret: it must not be in the ConfigMap (%s)", k, env, configEnv)
		} else {
			require.True(t, inCM, "%s (%s) is not wired: add it to %s", k, env, configEnv)
			require.False(t, inSecret, "%s (%s) is not a secret: keep it in %s, not in the Secret", k, env, configEnv)
		}
	}
	require.Len(t, cm, len(keys)-len(secretKeys), "the ConfigMap has a variable that is no key")
	require.Len(t, secret, len(secretKeys), "the Secret has a variable that is no key")

	// The files are the generators' sources.
	base := readKustomization(t, "kubernetes/base")
	require.True(t, generates(base.ConfigMapGenerator, "tenantgate-config", "config.env"),
		"base/kustomization.yaml must generate ConfigMap tenantgate-config from config.env")
	prod := readKustomization(t, "kubernetes/overlays/production")
	require.True(t, generates(prod.SecretGenerator, "tenantgate-secrets", "secrets.env"),
		"overlays/production/kustomization.yaml must generate Secret tenantgate-secrets from secrets.env")
	require.Contains(t, prod.Resources, "../../base")

	// Containers must not override those keys one by one: a value given in
	// env: beats envFrom and would silently ignore the ConfigMap.
	for _, w := range baseWorkloads(t) {
		for _, c := range w.Spec.Template.Spec.Containers {
			for _, e := range c.Env {
				require.False(t, strings.HasPrefix(e.Name, "TENANTGATE_"),
					"%s/%s sets %s in env:, where it hides the ConfigMap and Secret", w.Metadata.Name, c.Name, e.Name)
			}
		}
	}
}

func generates(gens []generator, name, file string) bool {
	for _, g := range gens {
		if g.Name == name && (slices.Contains(g.Envs, file) || slices.Contains(g.Files, file)) {
			return true
		}
	}
	return false
}
