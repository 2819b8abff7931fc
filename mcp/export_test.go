package mcp

import (
	"context"
	"encoding/json"
	"time"

	"k8s.io/utils/clock"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// HandleMessage hands one JSON-RPC message to the MCP server as the
// transports do, on behalf of id.
func (s *Server) HandleMessage(ctx context.Context, id Identity, raw json.RawMessage) mcpgo.JSONRPCMessage {
	return s.mcp.HandleMessage(withIdentity(ctx, id), raw)
}

// NewCachingAuthorizerWithClock is NewCachingAuthorizer on a clock the test
// moves.
func NewCachingAuthorizerWithClock(next Authorizer, authorized, denied time.Duration, clk clock.Clock) *CachingAuthorizer {
	return newCachingAuthorizer(next, authorized, denied, clk)
}
