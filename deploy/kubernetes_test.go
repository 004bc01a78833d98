package deploy

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The parts of the Kubernetes objects the tests look at. yaml.v3 matches
// keys to lowercased field names, hence a tag on every camelCase field.

type kustomization struct {
	Kind               string      `yaml:"kind"`
	Resources          []string    `yaml:"resources"`
	Components         []string    `yaml:"components"`
	ConfigMapGenerator []generator `yaml:"configMapGenerator"`
	SecretGenerator    []generator `yaml:"secretGenerator"`
	Patches            []struct {
		Path string `yaml:"path"`
	} `yaml:"patches"`
}

type generator struct {
	Name  string   `yaml:"name"`
	Envs  []string `yaml:"envs"`
	Files []string `yaml:"files"`
}

type meta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   meta   `yaml:"metadata"`
}

// workload is a Deployment or a Job.
type workload struct {
	Kind     string `yaml:"kind"`
	Metadata meta   `yaml:"metadata"`
	Spec     struct {
		Replicas *int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Template struct {
			Metadata meta    `yaml:"metadata"`
			Spec     podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName            string `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool  `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int   `yaml:"terminationGracePeriodSeconds"`
	RestartPolicy                 string `yaml:"restartPolicy"`
	SecurityContext               *struct {
		RunAsNonRoot *bool  `yaml:"runAsNonRoot"`
		RunAsUser    *int64 `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers     []container `yaml:"containers"`
	InitContainers []container `yaml:"initContainers"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name string `yaml:"name"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	StartupProbe   *probe `yaml:"startupProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	Lifecycle      *struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
	SecurityContext *struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		Privileged               *bool `yaml:"privileged"`
		Capabilities             struct {
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type service struct {
	Metadata meta `yaml:"metadata"`
	Spec     struct {
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			TargetPort any    `yaml:"targetPort"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type selectorObject struct {
	Kind     string `yaml:"kind"`
	Metadata meta   `yaml:"metadata"`
	Spec     struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
		MinReplicas *int `yaml:"minReplicas"`
		MaxReplicas int  `yaml:"maxReplicas"`
	} `yaml:"spec"`
}

func readKustomization(t *testing.T, dir string) kustomization {
	t.Helper()
	docs := yamlDocs(t, filepath.Join(dir, "kustomization.yaml"))
	require.Len(t, docs, 1, "%s/kustomization.yaml", dir)
	var k kustomization
	require.NoError(t, docs[0].Decode(&k))
	return k
}

// kustomizationDirs are the directories under kubernetes/ with a
// kustomization.yaml.
func kustomizationDirs(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir("kubernetes", func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "kustomization.yaml" {
			dirs = append(dirs, filepath.Dir(path))
		}
		return err
	})
	require.NoError(t, err)
	return dirs
}

// objects decodes every object of the resource files listed by the
// kustomization in dir (not following other directories).
func objects[T any](t *testing.T, dir string, kinds ...string) []T {
	t.Helper()
	var out []T
	for _, r := range readKustomization(t, dir).Resources {
		path := filepath.Join(dir, r)
		if st, err := os.Stat(path); err != nil || st.IsDir() {
			continue
		}
		for _, doc := range yamlDocs(t, path) {
			var o object
			require.NoError(t, doc.Decode(&o), path)
			if slices.Contains(kinds, o.Kind) {
				var v T
				require.NoError(t, doc.Decode(&v), path)
				out = append(out, v)
			}
		}
	}
	return out
}

func baseWorkloads(t *testing.T) []workload {
	return objects[workload](t, "kubernetes/base", "Deployment", "Job")
}

func findWorkload(t *testing.T, ws []workload, kind, name string) workload {
	t.Helper()
	for _, w := range ws {
		if w.Kind == kind && w.Metadata.Name == name {
			return w
		}
	}
	require.FailNow(t, "missing", "base has no %s %s", kind, name)
	return workload{}
}

// TestKustomizationsListExistingFiles: every path a kustomization names
// exists (secrets.env, which is not committed, through its .example), and
// every YAML file beside a kustomization.yaml is one of its resources, so
// no manifest is silently left out of the build.
func TestKustomizationsListExistingFiles(t *testing.T) {
	t.Parallel()
	dirs := kustomizationDirs(t)
	for _, want := range []string{"kubernetes/base", "kubernetes/overlays/production"} {
		require.Contains(t, dirs, filepath.FromSlash(want))
	}
	for _, dir := range dirs {
		k := readKustomization(t, dir)
		var named []string
		named = append(named, k.Resources...)
		named = append(named, k.Components...)
		for _, g := range append(slices.Clone(k.ConfigMapGenerator), k.SecretGenerator...) {
			named = append(named, g.Envs...)
			for _, f := range g.Files {
				_, src, found := strings.Cut(f, "=") // key=path form
				if !found {
					src = f
				}
				named = append(named, src)
			}
		}
		for _, p := range k.Patches {
			if p.Path != "" {
				named = append(named, p.Path)
			}
		}
		for _, n := range named {
			path := filepath.Join(dir, n)
			if filepath.Base(n) == "secrets.env" {
				path += ".example"
			}
			_, err := os.Stat(path)
			require.NoError(t, err, "%s/kustomization.yaml names %s, which does not exist", dir, n)
			if st, _ := os.Stat(path); st.IsDir() {
				_, err := os.Stat(filepath.Join(path, "kustomization.yaml"))
				require.NoError(t, err, "%s/kustomization.yaml names directory %s, which has no kustomization.yaml", dir, n)
			}
		}
		entries, err := os.ReadDir(dir)
		require.NoError(t, err)
		for _, e := range entries {
			if e.IsDir() || e.Name() == "kustomization.yaml" || !strings.HasSuffix(e.Name(), ".yaml") {
				continue
			}
			require.Contains(t, k.Resources, e.Name(), "%s/%s is not listed in %s/kustomization.yaml", dir, e.Name(), dir)
		}
	}
}

// TestWorkloadsRunHardened: every Deployment and Job runs tenantgate as a
// non-root user with a read-only root filesystem, no privilege escalation,
// no capabilities and no Kubernetes API token, and takes its configuration
// from the ConfigMap and the Secret.
func TestWorkloadsRunHardened(t *testing.T) {
	t.Parallel()
	ws := baseWorkloads(t)
	require.Len(t, ws, 4, "base should have the gateway and provisioner Deployments and the init and migrate Jobs")
	for _, w := range ws {
		name := w.Kind + " " + w.Metadata.Name
		pod := w.Spec.Template.Spec
		require.NotNil(t, pod.AutomountServiceAccountToken, "%s: automountServiceAccountToken", name)
		require.False(t, *pod.AutomountServiceAccountToken, "%s mounts a Kubernetes API token it never uses", name)
		podNonRoot := pod.SecurityContext != nil && pod.SecurityContext.RunAsNonRoot != nil && *pod.SecurityContext.RunAsNonRoot
		if pod.SecurityContext != nil && pod.SecurityContext.RunAsUser != nil {
			require.NotZero(t, *pod.SecurityContext.RunAsUser, "%s runs as uid 0", name)
		}
		if w.Kind == "Job" {
			require.Contains(t, []string{"Never", "OnFailure"}, pod.RestartPolicy, "%s: a Job's restartPolicy", name)
		}
		require.NotEmpty(t, pod.Containers, name)
		for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
			cname := name + " container " + c.Name
			require.Equal(t, "tenantgate", c.Image, "%s: image must be \"tenantgate\", which the overlays' images: replace", cname)
			sc := c.SecurityContext
			require.NotNil(t, sc, "%s has no securityContext", cname)
			require.True(t, podNonRoot || sc.RunAsNonRoot != nil && *sc.RunAsNonRoot, "%s: runAsNonRoot", cname)
			require.True(t, sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem, "%s: readOnlyRootFilesystem", cname)
			require.True(t, sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation, "%s: allowPrivilegeEscalation: false", cname)
			require.False(t, sc.Privileged != nil && *sc.Privileged, "%s is privileged", cname)
			require.Contains(t, sc.Capabilities.Drop, "ALL", "%s: capabilities must drop ALL", cname)

			var cm, secret bool
			for _, ef := range c.EnvFrom {
				cm = cm || ef.ConfigMapRef != nil && ef.ConfigMapRef.Name == "tenantgate-config"
				secret = secret || ef.SecretRef != nil && ef.SecretRef.Name == "tenantgate-secrets"
			}
			require.True(t, cm && secret, "%s: envFrom must name ConfigMap tenantgate-config and Secret tenantgate-secrets", cname)
		}
	}
}

// portOf is the port of a listen address such as :8080 or 0.0.0.0:9090.
func portOf(t *testing.T, addr string) (host string, port int) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	require.NoError(t, err, addr)
	port, err = strconv.Atoi(p)
	require.NoError(t, err, addr)
	return host, port
}

// containerPort finds a named port.
func containerPort(c container, name string) int {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// checkProbe: the probe is an HTTP GET of path on the ops port.
func checkProbe(t *testing.T, what string, p *probe, path string, c container, opsPort int) {
	t.Helper()
	require.NotNil(t, p, "%s is missing", what)
	require.NotNil(t, p.HTTPGet, "%s must be an httpGet", what)
	require.Equal(t, path, p.HTTPGet.Path, what)
	switch port := p.HTTPGet.Port.(type) {
	case string:
		require.Equal(t, opsPort, containerPort(c, port), "%s: port %q is not the ops port %d", what, port, opsPort)
	case int:
		require.Equal(t, opsPort, port, "%s: not the ops port", what)
	default:
		require.Fail(t, "bad port", "%s: port %v", what, port)
	}
}

// TestRolesProbesAndShutdown: the Deployments and Jobs run the right
// commands; the gateway listens where the ConfigMap says, is probed on its
// ops listener (/readyz for startup, /readyz?catalog=optional for
// readiness, /healthz for liveness),
// and is given time to drain on SIGTERM; the provisioner is probed the same
// way on its own ops listener; the gateway count belongs to the HPA.
func TestRolesProbesAndShutdown(t *testing.T) {
	t.Parallel()
	cm := envFile(t, configEnv)
	adminHost, opsPort := portOf(t, cm["TENANTGATE_ADMIN_ADDR"])
	require.NotContains(t, []string{"127.0.0.1", "localhost", "::1"}, adminHost,
		"TENANTGATE_ADMIN_ADDR must not be loopback in a container: probes and Prometheus come from outside")
	_, httpPort := portOf(t, cm["TENANTGATE_HTTP_ADDR"])
	provHost, provOpsPort := portOf(t, cm["TENANTGATE_PROVISIONER_ADMIN_ADDR"])
	require.NotContains(t, []string{"127.0.0.1", "localhost", "::1"}, provHost,
		"TENANTGATE_PROVISIONER_ADMIN_ADDR must not be loopback in a container")

	ws := baseWorkloads(t)
	gw := findWorkload(t, ws, "Deployment", "tenantgate-gateway")
	require.Nil(t, gw.Spec.Replicas, "the gateway Deployment must not set replicas: the HPA owns the count")
	require.Len(t, gw.Spec.Template.Spec.Containers, 1)
	c := gw.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"serve"}, c.Args)
	require.Equal(t, httpPort, containerPort(c, "http"), "container port http must be TENANTGATE_HTTP_ADDR's")
	require.Equal(t, opsPort, containerPort(c, "ops"), "container port ops must be TENANTGATE_ADMIN_ADDR's")
	// A catalog outage must not take every gateway out of rotation.
	checkProbe(t, "gateway readinessProbe", c.ReadinessProbe, "/readyz?catalog=optional", c, opsPort)
	checkProbe(t, "gateway livenessProbe", c.LivenessProbe, "/healthz", c, opsPort)
	if c.StartupProbe != nil {
		checkProbe(t, "gateway startupProbe", c.StartupProbe, "/readyz", c, opsPort)
	}
	// serve drains requests for up to 20 s, then the ops listener for 5 s
	// (cmd/tenantgate/system.go), after the preStop pause.
	preStop := 0
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
		preStop = c.Lifecycle.PreStop.Sleep.Seconds
	}
	grace := gw.Spec.Template.Spec.TerminationGracePeriodSeconds
	require.NotNil(t, grace, "gateway: terminationGracePeriodSeconds")
	require.GreaterOrEqual(t, *grace, preStop+20+5, "gateway: terminationGracePeriodSeconds must cover preStop + drain (20 s) + ops (5 s)")

	prov := findWorkload(t, ws, "Deployment", "tenantgate-provisioner")
	pc := prov.Spec.Template.Spec.Containers[0]
	require.Equal(t, []string{"provisioner"}, pc.Args)
	require.Equal(t, provOpsPort, containerPort(pc, "ops"), "provisioner: container port ops must be TENANTGATE_PROVISIONER_ADMIN_ADDR's")
	checkProbe(t, "provisioner readinessProbe", pc.ReadinessProbe, "/readyz", pc, provOpsPort)
	checkProbe(t, "provisioner livenessProbe", pc.LivenessProbe, "/healthz", pc, provOpsPort)
	require.NotNil(t, prov.Spec.Replicas)
	require.GreaterOrEqual(t, *prov.Spec.Replicas, 2, "two provisioners keep jobs moving while one is rescheduled")

	initJob := findWorkload(t, ws, "Job", "tenantgate-init")
	require.Equal(t, []string{"init"}, initJob.Spec.Template.Spec.Containers[0].Args)
	migrate := findWorkload(t, ws, "Job", "tenantgate-migrate-tenants")
	require.Equal(t, []string{"migrate", "tenants"}, migrate.Spec.Template.Spec.Containers[0].Args[:2])
	// Both Jobs, with what they read, can be applied before the rollout.
	for _, j := range []workload{initJob, migrate} {
		require.Equal(t, "true", j.Metadata.Labels["tenantgate.io/apply-first"], "Job %s: label tenantgate.io/apply-first", j.Metadata.Name)
	}
}

// matches reports whether labels has every pair of selector.
func matches(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestSelectorsMatch: Services, PodDisruptionBudgets and the HPA find the
// pods and Deployments they are for, Deployments' selectors match their
// own pods, and every Service target port is a port of the pods it selects.
func TestSelectorsMatch(t *testing.T) {
	t.Parallel()
	ws := baseWorkloads(t)
	pods := map[string]workload{}
	for _, w := range ws {
		if w.Kind == "Deployment" {
			require.True(t, matches(w.Spec.Selector.MatchLabels, w.Spec.Template.Metadata.Labels),
				"Deployment %s: selector does not match its pod labels", w.Metadata.Name)
			pods[w.Metadata.Name] = w
		}
	}
	svcs := objects[service](t, "kubernetes/base", "Service")
	require.Len(t, svcs, 2, "base should have the public Service and the ops Service")
	for _, s := range svcs {
		var selected []workload
		for _, w := range pods {
			if matches(s.Spec.Selector, w.Spec.Template.Metadata.Labels) {
				selected = append(selected, w)
			}
		}
		require.NotEmpty(t, selected, "Service %s selects no pods", s.Metadata.Name)
		for _, p := range s.Spec.Ports {
			for _, w := range selected {
				name, ok := p.TargetPort.(string)
				require.True(t, ok, "Service %s: name target ports, so a port change cannot leave them behind", s.Metadata.Name)
				require.NotZero(t, containerPort(w.Spec.Template.Spec.Containers[0], name),
					"Service %s: target port %s is not a port of %s", s.Metadata.Name, name, w.Metadata.Name)
			}
		}
	}
	found := map[string]bool{}
	for _, s := range svcs {
		found[s.Metadata.Name] = true
	}
	require.True(t, found["tenantgate"] && found["tenantgate-ops"], "Services tenantgate and tenantgate-ops")

	others := objects[selectorObject](t, "kubernetes/base", "PodDisruptionBudget", "HorizontalPodAutoscaler")
	var hpas int
	budgeted := map[string]string{} // Deployment → its PodDisruptionBudget
	for _, o := range others {
		switch o.Kind {
		case "PodDisruptionBudget":
			var selected []string
			for name, w := range pods {
				if matches(o.Spec.Selector.MatchLabels, w.Spec.Template.Metadata.Labels) {
					selected = append(selected, name)
				}
			}
			require.Len(t, selected, 1, "PodDisruptionBudget %s must select the pods of exactly one Deployment", o.Metadata.Name)
			require.NotContains(t, budgeted, selected[0], "PodDisruptionBudgets %s and %s select the same pods", o.Metadata.Name, budgeted[selected[0]])
			budgeted[selected[0]] = o.Metadata.Name
		case "HorizontalPodAutoscaler":
			hpas++
			require.Equal(t, "Deployment", o.Spec.ScaleTargetRef.Kind)
			require.Equal(t, "tenantgate-gateway", o.Spec.ScaleTargetRef.Name, "the HPA scales the gateway")
			require.NotNil(t, o.Spec.MinReplicas)
			require.GreaterOrEqual(t, *o.Spec.MinReplicas, 2, "one gateway is no high availability")
			require.GreaterOrEqual(t, o.Spec.MaxReplicas, *o.Spec.MinReplicas)
		}
	}
	require.Contains(t, budgeted, "tenantgate-gateway", "the gateway needs a PodDisruptionBudget")
	require.Contains(t, budgeted, "tenantgate-provisioner", "the provisioner needs a PodDisruptionBudget")
	require.Equal(t, 1, hpas, "one HorizontalPodAutoscaler")
}

// TestObjectsAreNamedOnce: no two objects of one kind share a name in a
// kustomization's own resources (kustomize would refuse the build).
func TestObjectsAreNamedOnce(t *testing.T) {
	t.Parallel()
	for _, dir := range kustomizationDirs(t) {
		seen := map[string]bool{}
		for _, o := range objects[object](t, dir, "Namespace", "ServiceAccount", "Deployment", "Job", "Service",
			"HorizontalPodAutoscaler", "PodDisruptionBudget", "PodMonitor") {
			id := fmt.Sprintf("%s/%s", o.Kind, o.Metadata.Name)
			require.False(t, seen[id], "%s: %s twice", dir, id)
			seen[id] = true
		}
	}
}
