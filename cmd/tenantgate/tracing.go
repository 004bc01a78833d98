package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/tenantgate/tenantgate/config"
)

// tracing is OpenTelemetry's side of a process: a provider for request
// spans and a tracer for pgx; both nil when otel.endpoint is empty.
type tracing struct {
	provider trace.TracerProvider
	pgx      pgx.QueryTracer
	// shutdown flushes the spans still buffered.
	shutdown func(context.Context) error
}

// newTracing exports spans over OTLP/HTTP to otel.endpoint, sampling
// otel.sample_ratio of the traces that do not arrive already sampled.
func newTracing(ctx context.Context, cfg config.Config, log *slog.Logger) (tracing, error) {
	off := tracing{shutdown: func(context.Context) error { return nil }}
	if cfg.OTel.Endpoint == "" {
		return off, nil
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(cfg.OTel.Endpoint)}
	if strings.Contains(cfg.OTel.Endpoint, "://") {
		u, err := url.Parse(cfg.OTel.Endpoint)
		if err != nil {
			return off, fmt.Errorf("otel.endpoint: %w", err)
		}
		// A collector's base URL, as OTEL_EXPORTER_OTLP_ENDPOINT takes it:
		// traces go to its /v1/traces.
		if u.Path == "" || u.Path == "/" {
			u.Path = "/v1/traces"
		}
		opts = []otlptracehttp.Option{otlptracehttp.WithEndpointURL(u.String())}
	}
	if cfg.OTel.Insecure {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	exporter, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return off, fmt.Errorf("otel.endpoint: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(cfg.OTel.ServiceName))),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.OTel.SampleRatio))),
	)
	// The SDK reports export failures through a global handler that
	// would print to stderr: they go to our log instead.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing", "err", err) }))
	log.Info("tracing enabled", "endpoint", cfg.OTel.Endpoint, "sampleRatio", cfg.OTel.SampleRatio)
	// Statements are recorded without their parameters, which may hold
	// tenant data.
	pgxTracer := otelpgx.NewTracer(otelpgx.WithTracerProvider(tp))
	return tracing{provider: tp, pgx: pgxTracer, shutdown: tp.Shutdown}, nil
}
