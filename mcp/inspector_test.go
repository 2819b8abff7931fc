package mcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tendops/tend/mcp"
)

// inspectorReport is what testdata/inspector/inspect.mjs prints.
type inspectorReport struct {
	Exit   int    `json:"exit"`
	Stderr string `json:"stderr"`
	Tools  []struct {
		Name  string  `json:"name"`
		Title *string `json:"title"`
	} `json:"tools"`
	Problems []string `json:"problems"`
}

// TestInspectorCLI lists the tools with the official MCP Inspector in CLI
// mode over streamable HTTP, as the agent, and validates every tool's
// input and output schema strictly (ajv strict mode: no unknown keyword or
// format; every field typed, none nullable). The inspector must not warn.
func TestInspectorCLI(t *testing.T) {
	dir := npmDir(t, "inspector", []string{"inspect.mjs"}, filepath.Join("@modelcontextprotocol", "inspector-cli"))
	c := startCluster(t)
	url := c.serve(t, 200*time.Millisecond, func(o *mcp.Options) { o.ShimActions = true })

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "node", "inspect.mjs", url, c.agentToken)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &stdout, &stderr
	runErr := cmd.Run()
	var got inspectorReport
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("inspect.mjs: %v (%v)\nstdout:\n%s\nstderr:\n%s", err, runErr, stdout.String(), stderr.String())
	}
	for _, p := range got.Problems {
		t.Error(p)
	}
	if got.Exit != 0 || got.Stderr != "" {
		t.Errorf("the inspector exited %d, stderr:\n%s", got.Exit, got.Stderr)
	}
	names := map[string]bool{}
	for _, tool := range got.Tools {
		names[tool.Name] = true
		if tool.Title == nil || *tool.Title == "" {
			t.Errorf("tool %s has no title", tool.Name)
		}
	}
	for name := range wantActions {
		if !names[name] {
			t.Errorf("the inspector did not list %s", name)
		}
	}
	if runErr != nil && len(got.Problems) == 0 {
		t.Errorf("inspect.mjs: %v\nstderr:\n%s", runErr, stderr.String())
	}
	t.Logf("The MCP Inspector CLI listed %d tools; every schema compiles in ajv's strict mode", len(got.Tools))
}
