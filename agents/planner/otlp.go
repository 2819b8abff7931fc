package planner

import (
	"context"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// EnvOTLPEndpoint is OpenTelemetry's standard variable for the OTLP
// endpoint; EnvOTLPTracesEndpoint the one for traces alone.
const (
	EnvOTLPEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvOTLPTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// Tracing reports whether the planner's spans are to be exported: an OTLP
// endpoint is set by flag or by OpenTelemetry's environment variables.
func (b *Brain) Tracing() bool {
	return b.OTLPEndpoint != "" || os.Getenv(EnvOTLPEndpoint) != "" || os.Getenv(EnvOTLPTracesEndpoint) != ""
}

// NewTracer returns a tracer whose spans go to an OTLP/HTTP collector, and
// the function that flushes and stops it. endpoint is the collector's base
// URL (http://host:4318; spans go to its /v1/traces); empty takes
// OpenTelemetry's environment variables (OTEL_EXPORTER_OTLP_ENDPOINT and
// the rest), as every OpenTelemetry SDK does.
func NewTracer(ctx context.Context, endpoint, service string) (trace.Tracer, func(context.Context) error, error) {
	var opts []otlptracehttp.Option
	if endpoint != "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(endpoint+"/v1/traces"))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to create the OTLP exporter: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", service))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	return tp.Tracer("github.com/tendops/tend/agents/planner"), tp.Shutdown, nil
}

// StartTracing sets b.Tracer to an OTLP exporter's when b's planner runs
// and an endpoint is configured, and returns what stops it (flushing the
// spans left); without one it does nothing.
func (b *Brain) StartTracing(ctx context.Context) (stop func(), err error) {
	if !b.NeedsPlanner() || !b.Tracing() {
		return func() {}, nil
	}
	tr, shutdown, err := NewTracer(ctx, b.OTLPEndpoint, "tend-agent")
	if err != nil {
		return nil, err
	}
	b.Tracer = tr
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = shutdown(sctx)
	}, nil
}
