package router

import (
	"bufio"
	"fmt"
	"net/http/httptest"
	"time"

	"encoding/json"
	"github.com/gofiber/fiber/v2"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tenantgate/tenantgate/tenancy"
)

// TestErrorPaths: every error has the contract's shape, the right status
// and code, and X-Request-Id equal to the body's requestId; never a 5xx for
// bad input.
func TestErrorPaths(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "errs", tenancy.PlanFree)
	existing := b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "taken"})
	require.Equal(t, 201, existing.status)
	id := existing.json["id"].(string)

	cases := []struct {
		name, method, path, token string
		body                      any
		status                    int
		code, inMessage           string
	}{
		{"unknown route", "GET", "/api/nothing", o.token, nil, 404, "not_found", ""},
		{"no credentials", "GET", "/api/agents", "", nil, 401, "unauthorized", ""},
		{"garbage token", "GET", "/api/agents", "not-a-jwt", nil, 401, "unauthorized", ""},
		{"forged token", "GET", "/api/agents", o.token[:len(o.token)-4] + "AAAA", nil, 401, "unauthorized", ""},
		{"malformed JSON", "POST", "/api/agents", o.token, `{"name":`, 400, "invalid_request", "JSON"},
		{"not an object", "POST", "/api/agents", o.token, `["a"]`, 400, "invalid_request", "object"},
		{"empty body", "POST", "/api/agents", o.token, "", 400, "invalid_request", "body"},
		{"unknown field", "POST", "/api/agents", o.token, `{"name":"a","colour":"red"}`, 400, "invalid_request", "colour"},
		{"server-owned id", "POST", "/api/agents", o.token, `{"name":"a","id":"` + uuid.NewString() + `"}`, 400, "invalid_request", "id"},
		{"server-owned organizationId", "POST", "/api/agents", o.token, `{"name":"a","organizationId":"x"}`, 400, "invalid_request", "organizationId"},
		{"server-owned createdAt", "POST", "/api/agents", o.token, `{"name":"a","createdAt":"2020-01-01T00:00:00Z"}`, 400, "invalid_request", "createdAt"},
		{"wrong type", "POST", "/api/agents", o.token, `{"name":42}`, 400, "invalid_request", "name"},
		{"missing name", "POST", "/api/agents", o.token, `{"description":"x"}`, 400, "invalid_request", "name"},
		{"NUL byte", "POST", "/api/agents", o.token, `{"name":"a\u0000b"}`, 400, "invalid_request", "control characters"},
		{"trailing data", "POST", "/api/agents", o.token, `{"name":"a"} {"name":"b"}`, 400, "invalid_request", "JSON"},
		{"too long", "POST", "/api/agents", o.token, `{"name":"` + strings.Repeat("n", 201) + `"}`, 400, "invalid_request", "name"},
		{"duplicate name", "POST", "/api/agents", o.token, `{"name":"taken"}`, 409, "conflict", ""},
		{"bad uuid", "GET", "/api/agents/not-a-uuid", o.token, nil, 400, "invalid_request", "id"},
		{"injection in path", "GET", "/api/agents/1'%20OR%20'1'='1", o.token, nil, 400, "invalid_request", "id"},
		{"bad status", "PATCH", "/api/agents/" + id, o.token, `{"status":"dancing"}`, 400, "invalid_request", "status"},
		{"null name", "PATCH", "/api/agents/" + id, o.token, `{"name":""}`, 400, "invalid_request", "name"},
		{"limit too big", "GET", "/api/agents?limit=201", o.token, nil, 400, "invalid_request", "limit"},
		{"limit zero", "GET", "/api/agents?limit=0", o.token, nil, 400, "invalid_request", "limit"},
		{"limit not a number", "GET", "/api/agents?limit=ten", o.token, nil, 400, "invalid_request", "limit"},
		{"bad cursor", "GET", "/api/agents?cursor=%27%3B%20DROP%20TABLE", o.token, nil, 400, "invalid_request", "cursor"},
		{"bad login body", "POST", "/api/auth/login", "", `{"email":1}`, 400, "invalid_request", "email"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := b.do(t, c.method, c.path, c.token, c.body)
			require.Equal(t, c.status, r.status, r.text)
			require.Equal(t, c.code, r.errorCode(), r.text)
			msg := r.json["error"].(map[string]any)["message"].(string)
			require.NotEmpty(t, msg)
			require.Contains(t, msg, c.inMessage)
			rid := r.header.Get("X-Request-Id")
			require.NotEmpty(t, rid)
			require.Equal(t, rid, r.json["requestId"])
		})
	}

	// Injection strings are data: stored and returned literally.
	evil := `'; DROP TABLE agents; -- <script>alert(1)</script> ${jndi:ldap://x}`
	r := b.do(t, "POST", "/api/agents", o.token, map[string]string{"name": "evil", "description": evil})
	require.Equal(t, 201, r.status, r.text)
	require.Equal(t, evil, r.json["description"])
	require.Equal(t, 200, b.do(t, "GET", "/api/agents", o.token, nil).status)

	// A request id supplied by the client is kept when sane, replaced if not.
	r = b.do(t, "GET", "/api/agents", o.token, nil, "X-Request-Id", "trace-123")
	require.Equal(t, "trace-123", r.header.Get("X-Request-Id"))
	r = b.do(t, "GET", "/api/agents", o.token, nil, "X-Request-Id", "bad id\twith\ttabs")
	require.NotEqual(t, "bad id\twith\ttabs", r.header.Get("X-Request-Id"))
}

// TestLogin: an unknown email and a wrong password get byte-identical
// answers apart from the request id.
func TestLogin(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.org(t, "login", tenancy.PlanFree)
	wrong := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": "owner@login.test", "password": "nope-nope-nope"})
	unknown := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": "ghost@login.test", "password": "nope-nope-nope"})
	require.Equal(t, 401, wrong.status)
	require.Equal(t, wrong.withoutRequestID(), unknown.withoutRequestID())

	ok := b.do(t, "POST", "/api/auth/login", "", map[string]string{"email": "OWNER@login.test", "password": "password-login"})
	require.Equal(t, 200, ok.status, "emails match without case")
	for _, f := range []string{"token", "expiresAt", "user", "organization"} {
		require.Contains(t, ok.json, f)
	}
	me := b.do(t, "GET", "/api/auth/me", ok.json["token"].(string), nil)
	require.Equal(t, 200, me.status)
	orgJSON := me.json["organization"].(map[string]any)
	for _, f := range []string{"id", "slug", "name", "plan", "status", "placement"} {
		require.Contains(t, orgJSON, f)
	}
}

// TestBodyLimit runs over a real listener: fasthttp refuses an oversized
// body before any handler runs, and the answer must still be the
// contract's 413.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	b := setup(t)
	o := b.org(t, "limits", tenancy.PlanFree)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	go b.app.Listener(ln)
	t.Cleanup(func() { _ = b.app.Shutdown() })

	for _, size := range []int{BodyLimit + 1, 2 << 20} {
		// A raw connection: the server answers as soon as it has read the
		// headers, and a client still writing the body could see the reset
		// before the answer.
		conn, err := net.Dial("tcp", ln.Addr().String())
		require.NoError(t, err)
		_, err = fmt.Fprintf(conn, "POST /api/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"name\":\"", o.token, size)
		require.NoError(t, err)
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		require.NoError(t, err)
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		conn.Close()
		require.Equal(t, 413, res.StatusCode, string(raw))
		var parsed map[string]any
		require.NoError(t, json.Unmarshal(raw, &parsed))
		r := response{status: res.StatusCode, json: parsed}
		require.Equal(t, "payload_too_large", r.errorCode())
		require.Equal(t, res.Header.Get("X-Request-Id"), parsed["requestId"])
		require.NotEmpty(t, parsed["requestId"])
	}
	// Just under the limit is not refused for size.
	r := b.do(t, "POST", "/api/agents", o.token, `{"name":"ok","description":"`+strings.Repeat("d", 1000)+`"}`)
	require.Equal(t, 201, r.status, r.text)
}

// TestPanicIsA500InContractShape: a handler that panics answers 500
// "internal" with the request id, and the process goes on serving.
func TestPanicIsA500InContractShape(t *testing.T) {
	t.Parallel()
	s := &server{Deps: Deps{Log: quiet, Metrics: NewMetrics(nil, 0), RequestTimeout: time.Second}}
	app := newApp(quiet)
	app.Use(s.observe, s.recover, s.deadline)
	app.Get("/boom", func(c *fiber.Ctx) error { panic("kaboom: secret detail") })
	app.Get("/fine", func(c *fiber.Ctx) error { return c.SendString("ok") })
	for range 2 {
		res, err := app.Test(httptest.NewRequest("GET", "/boom", nil), -1)
		require.NoError(t, err)
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		require.Equal(t, 500, res.StatusCode)
		var body map[string]any
		require.NoError(t, json.Unmarshal(raw, &body))
		require.Equal(t, "internal", body["error"].(map[string]any)["code"])
		require.NotContains(t, string(raw), "secret detail", "panic details stay in the log")
		require.Equal(t, res.Header.Get("X-Request-Id"), body["requestId"])
	}
	res, err := app.Test(httptest.NewRequest("GET", "/fine", nil), -1)
	require.NoError(t, err)
	require.Equal(t, 200, res.StatusCode)
}
