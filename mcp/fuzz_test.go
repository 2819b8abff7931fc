package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"

	"github.com/tendops/tend/mcp"
	"github.com/tendops/tend/mcp/wire"
)

// denyAll refuses every call: the fuzzed calls run all the way through
// argument decoding and validation and stop before anything is read or
// created.
type denyAll struct{}

func (denyAll) Authorize(_ context.Context, id mcp.Identity, attrs authzv1.ResourceAttributes) error {
	return fmt.Errorf("%w: %s may not %s %s", mcp.ErrForbidden, id.Username, attrs.Verb, attrs.Resource)
}

var fuzzTools = []string{
	wire.ToolProposeRollback, wire.ToolProposeRestartWorkload, wire.ToolProposeScaleWorkload, wire.ToolProposeSetResources,
	wire.ToolProposePatchWorkload, wire.ToolProposeEvictPod, wire.ToolProposeForceDeletePod, wire.ToolProposeCordonNode,
	wire.ToolProposeUncordonNode, wire.ToolProposeDrainNode, wire.ToolProposeRetryJob, wire.ToolProposeSetAutoscaler,
	wire.ToolProposeRestartContainer, wire.ToolProposePruneImages, wire.ToolProposeCollectDiagnostics,
	wire.ToolListResources, wire.ToolGetResource, wire.ToolGetEvents, wire.ToolGetLogs, wire.ToolGetTelemetry,
	wire.ToolListProposals, wire.ToolGetProposal, wire.ToolExplainDecision, wire.ToolGetPolicies,
}

// offlineClient is a client that never reaches an API server: its REST
// mapping comes from the scheme (so read tools resolve kinds) and its
// address is unroutable. With denyAll, no tool gets as far as a request.
func offlineClient(f testing.TB) client.WithWatch {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		f.Fatal(err)
	}
	if err := tendv1.AddToScheme(scheme); err != nil {
		f.Fatal(err)
	}
	mapper := meta.NewDefaultRESTMapper(nil)
	root := map[string]bool{"Node": true, "Namespace": true, "GatePolicy": true, "ClusterRole": true, "ClusterRoleBinding": true, "PersistentVolume": true, "StorageClass": true}
	for gvk := range scheme.AllKnownTypes() {
		scope := meta.RESTScopeNamespace
		if root[gvk.Kind] {
			scope = meta.RESTScopeRoot
		}
		mapper.Add(gvk, scope)
	}
	c, err := client.NewWithWatch(&rest.Config{Host: "https://127.0.0.1:1"}, client.Options{Scheme: scheme, Mapper: mapper})
	if err != nil {
		f.Fatal(err)
	}
	return c
}

// FuzzToolArguments sends arbitrary arguments to every tool through the MCP
// server's message handling. Every call must end in a tool result or a
// JSON-RPC error, never a panic (the server would turn one into an error
// naming it), and errors stay small whatever the input.
func FuzzToolArguments(f *testing.F) {
	srv, err := mcp.New(mcp.Options{Client: offlineClient(f), Authorizer: denyAll{}})
	if err != nil {
		f.Fatal(err)
	}
	seeds := []string{
		`{}`, `null`, `[]`, `"x"`, `{"namespace":"team","name":"web","summary":"s"}`,
		`{"namespace":"team","name":"web","replicas":-1,"summary":"s"}`,
		`{"namespace":"team","name":"web","container":"app","requests":{"memory":"-1"},"summary":"s"}`,
		`{"namespace":"team","name":"web","patch":[{"op":"replace","path":"/metadata/finalizers","value":[]}],"summary":"s"}`,
		`{"apiVersion":"v1","kind":"Secret","namespace":"team","name":"db"}`,
		`{"apiVersion":"../v1","kind":"","labelSelector":"a in (b"}`,
		`{"kind":"pod","name":"web-1","since":"-5m","limit":1000}`,
		`{"namespace":"` + strings.Repeat("n", 300) + `","name":1e308}`,
	}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	// PruneImages' target and allow-list, and the runtime shim's telemetry kinds.
	prune, telemetry := uint8(slices.Index(fuzzTools, wire.ToolProposePruneImages)), uint8(slices.Index(fuzzTools, wire.ToolGetTelemetry))
	f.Add(prune, []byte(`{"node":"worker-1","targetUsedPercent":70,"keep":["registry.example.com/base/*"],"summary":"s"}`))
	f.Add(prune, []byte(`{"node":"worker-1","targetUsedBytes":1e308,"targetUsedPercent":-1,"keep":["","a b","\u0000"],"summary":"s"}`))
	f.Add(prune, []byte(`{"node":"worker-1","targetUsedBytes":5,"keep":[`+strings.Repeat(`"x y",`, 63)+`"z"],"summary":"s"}`))
	f.Add(telemetry, []byte(`{"kind":"imagefs","name":"worker-1","since":"5m"}`))
	id := mcp.Identity{Username: "fuzzer", Groups: []string{"system:authenticated"}}
	f.Fuzz(func(t *testing.T, which uint8, args []byte) {
		tool := fuzzTools[int(which)%len(fuzzTools)]
		arguments := json.RawMessage(args)
		if !json.Valid(args) {
			quoted, _ := json.Marshal(string(args))
			arguments = quoted
		}
		req, err := json.Marshal(map[string]any{
			"jsonrpc": "2.0", "id": 1, "method": "tools/call",
			"params": map[string]any{"name": tool, "arguments": arguments},
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(srv.HandleMessage(t.Context(), id, req))
		if err != nil {
			t.Fatalf("%s: response does not encode: %v", tool, err)
		}
		if strings.Contains(strings.ToLower(string(out)), "panic") {
			t.Fatalf("%s(%s): %s", tool, args, out)
		}
		if len(out) > 16<<10 {
			t.Fatalf("%s: a %d-byte response for %d bytes of arguments", tool, len(out), len(args))
		}
		var resp struct {
			Result *struct {
				IsError bool `json:"isError"`
			} `json:"result"`
			Error *struct{} `json:"error"`
		}
		if err := json.Unmarshal(out, &resp); err != nil || (resp.Result == nil && resp.Error == nil) {
			t.Fatalf("%s: not a result or an error: %s", tool, out)
		}
		// Nothing gets past the authorizer, so no call succeeds.
		if resp.Result != nil && !resp.Result.IsError {
			t.Fatalf("%s(%s) succeeded past a deny-all authorizer: %s", tool, args, out)
		}
	})
}
