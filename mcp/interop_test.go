package mcp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendops/tend/mcp"
	"github.com/tendops/tend/mcp/wire"
)

// interopDir installs the TypeScript SDK client of testdata/interop, at the
// versions its package-lock.json pins, into a per-user cache outside the
// repository (installed once per lock file) and returns that directory.
func interopDir(t *testing.T) string {
	return npmDir(t, "interop", []string{"client.mjs"}, filepath.Join("@modelcontextprotocol", "sdk"))
}

// npmDir installs the npm project testdata/<name> (package.json, its
// package-lock.json and files), at the versions its lock pins, into a
// per-user cache outside the repository, once per lock file (marker is a
// package whose presence says it is installed), and returns that directory.
func npmDir(t *testing.T, name string, files []string, marker string) string {
	t.Helper()
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatalf("npm is required for the MCP interop tests (Debian: apt-get install nodejs npm): %v", err)
	}
	src := filepath.Join("testdata", name)
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "tend", "npm", "mcp-"+name+"-"+hex.EncodeToString(sum[:8]))
	for _, f := range append([]string{"package.json", "package-lock.json"}, files...) {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", marker, "package.json")); err == nil {
		return dir
	}
	t.Logf("Installing testdata/%s's npm packages into %s", name, dir)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	return dir
}

// interopResult is what testdata/interop/client.mjs prints.
type interopResult struct {
	Server struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"server"`
	Tools []struct {
		Name     string `json:"name"`
		ReadOnly *bool  `json:"readOnly"`
	} `json:"tools"`
	Read    toolResult `json:"read"`
	Propose toolResult `json:"propose"`
}

type toolResult struct {
	IsError           bool            `json:"isError"`
	StructuredContent json.RawMessage `json:"structuredContent"`
	Content           []struct {
		Text string `json:"text"`
	} `json:"content"`
}

func TestTypeScriptSDKInterop(t *testing.T) {
	dir := interopDir(t)
	c := startCluster(t)
	url := c.serve(t, 200*time.Millisecond, func(o *mcp.Options) { o.ShimActions = true })

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "node", "client.mjs", url, c.agentToken, teamNS, "web")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("TypeScript SDK client: %v\nstderr:\n%s", err, stderr.String())
	}
	var got interopResult
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("client output: %v\n%s", err, stdout.String())
	}

	if got.Server.Name != "tend" || got.Server.Version != wire.Version {
		t.Errorf("server %+v, want tend %s", got.Server, wire.Version)
	}
	names := map[string]bool{}
	for _, tool := range got.Tools {
		names[tool.Name] = true
		if tool.ReadOnly == nil {
			t.Errorf("tool %s has no readOnlyHint", tool.Name)
		}
	}
	for name := range wantActions {
		if !names[name] {
			t.Errorf("the SDK client did not list %s", name)
		}
	}
	if got.Read.IsError || !strings.Contains(string(got.Read.StructuredContent), `"name":"web"`) {
		t.Errorf("get_resource through the SDK: %+v", got.Read)
	}
	if got.Propose.IsError {
		t.Fatalf("propose_scale_workload through the SDK: %+v", got.Propose)
	}
	var res wire.ProposeResult
	if err := json.Unmarshal(got.Propose.StructuredContent, &res); err != nil {
		t.Fatalf("propose result: %v", err)
	}
	made := c.proposals(t, "interop-scale")
	if len(made) != 1 || made[0].Name != res.Name {
		t.Fatalf("proposals %v, want the one the SDK made (%s)", made, res.Name)
	}
	p := made[0]
	if p.Spec.Proposer.Username != agentSA || p.Spec.Proposer.Agent != "typescript-sdk" {
		t.Errorf("proposer %+v, want %s (agent typescript-sdk)", p.Spec.Proposer, agentSA)
	}
	if p.Spec.Parameters.Scale == nil || p.Spec.Parameters.Scale.Replicas != 3 {
		t.Errorf("parameters %+v, want scale to 3", p.Spec.Parameters)
	}
}
