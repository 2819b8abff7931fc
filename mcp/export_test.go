package mcp

import (
	"context"
	"encoding/json"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// HandleMessage hands one JSON-RPC message to the MCP server as the
// transports do, on behalf of id.
func (s *Server) HandleMessage(ctx context.Context, id Identity, raw json.RawMessage) mcpgo.JSONRPCMessage {
	return s.mcp.HandleMessage(withIdentity(ctx, id), raw)
}
