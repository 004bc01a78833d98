package router

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openAPIMethods are the operation keys of an OpenAPI path item.
var openAPIMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

func parseOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	require.NoError(t, json.Unmarshal(openAPIDocument, &doc), "openapi.json is not valid JSON")
	return doc
}

// documentedRoutes are the document's operations as "METHOD /path".
func documentedRoutes(t *testing.T, doc map[string]any) []string {
	t.Helper()
	paths, ok := doc["paths"].(map[string]any)
	require.True(t, ok, "paths must be an object")
	var out []string
	for path, item := range paths {
		ops, ok := item.(map[string]any)
		require.True(t, ok, "path item %s must be an object", path)
		for key := range ops {
			if slices.Contains(openAPIMethods, key) {
				out = append(out, strings.ToUpper(key)+" "+path)
			}
		}
	}
	slices.Sort(out)
	return out
}

// resolvePointer follows a local JSON pointer ("#/components/schemas/X").
func resolvePointer(doc any, ref string) (any, error) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, fmt.Errorf("not a local reference")
	}
	cur := doc
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%q is not inside an object", tok)
		}
		if cur, ok = obj[tok]; !ok {
			return nil, fmt.Errorf("no %q", tok)
		}
	}
	return cur, nil
}

// collectRefs returns every $ref in v with the JSON path where it appears.
func collectRefs(v any, at string, refs map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if s, ok := child.(string); ok && k == "$ref" {
				refs[at] = s
				continue
			}
			collectRefs(child, at+"/"+k, refs)
		}
	case []any:
		for i, child := range x {
			collectRefs(child, fmt.Sprintf("%s/%d", at, i), refs)
		}
	}
}

func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	doc := parseOpenAPI(t)
	version, _ := doc["openapi"].(string)
	require.Regexp(t, `^3\.0\.\d+$`, version)

	refs := map[string]string{}
	collectRefs(doc, "", refs)
	require.NotEmpty(t, refs)
	for at, ref := range refs {
		target, err := resolvePointer(doc, ref)
		require.NoError(t, err, "$ref %q at %s does not resolve", ref, at)
		require.NotNil(t, target, "$ref %q at %s", ref, at)
	}

	// Every templated path segment is declared, and every POST takes an
	// Idempotency-Key (CONTRACT §3).
	template := regexp.MustCompile(`\{(\w+)\}`)
	for _, route := range documentedRoutes(t, doc) {
		method, path, _ := strings.Cut(route, " ")
		op := doc["paths"].(map[string]any)[path].(map[string]any)[strings.ToLower(method)].(map[string]any)
		require.NotEmpty(t, op["responses"], route)
		declared := map[string]bool{}
		for _, p := range asSlice(op["parameters"]) {
			if m, ok := p.(map[string]any); ok {
				if ref, ok := m["$ref"].(string); ok {
					resolved, err := resolvePointer(doc, ref)
					require.NoError(t, err)
					m = resolved.(map[string]any)
				}
				declared[fmt.Sprint(m["in"], ":", m["name"])] = true
			}
		}
		for _, m := range template.FindAllStringSubmatch(path, -1) {
			require.True(t, declared["path:"+m[1]], "%s does not declare path parameter %s", route, m[1])
		}
		if method == http.MethodPost {
			require.True(t, declared["header:Idempotency-Key"], "%s does not declare Idempotency-Key", route)
		}
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// fiberParam is a Fiber path parameter (":id"), OpenAPI's "{id}".
var fiberParam = regexp.MustCompile(`:(\w+)`)

// TestOpenAPIMatchesRoutes fails when a route of the real app is missing
// from the document, or the document names one the app does not have.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	seen := map[string]bool{}
	var served []string
	// GetRoutes(true) leaves out middleware registered with Use or Group.
	for _, r := range b.app.GetRoutes(true) {
		if r.Method == http.MethodHead || r.Method == "USE" {
			continue // Fiber adds HEAD to every GET
		}
		if !strings.HasPrefix(r.Path, "/api/") && r.Path != "/openapi.json" {
			continue
		}
		route := r.Method + " " + fiberParam.ReplaceAllString(r.Path, "{$1}")
		if !seen[route] {
			seen[route] = true
			served = append(served, route)
		}
	}
	slices.Sort(served)
	require.NotEmpty(t, served)
	documented := documentedRoutes(t, parseOpenAPI(t))

	var missing, extra []string
	for _, r := range served {
		if !slices.Contains(documented, r) {
			missing = append(missing, r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			extra = append(extra, r)
		}
	}
	assert.Empty(t, missing, "routes the app serves but openapi.json does not describe")
	require.Empty(t, extra, "operations openapi.json describes but the app does not serve")
}

func TestOpenAPIServed(t *testing.T) {
	t.Parallel()
	b := setup(t)
	res := b.do(t, "GET", "/openapi.json", "", nil)
	require.Equal(t, 200, res.status, res.text)
	require.True(t, strings.HasPrefix(res.header.Get("Content-Type"), "application/json"), res.header.Get("Content-Type"))
	require.NotEmpty(t, res.header.Get("X-Request-Id"))
	require.Equal(t, string(openAPIDocument), res.text)
	require.Equal(t, "3.0.3", res.json["openapi"])
}
