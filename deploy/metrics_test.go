package deploy

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/provisioner"
	"github.com/tenantgate/tenantgate/router"
	"github.com/tenantgate/tenantgate/tenancy/placement"
	"github.com/tenantgate/tenantgate/tenancy/poolcache"
)

// TestKnownMetricsAreTheCodes: the dashboard's list of tenantgate_ series
// is exactly what the gateway and the provisioner register, with the same
// labels.
func TestKnownMetricsAreTheCodes(t *testing.T) {
	t.Parallel()
	pools := poolcache.New(poolcache.Config{}, nil, nil)
	defer pools.Close()
	reg := prometheus.NewRegistry()
	router.NewMetrics(reg, 1)
	provisioner.NewMetrics(reg)
	// Describing reads no data: collectors over nothing will do.
	reg.MustRegister(router.PoolCollector{Pools: pools},
		router.PlacementCollector{Placements: placement.New(1, time.Second, nil)}, provisioner.CatalogCollector{})

	descs := make(chan *prometheus.Desc)
	go func() {
		reg.Describe(descs)
		close(descs)
	}()
	descRE := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	code := map[string][]string{}
	for d := range descs {
		m := descRE.FindStringSubmatch(d.String())
		require.NotNil(t, m, d.String())
		code[m[1]] = nil
		if m[2] != "" {
			code[m[1]] = strings.Split(m[2], ",")
		}
	}

	for name, info := range knownMetrics {
		if !strings.HasPrefix(name, "tenantgate_") {
			continue
		}
		labels, ok := code[name]
		require.True(t, ok, "the dashboard's list names %s, which the code does not export", name)
		require.ElementsMatch(t, info.labels, labels, "labels of %s", name)
	}
	for name := range code {
		_, ok := knownMetrics[name]
		require.True(t, ok, "the code exports %s, missing from the dashboard's list", name)
	}
}
