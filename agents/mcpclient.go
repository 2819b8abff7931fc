package agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/tendops/tend/mcp/wire"
)

// ErrToolFailed means the MCP server answered a tool call with an error
// result; the message says why, so the caller can revise.
var ErrToolFailed = errors.New("agents: tool call failed")

// TokenSource returns the bearer token the agent presents to the MCP server.
type TokenSource func(ctx context.Context) (string, error)

// ToolClient calls tend's MCP tools over streamable HTTP.
type ToolClient struct {
	c *mcpclient.Client
}

// DialTools connects and initializes an MCP session with the server at url.
func DialTools(ctx context.Context, url, agentName string, token TokenSource) (*ToolClient, error) {
	c, err := OpenSession(ctx, url, agentName, token)
	if err != nil {
		return nil, err
	}
	return &ToolClient{c: c}, nil
}

// OpenSession starts and initializes an MCP session with the server at url
// over streamable HTTP, presenting token as a bearer token on every request
// and name as the client's. The runbooks' ToolClient and the LLM planner
// both talk to the server through one.
func OpenSession(ctx context.Context, url, name string, token TokenSource) (*mcpclient.Client, error) {
	c, err := mcpclient.NewStreamableHttpClient(url, transport.WithHTTPHeaderFunc(func(ctx context.Context) map[string]string {
		t, err := token(ctx)
		if err != nil || t == "" {
			return nil
		}
		return map[string]string{"Authorization": "Bearer " + t}
	}))
	if err != nil {
		return nil, fmt.Errorf("failed to create MCP client: %w", err)
	}
	if err := c.Start(ctx); err != nil {
		return nil, fmt.Errorf("failed to start MCP client: %w", err)
	}
	req := mcpgo.InitializeRequest{}
	req.Params.ClientInfo = mcpgo.Implementation{Name: name, Version: wire.Version}
	if _, err := c.Initialize(ctx, req); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("failed to initialize MCP session with %s: %w", url, err)
	}
	return c, nil
}

// Close ends the session.
func (t *ToolClient) Close() error { return t.c.Close() }

// ProposeRollback calls propose_rollback.
func (t *ToolClient) ProposeRollback(ctx context.Context, args wire.ProposeRollbackArgs) (wire.ProposeResult, error) {
	return t.Propose(ctx, wire.ToolProposeRollback, &args)
}

// Propose calls the propose tool named tool with args.
func (t *ToolClient) Propose(ctx context.Context, tool string, args wire.ProposeArgs) (wire.ProposeResult, error) {
	var out wire.ProposeResult
	err := t.call(ctx, tool, args, &out)
	return out, err
}

// Call calls the tool name with args and decodes its structured result
// into out. A tool's error result is an error wrapping ErrToolFailed.
func (t *ToolClient) Call(ctx context.Context, name string, args, out any) error {
	return t.call(ctx, name, args, out)
}

func (t *ToolClient) call(ctx context.Context, name string, args, out any) error {
	req := mcpgo.CallToolRequest{}
	req.Params.Name = name
	req.Params.Arguments = args
	res, err := t.c.CallTool(ctx, req)
	if err != nil {
		return fmt.Errorf("failed to call %s: %w", name, err)
	}
	if res.IsError {
		var texts []string
		for _, c := range res.Content {
			if tc, ok := mcpgo.AsTextContent(c); ok {
				texts = append(texts, tc.Text)
			}
		}
		return fmt.Errorf("%w: %s: %s", ErrToolFailed, name, strings.Join(texts, "; "))
	}
	raw := res.RawStructuredContent
	if len(raw) == 0 {
		b, err := json.Marshal(res.StructuredContent)
		if err != nil {
			return fmt.Errorf("failed to read %s result: %w", name, err)
		}
		raw = b
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("failed to decode %s result: %w", name, err)
	}
	return nil
}
