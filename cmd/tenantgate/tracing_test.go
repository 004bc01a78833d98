package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP/HTTP trace receiver on loopback.
type collector struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = gz
	}
	raw, err := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(raw, &req)
	}
	if r.URL.Path != "/v1/traces" || err != nil {
		http.Error(w, "bad export", 400)
		return
	}
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (c *collector) trace(id []byte) []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range c.spans {
		if bytes.Equal(s.GetTraceId(), id) {
			out = append(out, s)
		}
	}
	return out
}

// attr is the string attribute key of s, or "".
func attr(s *tracepb.Span, key string) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// TestTracing: with otel.endpoint set, serve exports a server span per
// request that continues the caller's traceparent, names its route and
// tenant, and has the request's database queries as descendants, without
// their parameters.
func TestTracing(t *testing.T) {
	env(t)
	_, _, err := tg(t, "init")
	require.NoError(t, err)
	_, _, err = tg(t, "tenants", "create", "--slug", "traced", "--name", "Traced", "--plan", "pro",
		"--owner-email", "owner@traced.test", "--owner-password", "correct-horse-9")
	require.NoError(t, err)

	col := &collector{}
	srv := httptest.NewServer(col)
	defer srv.Close()
	t.Setenv("TENANTGATE_OTEL_ENDPOINT", srv.URL)
	t.Setenv("TENANTGATE_JWT_SECRET", "trace-secret-trace-secret-trace-secret")
	httpAddr, adminAddr := freeAddr(t), freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--http-addr", httpAddr, "--admin-addr", adminAddr}, &bytes.Buffer{}, &bytes.Buffer{})
	}()
	waitHealthy(t, "http://"+adminAddr+"/healthz")
	token := login(t, "http://"+httpAddr, "owner@traced.test", "correct-horse-9")

	traceID := "4bf92f3577b34da6a3ce929d0e0e4736"
	req, err := http.NewRequest("GET", "http://"+httpAddr+"/api/agents", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, 200, res.StatusCode)

	cancel() // shutdown flushes the buffered spans
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}

	id, _ := hex.DecodeString(traceID)
	spans := col.trace(id)
	var server *tracepb.Span
	for _, s := range spans {
		if s.GetKind() == tracepb.Span_SPAN_KIND_SERVER {
			server = s
		}
	}
	require.NotNil(t, server, "the request's span continues the caller's trace (got %d spans in it)", len(spans))
	require.Equal(t, "GET /api/agents", server.GetName())
	require.Equal(t, "00f067aa0ba902b7", hex.EncodeToString(server.GetParentSpanId()))
	require.Equal(t, "traced", attr(server, "tenantgate.organization.slug"))
	require.Equal(t, "pro", attr(server, "tenantgate.plan"))
	require.Equal(t, "/api/agents", attr(server, "http.route"))

	// The queries hang below the request's span.
	parents := map[string]string{}
	for _, s := range spans {
		parents[hex.EncodeToString(s.GetSpanId())] = hex.EncodeToString(s.GetParentSpanId())
	}
	below := 0
	for _, s := range spans {
		for p := parents[hex.EncodeToString(s.GetSpanId())]; p != ""; p = parents[p] {
			if p == hex.EncodeToString(server.GetSpanId()) {
				below++
				break
			}
		}
	}
	require.Positive(t, below, "database spans are descendants of the request's span")

	// No span anywhere carries a query parameter such as the login email.
	col.mu.Lock()
	defer col.mu.Unlock()
	require.NotEmpty(t, col.spans)
	for _, s := range col.spans {
		for _, a := range s.GetAttributes() {
			require.NotContains(t, a.GetValue().String(), "owner@traced.test", "span %q attribute %s", s.GetName(), a.GetKey())
		}
	}
}
