package router

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

// world is one organization with one object of every kind.
type world struct {
	org
	ids map[string]string // resource (path segment) → an object's id
}

func (b *bundle) world(t *testing.T, slug string, plan tenancy.Plan) world {
	w := world{org: b.org(t, slug, plan), ids: map[string]string{}}
	agent := b.create(t, w.token, "/api/agents", map[string]string{"name": "agent-" + slug})
	w.ids["agents"] = agent["id"].(string)
	w.ids["tasks"] = b.create(t, w.token, "/api/tasks", map[string]any{"title": "task-" + slug, "agentId": w.ids["agents"]})["id"].(string)
	w.ids["messages"] = b.create(t, w.token, "/api/messages", map[string]any{"role": "user", "content": "msg-" + slug})["id"].(string)
	w.ids["sessions"] = b.create(t, w.token, "/api/sessions", map[string]any{"agentId": w.ids["agents"]})["id"].(string)
	w.ids["schedules"] = b.create(t, w.token, "/api/schedules", map[string]any{"agentId": w.ids["agents"], "cron": "@daily",
		"taskTemplate": map[string]string{"title": "t"}})["id"].(string)
	w.ids["api-keys"] = b.create(t, w.token, "/api/api-keys", map[string]string{"name": "key-" + slug})["id"].(string)
	w.ids["users"] = b.create(t, w.token, "/api/users", map[string]string{"email": "m@" + slug + ".test",
		"password": "member-password", "role": "member"})["id"].(string)
	return w
}

// validBody is a body each writing route accepts, so that only the id (or
// the reference) decides the answer.
var validBody = map[string]string{
	"POST /api/auth/signup":        `{"email":"new@x.test","password":"long-enough-pw","organizationName":"N"}`,
	"POST /api/auth/login":         `{"email":"nobody@x.test","password":"whatever-pw"}`,
	"POST /api/billing/webhook":    `{}`,
	"POST /api/auth/logout":        ``,
	"POST /api/agents":             `{"name":"n"}`,
	"PATCH /api/agents/:id":        `{"name":"renamed"}`,
	"POST /api/tasks":              `{"title":"t"}`,
	"PATCH /api/tasks/:id":         `{"title":"renamed"}`,
	"POST /api/tasks/:id/start":    ``,
	"POST /api/tasks/:id/complete": `{"status":"completed"}`,
	"POST /api/messages":           `{"role":"user","content":"c"}`,
	"POST /api/sessions":           `{"agentId":"%AGENT%"}`,
	"PATCH /api/sessions/:id":      `{"tokensUsed":1}`,
	"POST /api/schedules":          `{"agentId":"%AGENT%","cron":"@daily","taskTemplate":{"title":"t"}}`,
	"PATCH /api/schedules/:id":     `{"enabled":true}`,
	"POST /api/api-keys":           `{"name":"k"}`,
	"POST /api/users":              `{"email":"u%N%@x.test","password":"member-password","role":"member"}`,
	"PATCH /api/users/:id":         `{"role":"member"}`,
	"GET /api/agents/:id":          ``,
	"DELETE /api/agents/:id":       ``,
	"GET /api/tasks/:id":           ``,
	"DELETE /api/tasks/:id":        ``,
	"DELETE /api/schedules/:id":    ``,
	"DELETE /api/api-keys/:id":     ``,
	"DELETE /api/users/:id":        ``,
}

// references are create bodies that point at another object: a foreign
// reference must be a 404 exactly like a random one.
var references = map[string][]string{
	"POST /api/tasks":          {`{"title":"t","agentId":"%REF:agents%"}`},
	"POST /api/messages":       {`{"role":"user","content":"c","agentId":"%REF:agents%"}`, `{"role":"user","content":"c","taskId":"%REF:tasks%"}`},
	"POST /api/sessions":       {`{"agentId":"%REF:agents%"}`},
	"POST /api/schedules":      {`{"agentId":"%REF:agents%","cron":"@daily","taskTemplate":{"title":"t"}}`},
	"PATCH /api/tasks/:id":     {`{"agentId":"%REF:agents%"}`},
	"PATCH /api/schedules/:id": {`{"agentId":"%REF:agents%"}`},
}

func routeKey(method, path string) string { return method + " " + path }

// apiRoutes are the router's own routes under /api.
func apiRoutes(b *bundle) [][2]string {
	var out [][2]string
	for _, rt := range b.app.GetRoutes(true) {
		if strings.HasPrefix(rt.Path, "/api") && rt.Method != "HEAD" {
			out = append(out, [2]string{rt.Method, rt.Path})
		}
	}
	return out
}

// TestCrossTenantEveryRoute: for every route that takes an id, another
// tenant's id answers exactly like a random id (404), for shared and
// dedicated tenants both ways; lists never show another tenant's objects;
// references to another tenant's objects are 404 like random ones.
func TestCrossTenantEveryRoute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	shared := b.world(t, "xt-shared", tenancy.PlanPro)
	shared2 := b.world(t, "xt-shared-two", tenancy.PlanFree)
	dedicated := b.world(t, "xt-dedicated", tenancy.PlanEnterprise)
	n := 0
	for _, pair := range [][2]world{{shared, shared2}, {shared, dedicated}, {dedicated, shared}} {
		attacker, victim := pair[0], pair[1]
		for _, rt := range apiRoutes(b) {
			key := routeKey(rt[0], rt[1])
			if !strings.Contains(rt[1], ":id") {
				if rt[0] == "GET" {
					r := b.do(t, "GET", rt[1]+"?limit=200", attacker.token, nil)
					require.Less(t, r.status, 500, key)
					for res, id := range victim.ids {
						require.NotContains(t, r.text, id, "%s lists %s of another tenant", key, res)
					}
				}
				continue
			}
			body, ok := validBody[key]
			require.True(t, ok, "route %s has no entry in the cross-tenant matrix", key)
			resource := strings.Split(strings.TrimPrefix(rt[1], "/api/"), "/")[0]
			victimID, ok := victim.ids[resource]
			require.True(t, ok, "no %s object to attack for %s", resource, key)
			n++
			body = fill(body, attacker, victim, n)
			foreign := b.do(t, rt[0], strings.Replace(rt[1], ":id", victimID, 1), attacker.token, body)
			random := b.do(t, rt[0], strings.Replace(rt[1], ":id", uuid.NewString(), 1), attacker.token, body)
			require.Equal(t, 404, foreign.status, "%s with another tenant's id: %s", key, foreign.text)
			require.Equal(t, random.withoutRequestID(), foreign.withoutRequestID(), "%s: foreign and random ids look alike", key)
		}
		for key, bodies := range references {
			method, path, _ := strings.Cut(key, " ")
			path = strings.Replace(path, ":id", attacker.ids[strings.Split(strings.TrimPrefix(path, "/api/"), "/")[0]], 1)
			for _, body := range bodies {
				foreign := b.do(t, method, path, attacker.token, fill(body, attacker, victim, 0))
				random := b.do(t, method, path, attacker.token, strings.NewReplacer(
					victim.ids["agents"], uuid.NewString(), victim.ids["tasks"], uuid.NewString()).Replace(fill(body, attacker, victim, 0)))
				require.Equal(t, 404, foreign.status, "%s referencing another tenant's object: %s", key, foreign.text)
				require.Equal(t, random.withoutRequestID(), foreign.withoutRequestID(), key)
			}
		}
	}
	// The victims' objects are untouched.
	for _, w := range []world{shared, shared2, dedicated} {
		for _, res := range []string{"agents", "tasks"} {
			r := b.do(t, "GET", "/api/"+res+"/"+w.ids[res], w.token, nil)
			require.Equal(t, 200, r.status, "%s's %s survived", w.Slug, res)
			require.NotEqual(t, "renamed", r.json["name"])
			require.NotEqual(t, "renamed", r.json["title"])
		}
		require.Equal(t, 200, b.do(t, "GET", "/api/agents", "", nil, "Authorization", "Bearer "+w.token).status)
	}
}

func fill(body string, attacker, victim world, n int) string {
	return strings.NewReplacer("%AGENT%", attacker.ids["agents"], "%REF:agents%", victim.ids["agents"],
		"%REF:tasks%", victim.ids["tasks"], "%N%", fmt.Sprint(n)).Replace(body)
}

// TestBadInputEveryWritingRoute: malformed, unknown, forbidden, mistyped,
// NUL-laden and oversized input on every POST and PATCH is a 4xx in the
// contract's shape, never a 5xx.
func TestBadInputEveryWritingRoute(t *testing.T) {
	t.Parallel()
	b := setup(t)
	w := b.world(t, "badin", tenancy.PlanPro)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go b.app.Listener(ln)
	t.Cleanup(func() { _ = b.app.Shutdown() })

	bad := map[string]string{
		"malformed":      `{"name":`,
		"array":          `["x"]`,
		"string":         `"x"`,
		"unknown field":  `{"zzz_unknown":1}`,
		"id":             `{"id":"` + uuid.NewString() + `"}`,
		"organizationId": `{"organizationId":"` + uuid.NewString() + `"}`,
		"plan":           `{"plan":"enterprise"}`,
		"usage":          `{"usage":{"agentMinutes":0}}`,
		"createdAt":      `{"createdAt":"2020-01-01T00:00:00Z"}`,
		"wrong types":    `{"name":1,"title":2,"content":3,"role":4,"email":5,"agentId":6,"cron":7,"enabled":"yes","tokensUsed":"many","status":8}`,
		"NUL":            `{"name":"a\u0000","title":"a\u0000","content":"a\u0000","email":"a\u0000@x.test","cron":"\u0000","role":"user","password":"long-enough\u0000","organizationName":"\u0000","agentId":"` + w.ids["agents"] + `","taskTemplate":{"title":"\u0000"}}`,
		"bad uuid":       `{"agentId":"not-a-uuid","taskId":"1' OR '1'='1"}`,
		"huge number":    `{"tokensUsed":1e400}`,
		"deep nesting":   strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000),
	}
	writing := 0
	for _, rt := range apiRoutes(b) {
		if rt[0] != "POST" && rt[0] != "PATCH" {
			continue
		}
		key := routeKey(rt[0], rt[1])
		_, known := validBody[key]
		require.True(t, known, "route %s has no entry in the bad-input matrix", key)
		writing++
		resource := strings.Split(strings.TrimPrefix(rt[1], "/api/"), "/")[0]
		path := strings.Replace(rt[1], ":id", w.ids[resource], 1)
		for name, body := range bad {
			r := b.do(t, rt[0], path, w.token, body)
			require.GreaterOrEqual(t, r.status, 400, "%s %s: %s", key, name, r.text)
			require.Less(t, r.status, 500, "%s %s: %s", key, name, r.text)
			require.NotEmpty(t, r.errorCode(), "%s %s: contract shape: %s", key, name, r.text)
			require.Equal(t, r.header.Get("X-Request-Id"), r.json["requestId"])
		}
		if strings.Contains(rt[1], ":id") {
			r := b.do(t, rt[0], strings.Replace(rt[1], ":id", "not-a-uuid", 1), w.token, validBody[key])
			require.Equal(t, 400, r.status, "%s with a bad id", key)
		}
		status := postRaw(t, ln.Addr().String(), rt[0], path, w.token, 2<<20)
		require.Equal(t, 413, status, "%s with a 2 MiB body", key)
	}
	require.Positive(t, writing)
	for _, rt := range apiRoutes(b) {
		if rt[0] == "GET" && !strings.Contains(rt[1], ":id") && !strings.Contains(rt[1], "/auth/") && rt[1] != "/api/billing" &&
			!strings.HasPrefix(rt[1], "/api/organization") { // not lists
			for _, q := range []string{"limit=201", "limit=0", "limit=-1", "limit=x", "cursor=%27%3B--"} {
				r := b.do(t, "GET", rt[1]+"?"+q, w.token, nil)
				require.Equal(t, 400, r.status, "%s?%s: %s", rt[1], q, r.text)
			}
		}
	}
}

// TestInjectionStringsAreData: hostile strings are stored and returned
// exactly as sent.
func TestInjectionStringsAreData(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "inject", tenancy.PlanEnterprise)
	evil := `'); DROP TABLE tasks; -- ` + "\u202e<img src=x onerror=alert(1)> ${jndi:ldap://x} \\x00 %00 日本語 🚀"
	agent := b.create(t, o.token, "/api/agents", map[string]string{"name": evil, "description": evil, "model": evil})
	task := b.create(t, o.token, "/api/tasks", map[string]any{"title": evil, "description": evil})
	msg := b.create(t, o.token, "/api/messages", map[string]any{"role": "user", "content": evil})
	for _, got := range []any{agent["name"], agent["description"], task["title"], msg["content"]} {
		require.Equal(t, evil, got)
	}
	r := b.do(t, "GET", "/api/tasks/"+task["id"].(string), o.token, nil)
	require.Equal(t, evil, r.json["title"])
	require.Equal(t, 200, b.do(t, "GET", "/api/tasks", o.token, nil).status, "the table is still there")
}

// postRaw sends method path with a body of size bytes over a raw
// connection and returns the status (the server answers after the headers).
func postRaw(t *testing.T, addr, method, path, token string, size int) int {
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "%s %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{",
		method, path, token, size)
	require.NoError(t, err)
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var parsed map[string]any
	require.NoError(t, json.Unmarshal(raw, &parsed), string(raw))
	return res.StatusCode
}
