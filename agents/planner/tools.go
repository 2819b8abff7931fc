package planner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	mcpclient "github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/tendops/tend/agents"
)

// Tool is one tool the MCP server offers the planner's identity.
type Tool struct {
	Name        string
	Description string
	// InputSchema is the tool's JSON schema, as the server lists it.
	InputSchema json.RawMessage
}

// Output is a tool's answer.
type Output struct {
	// Text is the answer as text: the structured result as JSON, or the
	// error message.
	Text string
	// Structured is the structured result, when there is one.
	Structured json.RawMessage
	// IsError is true when the tool refused or failed; Text says why.
	IsError bool
}

// Tools is the MCP server as the planner uses it. *MCPTools implements it.
type Tools interface {
	ListTools(ctx context.Context) ([]Tool, error)
	CallTool(ctx context.Context, name string, args json.RawMessage) (Output, error)
}

// TokenSource returns the bearer token the planner presents to the MCP
// server: the agent's own.
type TokenSource = agents.TokenSource

// MCPTools calls tend's MCP server over streamable HTTP as the agent.
type MCPTools struct {
	c *mcpclient.Client
}

var _ Tools = (*MCPTools)(nil)

// DialMCP opens an MCP session with the server at url.
func DialMCP(ctx context.Context, url, agent string, token TokenSource) (*MCPTools, error) {
	c, err := agents.OpenSession(ctx, url, agent, token)
	if err != nil {
		return nil, err
	}
	return &MCPTools{c: c}, nil
}

// Close ends the session.
func (m *MCPTools) Close() error { return m.c.Close() }

// ListTools lists the tools the server offers this identity.
func (m *MCPTools) ListTools(ctx context.Context) ([]Tool, error) {
	var out []Tool
	req := mcpgo.ListToolsRequest{}
	for {
		res, err := m.c.ListTools(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("failed to list tools: %w", err)
		}
		for _, t := range res.Tools {
			schema, err := json.Marshal(t.InputSchema)
			if err != nil {
				return nil, fmt.Errorf("failed to read the schema of %s: %w", t.Name, err)
			}
			out = append(out, Tool{Name: t.Name, Description: t.Description, InputSchema: schema})
		}
		if res.NextCursor == "" {
			return out, nil
		}
		req.Params.Cursor = res.NextCursor
	}
}

// CallTool calls a tool. A tool's own error is an Output with IsError; the
// error return is for a call that did not reach the tool.
func (m *MCPTools) CallTool(ctx context.Context, name string, args json.RawMessage) (Output, error) {
	req := mcpgo.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = name, args
	res, err := m.c.CallTool(ctx, req)
	if err != nil {
		return Output{}, fmt.Errorf("failed to call %s: %w", name, err)
	}
	var texts []string
	for _, c := range res.Content {
		if tc, ok := mcpgo.AsTextContent(c); ok {
			texts = append(texts, tc.Text)
		}
	}
	out := Output{Text: strings.Join(texts, "\n"), IsError: res.IsError}
	if !res.IsError {
		out.Structured = res.RawStructuredContent
		if len(out.Structured) == 0 && res.StructuredContent != nil {
			if out.Structured, err = json.Marshal(res.StructuredContent); err != nil {
				return Output{}, errors.New("failed to read the structured result of " + name)
			}
		}
	}
	return out, nil
}
