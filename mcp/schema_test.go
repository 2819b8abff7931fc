package mcp_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"
	authzv1 "k8s.io/api/authorization/v1"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp"
	"github.com/tendops/tend/mcp/wire"
)

// allowAll allows every call: tools/list then shows every tool the server
// implements.
type allowAll struct{}

func (allowAll) Authorize(context.Context, mcp.Identity, authzv1.ResourceAttributes) error {
	return nil
}

// listedTool is a tool as tools/list sends it.
type listedTool struct {
	Name         string          `json:"name"`
	Title        string          `json:"title"`
	InputSchema  json.RawMessage `json:"inputSchema"`
	OutputSchema json.RawMessage `json:"outputSchema"`
	Annotations  struct {
		Title string `json:"title"`
	} `json:"annotations"`
}

func listTools(t *testing.T, srv *mcp.Server) map[string]listedTool {
	t.Helper()
	out, err := json.Marshal(srv.HandleMessage(t.Context(), mcp.Identity{Username: "lister"}, json.RawMessage(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`)))
	if err != nil {
		t.Fatal(err)
	}
	var resp struct {
		Result struct {
			Tools []listedTool `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("tools/list: %v: %s", err, out)
	}
	tools := map[string]listedTool{}
	for _, tool := range resp.Result.Tools {
		tools[tool.Name] = tool
	}
	return tools
}

// schemaNode is the part of a JSON schema the checks read.
type schemaNode struct {
	Type                 any                    `json:"type"`
	Enum                 []any                  `json:"enum"`
	Minimum              *float64               `json:"minimum"`
	Maximum              *float64               `json:"maximum"`
	MaxItems             *int                   `json:"maxItems"`
	Properties           map[string]*schemaNode `json:"properties"`
	Items                *schemaNode            `json:"items"`
	AdditionalProperties json.RawMessage        `json:"additionalProperties"`
	AnyOf                []*schemaNode          `json:"anyOf"`
}

// walk calls f on every schema in n, with its path.
func walk(path string, n *schemaNode, f func(string, *schemaNode)) {
	if n == nil {
		return
	}
	f(path, n)
	for k, p := range n.Properties {
		walk(path+"."+k, p, f)
	}
	walk(path+"[]", n.Items, f)
}

func TestToolSchemas(t *testing.T) {
	nats, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nats.Shutdown)
	nc, js, err := bus.Connect(t.Context(), nats.URL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	srv, err := mcp.New(mcp.Options{Client: offlineClient(t), Authorizer: allowAll{}, ShimActions: true, Logs: &mcp.KubeLogs{}, Telemetry: js})
	if err != nil {
		t.Fatal(err)
	}
	tools := listTools(t, srv)
	if len(tools) != len(tendv1.Catalogue)+9 {
		t.Errorf("%d tools, want %d", len(tools), len(tendv1.Catalogue)+9)
	}
	for name, tool := range tools {
		if tool.Title == "" || tool.Annotations.Title != tool.Title {
			t.Errorf("%s: title %q, annotation title %q; want both set, the same", name, tool.Title, tool.Annotations.Title)
		}
		for kind, raw := range map[string]json.RawMessage{"input": tool.InputSchema, "output": tool.OutputSchema} {
			var root schemaNode
			if err := json.Unmarshal(raw, &root); err != nil {
				t.Fatalf("%s: %s schema: %v", name, kind, err)
			}
			if root.Type != "object" {
				t.Errorf("%s: %s schema of type %v, want object", name, kind, root.Type)
			}
			if kind == "input" && string(root.AdditionalProperties) != "false" {
				t.Errorf("%s: input schema allows unknown arguments", name)
			}
			walk(name, &root, func(path string, n *schemaNode) {
				if n.Type == nil && n.Enum == nil && (n.AnyOf == nil || !strings.HasSuffix(path, ".value")) {
					t.Errorf("%s (%s): untyped", path, kind)
				}
				if types, ok := n.Type.([]any); ok {
					t.Errorf("%s (%s): types %v: a list of types (strict validators refuse one)", path, kind, types)
				}
				for _, alt := range n.AnyOf {
					if alt.Type == nil || alt.Type == "null" {
						t.Errorf("%s (%s): an alternative of type %v", path, kind, alt.Type)
					}
				}
			})
		}
	}
	// The constraints a model or client needs to get its arguments right.
	prop := func(tool, path string) *schemaNode {
		t.Helper()
		var n schemaNode
		if err := json.Unmarshal(tools[tool].InputSchema, &n); err != nil {
			t.Fatal(err)
		}
		cur := &n
		for _, p := range strings.Split(path, ".") {
			if p == "[]" {
				cur = cur.Items
			} else {
				cur = cur.Properties[p]
			}
			if cur == nil {
				t.Fatalf("%s: no %s in the input schema", tool, path)
			}
		}
		return cur
	}
	enum := func(n *schemaNode) []string {
		var out []string
		for _, e := range n.Enum {
			out = append(out, e.(string))
		}
		return out
	}
	for name, info := range map[string]tendv1.Action{
		wire.ToolProposeRestartWorkload: tendv1.ActionRestartWorkload, wire.ToolProposeScaleWorkload: tendv1.ActionScaleWorkload,
		wire.ToolProposeSetResources: tendv1.ActionSetResources, wire.ToolProposePatchWorkload: tendv1.ActionPatchWorkload,
	} {
		a, _ := tendv1.LookupAction(info)
		if got := enum(prop(name, "kind")); !slices.Equal(got, a.Kinds()) {
			t.Errorf("%s: kind enum %v, want the catalogue's %v", name, got, a.Kinds())
		}
	}
	for name := range tools {
		if strings.HasPrefix(name, "propose_") {
			if got := enum(prop(name, "risk")); !slices.Equal(got, []string{"Low", "Medium", "High"}) {
				t.Errorf("%s: risk enum %v", name, got)
			}
			if n := prop(name, "telemetry"); n.MaxItems == nil || *n.MaxItems != 32 {
				t.Errorf("%s: telemetry without maxItems 32", name)
			}
		}
	}
	if got := enum(prop(wire.ToolProposePatchWorkload, "patch.[].op")); !slices.Equal(got, []string{"add", "remove", "replace", "test"}) {
		t.Errorf("patch op enum %v", got)
	}
	if v := prop(wire.ToolProposePatchWorkload, "patch.[].value"); len(v.AnyOf) != 5 || v.Type != nil || v.Items != nil {
		t.Errorf("patch value schema %+v, want any JSON value but null", v)
	}
	if r := prop(wire.ToolProposeScaleWorkload, "replicas"); r.Type != "integer" || r.Minimum == nil || *r.Minimum != 0 {
		t.Errorf("replicas schema %+v, want an integer of at least 0", r)
	}
	if g := prop(wire.ToolProposeDrainNode, "gracePeriodSeconds"); g.Minimum == nil || *g.Minimum != 0 || g.Maximum == nil || *g.Maximum != 3600 {
		t.Errorf("gracePeriodSeconds schema %+v, want 0 to 3600", g)
	}
	if got := enum(prop(wire.ToolGetTelemetry, "kind")); !slices.Equal(got, []string{"pod", "deployment", "node", "event", "containers", "containerstats", "images", "imagefs"}) {
		t.Errorf("telemetry kind enum %v", got)
	}
}

func TestOnlyImplementedToolsAreListed(t *testing.T) {
	srv, err := mcp.New(mcp.Options{Client: offlineClient(t), Authorizer: allowAll{}})
	if err != nil {
		t.Fatal(err)
	}
	tools := listTools(t, srv)
	for _, name := range []string{wire.ToolProposeRestartContainer, wire.ToolProposePruneImages, wire.ToolProposeCollectDiagnostics, wire.ToolGetLogs, wire.ToolGetTelemetry} {
		if _, ok := tools[name]; ok {
			t.Errorf("%s listed on a server that cannot serve it", name)
		}
		// Nor can it be called.
		req, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": map[string]any{"name": name, "arguments": map[string]any{}}})
		out, _ := json.Marshal(srv.HandleMessage(t.Context(), mcp.Identity{Username: "caller"}, req))
		if !strings.Contains(string(out), `"error"`) {
			t.Errorf("calling unlisted %s: %s, want an error", name, out)
		}
	}
	if len(tools) != len(tendv1.Catalogue)-3+7 {
		t.Errorf("%d tools listed, want %d", len(tools), len(tendv1.Catalogue)-3+7)
	}
}

// TestInputSchemasValidateArguments checks the schemas as a client that
// validates before it calls would use them: valid arguments pass, and an
// unknown argument, a value outside its enum and a number outside its
// bounds fail, each in the schema itself.
func TestInputSchemasValidateArguments(t *testing.T) {
	srv, err := mcp.New(mcp.Options{Client: offlineClient(t), Authorizer: allowAll{}, Logs: &mcp.KubeLogs{}})
	if err != nil {
		t.Fatal(err)
	}
	tools := listTools(t, srv)
	for _, tc := range []struct {
		tool, args string
		valid      bool
	}{
		{wire.ToolProposeScaleWorkload, `{"namespace":"team","name":"web","replicas":0,"summary":"s","risk":"Low"}`, true},
		{wire.ToolProposeScaleWorkload, `{"namespace":"team","name":"web","replicas":-1,"summary":"s"}`, false},
		{wire.ToolProposeScaleWorkload, `{"namespace":"team","name":"web","replicas":1,"summary":"s","dryRun":true}`, false},
		{wire.ToolProposeScaleWorkload, `{"namespace":"team","name":"web","replicas":1,"summary":"s","risk":"None"}`, false},
		{wire.ToolProposeScaleWorkload, `{"namespace":"team","name":"web","replicas":1,"summary":"s","kind":"DaemonSet"}`, false},
		{wire.ToolProposeScaleWorkload, `{"namespace":"Team!","name":"web","replicas":1,"summary":"s"}`, false},
		{wire.ToolProposeScaleWorkload, `{"namespace":"team","name":"web","summary":"s"}`, false},
		{wire.ToolProposePatchWorkload, `{"namespace":"team","name":"web","summary":"s","patch":[{"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"A","value":"1"}}]}`, true},
		{wire.ToolProposePatchWorkload, `{"namespace":"team","name":"web","summary":"s","kind":"CronJob","patch":[{"op":"replace","path":"/spec/x","value":7}]}`, true},
		{wire.ToolProposePatchWorkload, `{"namespace":"team","name":"web","summary":"s","patch":[{"op":"replace","path":"/spec/x","value":null}]}`, false},
		{wire.ToolProposePatchWorkload, `{"namespace":"team","name":"web","summary":"s","patch":[{"op":"move","path":"/spec/x","from":"/spec/y"}]}`, false},
		{wire.ToolProposeSetResources, `{"namespace":"team","name":"web","container":"app","summary":"s","limits":{"memory":"1Gi"}}`, true},
		{wire.ToolProposeSetResources, `{"namespace":"team","name":"web","container":"app","summary":"s","limits":{"gpu":"1"}}`, false},
		{wire.ToolProposeDrainNode, `{"node":"node-1","summary":"s","gracePeriodSeconds":7200}`, false},
		{wire.ToolGetResource, `{"apiVersion":"apps/v1","kind":"deploy","namespace":"team","name":"web"}`, true},
		{wire.ToolGetLogs, `{"namespace":"team","pod":"web-1","tailLines":5000}`, false},
		{wire.ToolListProposals, `{"namespace":"team","phase":"Succeeded"}`, true},
		{wire.ToolListProposals, `{"namespace":"team","phase":"Done"}`, false},
	} {
		var s jsonschema.Schema
		if err := json.Unmarshal(tools[tc.tool].InputSchema, &s); err != nil {
			t.Fatalf("%s: %v", tc.tool, err)
		}
		resolved, err := s.Resolve(nil)
		if err != nil {
			t.Fatalf("%s: the input schema does not resolve: %v", tc.tool, err)
		}
		var args any
		if err := json.Unmarshal([]byte(tc.args), &args); err != nil {
			t.Fatal(err)
		}
		if err := resolved.Validate(args); (err == nil) != tc.valid {
			t.Errorf("%s(%s): schema says %v, want valid=%v", tc.tool, tc.args, err, tc.valid)
		}
	}
}
