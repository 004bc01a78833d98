package main

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
)

// `cd bin && ./tenantgate tenants list` works: the binary beside the config
// (an extensionless ./tenantgate) is not read as a config file, and
// ./tenantgate.yaml still is.
func TestCLIConfigOnlyTenantgateYAML(t *testing.T) {
	e := env(t)
	mustTG(t, "init")
	mustTG(t, "tenants", "create", "--slug", "cfgcheck", "--name", "Config check", "--plan", "free")

	t.Chdir(t.TempDir())
	// What a binary looks like to a YAML parser: bytes it refuses.
	require.NoError(t, os.WriteFile("tenantgate", []byte("\x7fELF\x02\x01\x01\x00\x00: [\x01\x02\n\t-"), 0o755))
	out, errOut, err := tg(t, "tenants", "list")
	require.NoError(t, err, "the binary itself was read as configuration: %s", errOut)
	require.Contains(t, out, "cfgcheck")

	// tenantgate.yaml is read: a bad value in it is refused…
	require.NoError(t, os.WriteFile("tenantgate.yaml", []byte("signup:\n  mode: sometimes\n"), 0o600))
	_, _, err = tg(t, "tenants", "list")
	require.ErrorContains(t, err, "TENANTGATE_SIGNUP_MODE")
	require.ErrorContains(t, err, "sometimes")

	// …and a good one is used: the catalog from the file alone.
	t.Setenv("TENANTGATE_DATABASE_URL", "") // empty counts as not set
	require.NoError(t, os.WriteFile("tenantgate.yaml", []byte("database_url: "+e.CatalogURL+"\n"), 0o600))
	require.Contains(t, mustTG(t, "tenants", "list"), "cfgcheck")
}
