package mcp

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

var rateLimitedTotal = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "tend", Subsystem: "mcp", Name: "rate_limited_total",
	Help: "Tool calls refused because the caller exceeded its rate limit.",
})

// Register adds the MCP server's metrics to r. Registering twice is not an
// error.
func Register(r prometheus.Registerer) error {
	if err := r.Register(rateLimitedTotal); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return err
		}
	}
	return nil
}
