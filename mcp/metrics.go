package mcp

import (
	"context"
	"errors"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"github.com/prometheus/client_golang/prometheus"
)

var rateLimitedTotal = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "tend", Subsystem: "mcp", Name: "rate_limited_total",
	Help: "Tool calls refused because the caller exceeded its rate limit.",
})

var (
	toolCallsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "tend", Subsystem: "mcp", Name: "tool_calls_total",
		Help: "Tool calls, by tool and result: ok, error (a tool error the caller can act on, such as a refusal or a rate limit) or failed (the server could not answer).",
	}, []string{"tool", "result"})
	toolCallSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "tend", Subsystem: "mcp", Name: "tool_call_duration_seconds",
		Help:    "Time to answer a tool call, by tool.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"tool"})
)

// measure is the outermost tool middleware: it counts every call by tool
// and result and times it. Tool names are the server's own, so the labels
// stay bounded.
func (s *Server) measure(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		tool := req.Params.Name
		if !s.toolNames[tool] {
			tool = "unknown"
		}
		start := time.Now()
		res, err := next(ctx, req)
		result := "ok"
		switch {
		case err != nil:
			result = "failed"
		case res != nil && res.IsError:
			result = "error"
		}
		toolCallsTotal.WithLabelValues(tool, result).Inc()
		toolCallSeconds.WithLabelValues(tool).Observe(time.Since(start).Seconds())
		return res, err
	}
}

// Register adds the MCP server's metrics to r. Registering twice is not an
// error.
func Register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{rateLimitedTotal, toolCallsTotal, toolCallSeconds} {
		if err := r.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}
