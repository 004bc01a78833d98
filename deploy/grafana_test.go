package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const dashboardFile = "grafana/tenantgate-dashboard.json"

type metricKind int

const (
	counter metricKind = iota
	gauge
	histogram
)

type metricInfo struct {
	kind   metricKind
	labels []string
}

// knownMetrics are the series tenantgate exports, with their kinds and
// labels. TestKnownMetricsAreTheCodes checks the tenantgate_ ones against
// the collectors the code registers, so a renamed metric or label fails.
var knownMetrics = map[string]metricInfo{
	// gateway
	"tenantgate_http_requests_total":           {counter, []string{"route", "method", "status", "plan"}},
	"tenantgate_http_request_duration_seconds": {histogram, []string{"route", "method"}},
	"tenantgate_rate_limited_total":            {counter, []string{"plan"}},
	"tenantgate_tenant_requests_total":         {counter, []string{"organization"}},
	"tenantgate_tenant_db_seconds_total":       {counter, []string{"organization"}},
	"tenantgate_pools_open":                    {gauge, nil},
	"tenantgate_pool_cache_total":              {counter, []string{"event"}},
	"tenantgate_pool_connections":              {gauge, []string{"state"}},
	"tenantgate_pool_waits_total":              {counter, nil},
	"tenantgate_pool_server_connections":       {gauge, []string{"server"}},
	"tenantgate_pool_breakers_open":            {gauge, nil},
	"tenantgate_placement_cache_total":         {counter, []string{"result"}},
	"tenantgate_placement_cache_entries":       {gauge, nil},
	// provisioner
	"tenantgate_provisioner_jobs_total":           {counter, []string{"kind", "result"}},
	"tenantgate_provisioner_jobs":                 {gauge, []string{"kind", "state"}},
	"tenantgate_provisioner_job_duration_seconds": {histogram, []string{"kind"}},
	"tenantgate_fanout_databases":                 {gauge, []string{"state"}},
	"tenantgate_database_posture":                 {gauge, []string{"state"}},
	"tenantgate_audit_last_timestamp_seconds":     {gauge, nil},
	"tenantgate_move_duration_seconds":            {histogram, []string{"direction", "result"}},
	"tenantgate_move_freeze_seconds":              {histogram, []string{"direction"}},
	"tenantgate_schedules_fired_total":            {counter, nil},
	// Go and process collectors (client_golang)
	"go_goroutines":                 {gauge, nil},
	"process_cpu_seconds_total":     {counter, nil},
	"process_resident_memory_bytes": {gauge, nil},
}

// targetLabels are added by Prometheus (or its Kubernetes discovery) to
// every series; "__name__" is how a selector names no metric in particular.
var targetLabels = []string{"instance", "job", "namespace", "pod", "__name__"}

// promFunctions are the PromQL functions, aggregations and keywords the
// dashboard may use; a misspelt one fails the test.
var promFunctions = []string{
	"sum", "max", "min", "avg", "count", "topk", "bottomk", "rate", "irate", "increase", "histogram_quantile",
	"clamp_min", "clamp_max", "abs", "label_replace", "time", "vector", "and", "or", "unless", "bool", "offset",
}

var (
	promString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promSelector = regexp.MustCompile(`([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^{}]*)\}`)
	promMatcher  = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)`)
	promGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)`)
	promRange    = regexp.MustCompile(`\[[^\]]*\]`)
	promNumber   = regexp.MustCompile(`(?:^|[^A-Za-z0-9_:])(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	legendLabel  = regexp.MustCompile(`\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}`)
)

// promQuery is what the test reads from one expression: the metrics it
// selects, the labels it matches on (with the metric each belongs to, ""
// for none) and the labels it groups by.
type promQuery struct {
	metrics  []string
	matchers [][2]string // metric, label
	grouping []string
	calls    []string
}

// parsePromQL picks an expression apart well enough for the checks below:
// label matchers and grouping clauses are read, then strings, matchers,
// ranges, grouping clauses and numbers are cut out; what is left are
// function names (followed by "(") and metric names.
func parsePromQL(expr string) promQuery {
	var q promQuery
	noStrings := promString.ReplaceAllString(expr, `""`)
	for _, m := range promSelector.FindAllStringSubmatch(noStrings, -1) {
		for _, lm := range promMatcher.FindAllStringSubmatch(m[2], -1) {
			q.matchers = append(q.matchers, [2]string{m[1], lm[1]})
		}
	}
	for _, g := range promGrouping.FindAllStringSubmatch(noStrings, -1) {
		for _, l := range strings.Split(g[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				q.grouping = append(q.grouping, l)
			}
		}
	}
	rest := promSelector.ReplaceAllString(noStrings, "$1 ")
	rest = promGrouping.ReplaceAllString(rest, " ")
	rest = promRange.ReplaceAllString(rest, " ")
	rest = strings.ReplaceAll(rest, `""`, " ")
	rest = promNumber.ReplaceAllString(rest, " ")
	for _, loc := range promIdent.FindAllStringIndex(rest, -1) {
		word := rest[loc[0]:loc[1]]
		after := strings.TrimLeft(rest[loc[1]:], " \t\n")
		if strings.HasPrefix(after, "(") || slices.Contains(promFunctions, word) {
			q.calls = append(q.calls, word)
		} else {
			q.metrics = append(q.metrics, word)
		}
	}
	return q
}

// baseMetric maps a histogram's _bucket, _sum and _count series to the
// histogram.
func baseMetric(name string) (string, bool) {
	if m, ok := knownMetrics[name]; ok {
		return name, m.kind != histogram
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if m, ok := knownMetrics[base]; ok && m.kind == histogram {
				return base, true
			}
		}
	}
	return name, false
}

func TestParsePromQL(t *testing.T) {
	t.Parallel()
	q := parsePromQL(`histogram_quantile(0.95, sum by (le, route) (rate(x_bucket{status=~"5..", plan!="a{b}"}[$__rate_interval]))) / on (instance) count by (instance) ({__name__=~"y_.+"}) > 1e-3`)
	require.Equal(t, []string{"x_bucket"}, q.metrics)
	require.Equal(t, [][2]string{{"x_bucket", "status"}, {"x_bucket", "plan"}, {"", "__name__"}}, q.matchers)
	require.Equal(t, []string{"le", "route", "instance", "instance"}, q.grouping)
	require.Equal(t, []string{"histogram_quantile", "sum", "rate", "count"}, q.calls)
}

// TestGrafanaDashboard: the dashboard is a Grafana dashboard JSON model
// whose panels all query the ${datasource} variable; its expressions name
// only metrics tenantgate exports (tenantgate_*, or go_/process_ ones) with
// labels those metrics have, and every tenantgate metric has a panel.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var dash struct {
		UID        string `json:"uid"`
		Title      string `json:"title"`
		Templating struct {
			List []variable `json:"list"`
		} `json:"templating"`
		Panels []panel `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash), "%s is not JSON", dashboardFile)
	require.NotEmpty(t, dash.UID)
	require.NotEmpty(t, dash.Title)
	require.True(t, slices.ContainsFunc(dash.Templating.List, func(v variable) bool {
		return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	}), "the dashboard needs a Prometheus datasource variable named datasource")

	var panels []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			panels = append(panels, p)
			walk(p.Panels)
		}
	}
	walk(dash.Panels)

	ids := map[int]bool{}
	used := map[string]bool{}
	for _, p := range panels {
		require.False(t, ids[p.ID], "panel id %d twice", p.ID)
		ids[p.ID] = true
		require.NotNil(t, p.GridPos, "panel %q has no gridPos", p.Title)
		if p.Type == "row" {
			continue
		}
		require.NotEmpty(t, p.Title, "panel %d has no title", p.ID)
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		require.Equal(t, "${datasource}", p.Datasource.UID, "panel %q must query the ${datasource} variable", p.Title)
		for _, tg := range p.Targets {
			what := "panel " + `"` + p.Title + `" query ` + tg.RefID
			require.Equal(t, "${datasource}", tg.Datasource.UID, "%s must query the ${datasource} variable", what)
			q := parsePromQL(tg.Expr)
			require.NotEmpty(t, q.metrics, "%s names no metric: %s", what, tg.Expr)
			for _, c := range q.calls {
				require.Contains(t, promFunctions, c, "%s calls %s, not a PromQL function this dashboard expects", what, c)
			}
			allowed := slices.Clone(targetLabels)
			for _, name := range q.metrics {
				require.True(t, strings.HasPrefix(name, "tenantgate_") || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_"),
					"%s: %s is not a tenantgate, go or process metric", what, name)
				base, ok := baseMetric(name)
				require.True(t, ok, "%s: %s is not a metric tenantgate exports (a histogram needs _bucket, _sum or _count)", what, name)
				used[base] = true
				allowed = append(allowed, knownMetrics[base].labels...)
				if knownMetrics[base].kind == histogram {
					allowed = append(allowed, "le")
				}
			}
			for _, m := range q.matchers {
				labels := allowed
				if m[0] != "" {
					base, _ := baseMetric(m[0])
					labels = append(slices.Clone(targetLabels), knownMetrics[base].labels...)
				}
				require.Contains(t, labels, m[1], "%s matches on label %s, which %s does not have", what, m[1], m[0])
			}
			for _, l := range q.grouping {
				require.Contains(t, allowed, l, "%s groups by %s, which its metrics do not have", what, l)
			}
			for _, m := range legendLabel.FindAllStringSubmatch(tg.LegendFormat, -1) {
				require.Contains(t, allowed, m[1], "%s: the legend shows label %s, which its metrics do not have", what, m[1])
			}
		}
	}
	for name := range knownMetrics {
		if strings.HasPrefix(name, "tenantgate_") {
			require.True(t, used[name], "no panel shows %s", name)
		}
	}
}

type variable struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Query string `json:"query"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	GridPos    *map[string]int `json:"gridPos"`
	Datasource struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID        string `json:"refId"`
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		Datasource   struct {
			UID string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}
