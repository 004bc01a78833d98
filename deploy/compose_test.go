package deploy

import (
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       map[string]any    `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	Profiles    []string          `yaml:"profiles"`
	ReadOnly    bool              `yaml:"read_only"`
	Healthcheck map[string]any    `yaml:"healthcheck"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
}

// interpolated is the value compose gives ${NAME:-default} when NAME is
// not set, and any other value as it is.
func interpolated(v string) string {
	if m := regexp.MustCompile(`^\$\{[A-Z0-9_]+:?-(.*)\}$`).FindStringSubmatch(v); m != nil {
		return m[1]
	}
	return v
}

// TestComposeRunsTheFleet: compose.yaml has the services the issue names —
// PostgreSQL and Redis with health checks, a one-shot init, two gateways
// and a provisioner that start only after init succeeded — and the
// tenantgate services are configured to be reachable and to start.
func TestComposeRunsTheFleet(t *testing.T) {
	t.Parallel()
	docs := yamlDocs(t, "compose.yaml")
	require.Len(t, docs, 1)
	var c composeFile
	require.NoError(t, docs[0].Decode(&c))

	for _, name := range []string{"postgres", "redis"} {
		s, ok := c.Services[name]
		require.True(t, ok, "compose.yaml has no %s service", name)
		require.NotEmpty(t, s.Healthcheck, "%s needs a healthcheck: the others wait for it", name)
	}
	roles := map[string]string{"init": "init", "gateway-1": "serve", "gateway-2": "serve", "provisioner": "provisioner"}
	hostPorts := map[string]string{}
	for name, cmd := range roles {
		s, ok := c.Services[name]
		require.True(t, ok, "compose.yaml has no %s service", name)
		require.Equal(t, []string{cmd}, s.Command, "%s runs `tenantgate %s`", name, cmd)
		require.Equal(t, "tenantgate:local", s.Image, "%s: every tenantgate service runs the image built from deploy/Dockerfile", name)
		require.Equal(t, "deploy/Dockerfile", s.Build["dockerfile"], name)
		require.True(t, s.ReadOnly, "%s: read_only, as in Kubernetes", name)
		require.Equal(t, "service_healthy", s.DependsOn["postgres"].Condition, "%s waits for a healthy PostgreSQL", name)

		env := s.Environment
		require.NotEmpty(t, env["TENANTGATE_DATABASE_URL"], name)
		require.NotEmpty(t, env["TENANTGATE_SHARED_DATABASE_URL"], name)
		require.NotEmpty(t, interpolated(env["TENANTGATE_APP_ROLE_PASSWORD"]), "%s: the app role logs in over the network", name)
		require.Contains(t, env["TENANTGATE_REDIS_URL"], "redis://redis:", "%s: replicas share Redis", name)
		if name == "init" {
			continue
		}
		require.Equal(t, "service_completed_successfully", s.DependsOn["init"].Condition, "%s starts after init succeeded", name)
		require.Equal(t, "service_healthy", s.DependsOn["redis"].Condition, "%s waits for a healthy Redis", name)
		opsAddr, opsPort := env["TENANTGATE_ADMIN_ADDR"], ":9090"
		if name == "provisioner" {
			opsAddr, opsPort = env["TENANTGATE_PROVISIONER_ADMIN_ADDR"], ":9091"
		}
		require.Equal(t, "0.0.0.0"+opsPort, opsAddr, "%s: the ops listener must listen beyond the container's loopback", name)
		require.True(t, slices.ContainsFunc(s.Ports, func(p string) bool { return strings.HasSuffix(p, opsPort) }),
			"%s: publish the ops listener (%s) for probes and metrics", name, opsPort)
		require.GreaterOrEqual(t, len(interpolated(env["TENANTGATE_JWT_SECRET"])), 32, "%s: serve refuses a JWT secret under 32 bytes", name)
		for _, p := range s.Ports {
			parts := strings.Split(p, ":")
			host := strings.Join(parts[:len(parts)-1], ":")
			require.NotContains(t, hostPorts, host, "%s and %s publish the same host port %s", name, hostPorts[host], host)
			hostPorts[host] = name
			if strings.HasSuffix(p, opsPort) {
				require.True(t, strings.HasPrefix(p, "127.0.0.1:"), "%s: publish the ops listener (/admin, /metrics) on the host's loopback only", name)
			}
		}
	}
	for _, gw := range []string{"gateway-1", "gateway-2"} {
		require.True(t, slices.ContainsFunc(c.Services[gw].Ports, func(p string) bool { return strings.HasSuffix(p, ":8080") }),
			"%s publishes the public API", gw)
	}
	for name, s := range c.Services {
		if _, role := roles[name]; !role && s.Image == "tenantgate:local" {
			require.NotEmpty(t, s.Profiles, "tenantgate service %s is not one of the fleet: give it a profile", name)
		}
	}
}

// dockerfile is the Dockerfile as instructions, continuation lines joined.
func dockerfile(t *testing.T) [][2]string {
	t.Helper()
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	var out [][2]string
	var cur strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		instr, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, [2]string{strings.ToUpper(instr), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

// TestDockerfileIsSmallAndNonRoot: base images are pinned by tag, the
// final stage is distroless and runs as a non-root user, the entrypoint is
// the binary, and the ports are the listeners'.
func TestDockerfileIsSmallAndNonRoot(t *testing.T) {
	t.Parallel()
	args := map[string]string{}
	var froms []string
	var final [][2]string // the instructions of the last stage
	for _, in := range dockerfile(t) {
		switch in[0] {
		case "ARG":
			if k, v, ok := strings.Cut(in[1], "="); ok {
				args[k] = v
			}
		case "FROM":
			image := strings.Fields(in[1])[0]
			for k, v := range args {
				image = strings.ReplaceAll(image, "${"+k+"}", v)
			}
			froms = append(froms, image)
			final = nil
		}
		final = append(final, in)
	}
	require.GreaterOrEqual(t, len(froms), 2, "a multi-stage build: the toolchain stays out of the image")
	for _, image := range froms {
		name, tag, ok := strings.Cut(strings.Split(image, "@")[0][strings.LastIndex(image, "/")+1:], ":")
		require.True(t, ok && tag != "" && tag != "latest", "FROM %s: pin the base image by tag (%s)", image, name)
	}
	require.True(t, strings.HasPrefix(froms[len(froms)-1], "gcr.io/distroless/static"), "the final stage is distroless static, not %s", froms[len(froms)-1])

	var user, entrypoint string
	var exposed []string
	for _, in := range final {
		switch in[0] {
		case "USER":
			user = in[1]
		case "ENTRYPOINT":
			entrypoint = in[1]
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in[1])...)
		}
	}
	require.NotEmpty(t, user, "the final stage must say USER explicitly")
	uid, _, _ := strings.Cut(user, ":")
	require.NotContains(t, []string{"root", "0"}, uid, "the image must not run as root")
	require.Equal(t, `["/usr/local/bin/tenantgate"]`, entrypoint)

	cm := envFile(t, configEnv)
	_, httpPort := portOf(t, cm["TENANTGATE_HTTP_ADDR"])
	_, opsPort := portOf(t, cm["TENANTGATE_ADMIN_ADDR"])
	_, provOpsPort := portOf(t, cm["TENANTGATE_PROVISIONER_ADMIN_ADDR"])
	require.ElementsMatch(t, []string{strconv.Itoa(httpPort), strconv.Itoa(opsPort), strconv.Itoa(provOpsPort)}, exposed,
		"EXPOSE the public port and the ops ports of serve and provisioner")

	ignore, err := os.ReadFile("Dockerfile.dockerignore")
	require.NoError(t, err, "the build context is the repository: keep .git and the rest out")
	require.Contains(t, strings.Fields(string(ignore)), ".git")
}
