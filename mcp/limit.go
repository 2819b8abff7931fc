package mcp

import (
	"context"
	"fmt"
	"sync"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"golang.org/x/time/rate"
)

// maxLimiters bounds the identities whose rate limiters are kept; the one
// idle longest is forgotten first.
const maxLimiters = 10000

// limiters holds a token bucket per authenticated identity.
type limiters struct {
	rate  rate.Limit
	burst int

	mu sync.Mutex
	by map[string]*identityLimiter
}

type identityLimiter struct {
	*rate.Limiter
	used time.Time
}

func newLimiters(r rate.Limit, burst int) *limiters {
	return &limiters{rate: r, burst: burst, by: map[string]*identityLimiter{}}
}

// allow takes one call from user's bucket; when it is empty it returns how
// long until the next call would be allowed.
func (l *limiters) allow(user string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	il, ok := l.by[user]
	if !ok {
		if len(l.by) >= maxLimiters {
			l.evict()
		}
		il = &identityLimiter{Limiter: rate.NewLimiter(l.rate, l.burst)}
		l.by[user] = il
	}
	il.used = now
	r := il.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evict forgets the limiter idle longest. Called with mu held.
func (l *limiters) evict() {
	var oldest string
	var at time.Time
	for k, v := range l.by {
		if oldest == "" || v.used.Before(at) {
			oldest, at = k, v.used
		}
	}
	delete(l.by, oldest)
}

// limit is the tool middleware that enforces each identity's rate limit.
// A call over the limit is a tool error the caller can act on; calls without
// an identity never reach a tool (the transport refuses them), and are
// refused here too.
func (s *Server) limit(next mcpserver.ToolHandlerFunc) mcpserver.ToolHandlerFunc {
	return func(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
		id, ok := IdentityFrom(ctx)
		if !ok {
			return mcpgo.NewToolResultError(ErrUnauthenticated.Error()), nil
		}
		if ok, wait := s.limits.allow(id.Username, time.Now()); !ok {
			rateLimitedTotal.Inc()
			return mcpgo.NewToolResultError(fmt.Sprintf("rate limited: %s may make %.3g calls per second (bursts of %d); retry in %s",
				id.Username, float64(s.limits.rate), s.limits.burst, wait.Round(time.Millisecond))), nil
		}
		return next(ctx, req)
	}
}
