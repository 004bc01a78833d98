package router

import (
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantgate/tenantgate/tenancy"
)

// tracing starts a server span per request, continuing a W3C traceparent
// the client sent. It is ours rather than otelfiber's: that one copies
// every header of every request and puts the request's context back when
// it returns, which would hide the tenant from observe's metrics and log.
func tracing(tp trace.TracerProvider) fiber.Handler {
	tracer := tp.Tracer("github.com/tenantgate/tenantgate/router")
	prop := propagation.TraceContext{}
	return func(c *fiber.Ctx) error {
		// Span data outlives the request: the strings are copied out of
		// fasthttp's buffers.
		method := knownMethod(string(c.Request().Header.Method()))
		ctx := prop.Extract(c.UserContext(), headerCarrier{&c.Request().Header})
		ctx, span := tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(semconv.HTTPRequestMethodKey.String(method), semconv.URLPath(strings.Clone(c.Path()))))
		defer span.End()
		c.SetUserContext(ctx)
		render(c, c.Next())
		status := c.Response().StatusCode()
		route := c.Route().Path // a registered pattern: immutable
		span.SetName(method + " " + route)
		span.SetAttributes(semconv.HTTPRoute(route), semconv.HTTPResponseStatusCode(status))
		if status >= 500 {
			span.SetStatus(codes.Error, "")
		}
		return nil
	}
}

// traceTenant names the tenant on the request's span, if it is recorded.
func traceTenant(c *fiber.Ctx, t tenancy.Tenant) {
	if span := trace.SpanFromContext(c.UserContext()); span.IsRecording() {
		span.SetAttributes(attribute.String("tenantgate.organization.slug", t.Organization.Slug),
			attribute.String("tenantgate.plan", string(t.Organization.Plan)),
			attribute.String("tenantgate.placement", t.Placement.Kind))
	}
}

// headerCarrier reads and writes fasthttp request headers for a
// propagator.
type headerCarrier struct{ h *fasthttp.RequestHeader }

func (hc headerCarrier) Get(key string) string { return string(hc.h.Peek(key)) }
func (hc headerCarrier) Set(key, value string) { hc.h.Set(key, value) }
func (hc headerCarrier) Keys() []string {
	var keys []string
	hc.h.VisitAll(func(k, _ []byte) { keys = append(keys, string(k)) })
	return keys
}
