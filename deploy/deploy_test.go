// Package deploy holds the deployment files (Dockerfile, compose.yaml,
// Kubernetes manifests); its test keeps them in step with the code.
package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/tenantgate/tenantgate/config"
)

// TestManifestsParseAndNameRealKeys: every YAML document here parses, and
// every TENANTGATE_* variable they set is a configuration key.
func TestManifestsParseAndNameRealKeys(t *testing.T) {
	known := map[string]bool{}
	for _, k := range config.New().AllKeys() {
		known["TENANTGATE_"+strings.ToUpper(strings.ReplaceAll(k, ".", "_"))] = true
	}
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	more, err := filepath.Glob("kubernetes/*.yaml")
	require.NoError(t, err)
	files = append(files, more...)
	require.NotEmpty(t, files)
	envName := regexp.MustCompile(`TENANTGATE_[A-Z0-9_]+`)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var doc any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, "%s does not parse", f)
		}
		for _, name := range envName.FindAllString(string(raw), -1) {
			require.True(t, known[name], "%s sets %s, which is not a configuration key", f, name)
		}
	}
}
