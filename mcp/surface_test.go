package mcp_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	mcpclient "github.com/mark3labs/mcp-go/client"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp"
	"github.com/tendops/tend/mcp/wire"
)

// fullText is everything a tool result carries: its text content and its
// structured content.
func fullText(t *testing.T, res *mcpgo.CallToolResult) string {
	t.Helper()
	raw := res.RawStructuredContent
	if len(raw) == 0 && res.StructuredContent != nil {
		var err error
		if raw, err = json.Marshal(res.StructuredContent); err != nil {
			t.Fatal(err)
		}
	}
	return resultText(res) + string(raw)
}

// decode reads a tool's structured result into out.
func decode(t *testing.T, res *mcpgo.CallToolResult, out any) {
	t.Helper()
	if res.IsError {
		t.Fatalf("tool error: %s", resultText(res))
	}
	raw := res.RawStructuredContent
	if len(raw) == 0 {
		var err error
		if raw, err = json.Marshal(res.StructuredContent); err != nil {
			t.Fatal(err)
		}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("decode result: %v", err)
	}
}

// grantViewer lets service account sa read everything in team (Secrets
// and pod logs included) and the gate policies.
func (c *cluster) grantViewer(t *testing.T, sa string) string {
	t.Helper()
	c.create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: agentsNS, Name: sa}})
	c.create(t, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "viewer-" + sa},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list"}}},
	})
	subject := []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: agentsNS, Name: sa}}
	c.create(t, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "viewer-" + sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "viewer-" + sa},
		Subjects:   subject,
	})
	c.create(t, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "policy-viewer-" + sa},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{tendv1.GroupVersion.Group}, Resources: []string{"gatepolicies"}, Verbs: []string{"get", "list"}}},
	})
	c.create(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "policy-viewer-" + sa},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "policy-viewer-" + sa},
		Subjects:   subject,
	})
	return c.token(t, sa)
}

// validProposeArgs holds valid arguments for every propose tool, each with
// its own fingerprint.
func validProposeArgs(prefix string) map[string]any {
	common := func(name string) wire.Common {
		return wire.Common{Summary: "observed a problem with " + name, Fingerprint: prefix + "-" + name, Risk: "Low"}
	}
	wl := wire.WorkloadArgs{Namespace: teamNS, Name: "web"}
	pod := wire.PodArgs{Namespace: teamNS, Pod: "web-1"}
	node := wire.NodeArgs{Node: "node-1"}
	return map[string]any{
		wire.ToolProposeRollback: func() wire.ProposeRollbackArgs {
			a := rollbackArgs(prefix + "-rollback")
			return a
		}(),
		wire.ToolProposeRestartWorkload:    wire.RestartWorkloadArgs{WorkloadArgs: wl, Common: common("restart")},
		wire.ToolProposeScaleWorkload:      wire.ScaleWorkloadArgs{WorkloadArgs: wl, Replicas: ptr.To[int32](3), Common: common("scale")},
		wire.ToolProposeSetResources:       wire.SetResourcesArgs{WorkloadArgs: wl, Container: "app", Requests: map[string]string{"memory": "256Mi"}, Limits: map[string]string{"memory": "512Mi"}, Common: common("resources")},
		wire.ToolProposePatchWorkload:      wire.PatchWorkloadArgs{WorkloadArgs: wl, Patch: []wire.PatchOp{{Op: "replace", Path: "/spec/template/spec/containers/0/image", Value: json.RawMessage(`"registry.example.com/web:1"`)}}, Common: common("patch")},
		wire.ToolProposeEvictPod:           wire.EvictPodArgs{PodArgs: pod, Common: common("evict")},
		wire.ToolProposeForceDeletePod:     wire.ForceDeletePodArgs{PodArgs: pod, Common: common("force-delete")},
		wire.ToolProposeCordonNode:         wire.CordonNodeArgs{NodeArgs: node, Common: common("cordon")},
		wire.ToolProposeUncordonNode:       wire.UncordonNodeArgs{NodeArgs: node, Common: common("uncordon")},
		wire.ToolProposeDrainNode:          wire.DrainNodeArgs{NodeArgs: node, TimeoutSeconds: ptr.To[int64](300), Common: common("drain")},
		wire.ToolProposeRetryJob:           wire.RetryJobArgs{Namespace: teamNS, Name: "migrate", Common: common("retry")},
		wire.ToolProposeSetAutoscaler:      wire.SetAutoscalerArgs{Namespace: teamNS, Name: "web", MinReplicas: ptr.To[int32](2), MaxReplicas: ptr.To[int32](6), Common: common("hpa")},
		wire.ToolProposeRestartContainer:   wire.RestartContainerArgs{PodArgs: pod, Container: "app", Common: common("restart-container")},
		wire.ToolProposePruneImages:        wire.PruneImagesArgs{NodeArgs: node, TargetUsedPercent: ptr.To[int32](70), Keep: []string{"registry.example.com/base/*"}, Common: common("prune")},
		wire.ToolProposeCollectDiagnostics: wire.CollectDiagnosticsArgs{Namespace: teamNS, Pod: "web-1", Common: common("diagnostics")},
	}
}

var wantActions = map[string]tendv1.Action{
	wire.ToolProposeRollback: tendv1.ActionRollbackWorkload, wire.ToolProposeRestartWorkload: tendv1.ActionRestartWorkload,
	wire.ToolProposeScaleWorkload: tendv1.ActionScaleWorkload, wire.ToolProposeSetResources: tendv1.ActionSetResources,
	wire.ToolProposePatchWorkload: tendv1.ActionPatchWorkload, wire.ToolProposeEvictPod: tendv1.ActionEvictPod,
	wire.ToolProposeForceDeletePod: tendv1.ActionForceDeletePod, wire.ToolProposeCordonNode: tendv1.ActionCordonNode,
	wire.ToolProposeUncordonNode: tendv1.ActionUncordonNode, wire.ToolProposeDrainNode: tendv1.ActionDrainNode,
	wire.ToolProposeRetryJob: tendv1.ActionRetryJob, wire.ToolProposeSetAutoscaler: tendv1.ActionSetAutoscaler,
	wire.ToolProposeRestartContainer: tendv1.ActionRestartContainer, wire.ToolProposePruneImages: tendv1.ActionPruneImages,
	wire.ToolProposeCollectDiagnostics: tendv1.ActionCollectDiagnostics,
}

// proposeToolsListed are the propose tools tools/list offers, by name.
func proposeToolsListed(t *testing.T, c *mcpclient.Client) []string {
	t.Helper()
	res, err := c.ListTools(t.Context(), mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, tool := range res.Tools {
		if _, ok := wantActions[tool.Name]; ok {
			out = append(out, tool.Name)
		}
	}
	slices.Sort(out)
	return out
}

func TestToolSurface(t *testing.T) {
	c := startCluster(t)
	// Proposals for nodes land in team here, where agent-a may create them.
	url := c.serve(t, 200*time.Millisecond, func(o *mcp.Options) { o.ClusterProposalNamespace, o.ShimActions = teamNS, true })
	viewerToken := c.grantViewer(t, "viewer")

	t.Run("every catalogue action has a propose tool and every tool is annotated", func(t *testing.T) {
		res, err := dialRaw(t, url, c.agentToken).ListTools(t.Context(), mcpgo.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]mcpgo.Tool{}
		for _, tool := range res.Tools {
			got[tool.Name] = tool
		}
		if len(wantActions) != len(tendv1.Actions) {
			t.Fatalf("the test covers %d actions, the catalogue has %d", len(wantActions), len(tendv1.Actions))
		}
		for name := range wantActions {
			tool, ok := got[name]
			if !ok {
				t.Errorf("no tool %s", name)
				continue
			}
			if ro := tool.Annotations.ReadOnlyHint; ro == nil || *ro {
				t.Errorf("%s: readOnlyHint %v, want false", name, ro)
			}
			if _, ok := tool.InputSchema.Properties["summary"]; !ok {
				t.Errorf("%s: input schema %+v lacks summary", name, tool.InputSchema)
			}
			info, _ := tendv1.LookupAction(wantActions[name])
			if !strings.Contains(tool.Description, "Acts on "+strings.Join(info.Kinds(), ", ")) || !strings.Contains(tool.Description, "Undo: ") || !strings.Contains(tool.Description, "Disruption: ") {
				t.Errorf("%s: description %q does not say, from the action table, what it acts on, its undo and its disruption", name, tool.Description)
			}
		}
		// agent-a may read proposals, not pods' logs or the gate's policies:
		// it is not offered those two.
		for _, name := range []string{wire.ToolListResources, wire.ToolGetResource, wire.ToolGetEvents, wire.ToolGetTelemetry,
			wire.ToolListProposals, wire.ToolGetProposal, wire.ToolExplainDecision} {
			tool, ok := got[name]
			if !ok {
				t.Errorf("no tool %s", name)
				continue
			}
			if ro := tool.Annotations.ReadOnlyHint; ro == nil || !*ro {
				t.Errorf("%s: readOnlyHint %v, want true", name, ro)
			}
		}
		for _, name := range []string{wire.ToolGetLogs, wire.ToolGetPolicies} {
			if _, ok := got[name]; ok {
				t.Errorf("%s offered to a caller without the right it needs", name)
			}
		}
		if len(got) != len(wantActions)+7 {
			t.Errorf("%d tools, want %d", len(got), len(wantActions)+7)
		}
		// A viewer of team and the policies is offered every read tool and
		// no propose tool.
		res, err = dialRaw(t, url, viewerToken).ListTools(t.Context(), mcpgo.ListToolsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		slices.Sort(names)
		want := []string{wire.ToolExplainDecision, wire.ToolGetEvents, wire.ToolGetLogs, wire.ToolGetPolicies, wire.ToolGetProposal,
			wire.ToolGetResource, wire.ToolGetTelemetry, wire.ToolListProposals, wire.ToolListResources}
		if diff := cmp.Diff(want, names); diff != "" {
			t.Errorf("viewer's tools (-want +got):\n%s", diff)
		}
	})

	t.Run("a caller without create proposals is offered no propose tool and can call none", func(t *testing.T) {
		raw := dialRaw(t, url, c.readerToken)
		if got := proposeToolsListed(t, raw); len(got) != 0 {
			t.Errorf("reader is offered %v, want no propose tool", got)
		}
		for name, args := range validProposeArgs("forbidden") {
			req := mcpgo.CallToolRequest{}
			req.Params.Name, req.Params.Arguments = name, args
			res, err := raw.CallTool(t.Context(), req)
			if err == nil && !res.IsError {
				t.Errorf("%s as reader: %s, want it refused", name, resultText(res))
			}
		}
		for _, p := range c.proposalsWithPrefix(t, "forbidden-") {
			t.Errorf("proposal %s (%s) was created for a caller without create", p.Name, p.Spec.Fingerprint)
		}
	})

	t.Run("a role that lists actions as resourceNames narrows the tools offered and callable", func(t *testing.T) {
		const sa = "narrow"
		c.create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: agentsNS, Name: sa}})
		c.create(t, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: sa},
			Rules: []rbacv1.PolicyRule{{APIGroups: []string{tendv1.GroupVersion.Group}, Resources: []string{"proposals"}, Verbs: []string{"create"},
				ResourceNames: []string{string(tendv1.ActionRestartWorkload), string(tendv1.ActionScaleWorkload)}}},
		})
		c.create(t, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: sa},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: agentsNS, Name: sa}},
		})
		raw := dialRaw(t, url, c.token(t, sa))
		want := []string{wire.ToolProposeRestartWorkload, wire.ToolProposeScaleWorkload}
		if diff := cmp.Diff(want, proposeToolsListed(t, raw)); diff != "" {
			t.Errorf("tools offered mismatch (-want +got):\n%s", diff)
		}
		args := validProposeArgs("narrow")
		var res wire.ProposeResult
		decode(t, callTool(t, raw, wire.ToolProposeScaleWorkload, args[wire.ToolProposeScaleWorkload]), &res)
		if res.Name == "" || !strings.Contains(res.Undo, "RolledBack") {
			t.Errorf("scale result %+v, want a proposal whose result says it is undone on a failed verification", res)
		}
		req := mcpgo.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = wire.ToolProposeRestartContainer, args[wire.ToolProposeRestartContainer]
		if res, err := raw.CallTool(t.Context(), req); err == nil && !res.IsError {
			t.Errorf("propose_restart_container by a caller narrowed to two actions: %s, want it refused", resultText(res))
		}
		if got := c.proposalsWithPrefix(t, "narrow-"); len(got) != 1 || got[0].Spec.Action != tendv1.ActionScaleWorkload {
			t.Errorf("proposals made: %d, want only the scale", len(got))
		}
	})

	t.Run("every propose tool records the token's identity as the proposer and changes nothing else", func(t *testing.T) {
		raw := dialRaw(t, url, c.agentToken)
		for name, args := range validProposeArgs("made") {
			var res wire.ProposeResult
			decode(t, callTool(t, raw, name, args), &res)
			if res.Name == "" || res.Duplicate {
				t.Errorf("%s: result %+v, want a new proposal", name, res)
			}
		}
		made := c.proposalsWithPrefix(t, "made-")
		if len(made) != len(wantActions) {
			t.Fatalf("%d proposals, want %d", len(made), len(wantActions))
		}
		actions := map[tendv1.Action]bool{}
		for _, p := range made {
			actions[p.Spec.Action] = true
			if p.Spec.Proposer.Username != agentSA {
				t.Errorf("%s: proposer %q, want %q", p.Name, p.Spec.Proposer.Username, agentSA)
			}
		}
		for _, a := range tendv1.Actions {
			if !actions[a] {
				t.Errorf("no proposal for action %s", a)
			}
		}
		d := c.deployment.DeepCopy()
		if err := c.admin.Get(t.Context(), client.ObjectKeyFromObject(d), d); err != nil {
			t.Fatal(err)
		}
		if d.ResourceVersion != c.deployment.ResourceVersion {
			t.Errorf("deployment changed by a propose tool")
		}
	})

	t.Run("a planted Secret value never appears in any tool result", func(t *testing.T) {
		value := "planted-" + rand.String(24)
		encoded := base64.StdEncoding.EncodeToString([]byte(value))
		secret := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "db-credentials", Annotations: map[string]string{
				corev1.LastAppliedConfigAnnotation: fmt.Sprintf(`{"apiVersion":"v1","kind":"Secret","stringData":{"password":%q}}`, value),
				"owner":                            "payments",
			}},
			Data: map[string][]byte{"password": []byte(value), "username": []byte("app")},
		}
		c.create(t, secret)
		c.create(t, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "api-0"},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "registry.example.com/api:1", Env: []corev1.EnvVar{
				{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "db-credentials"}, Key: "password",
				}}},
			}}}},
		})
		c.create(t, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Namespace: teamNS, Name: "api-0.secret"},
			InvolvedObject: corev1.ObjectReference{Kind: "Secret", Namespace: teamNS, Name: "db-credentials"},
			Reason:         "Mounted", Message: "secret mounted by api-0", Type: corev1.EventTypeNormal,
			LastTimestamp: metav1.Now(),
		})
		pub := bus.NewPublisher(c.js, repeatCluster, "test")
		if _, err := pub.Publish(t.Context(), &bus.Envelope{
			ID:     "api-0/1",
			Object: bus.ObjectRef{Kind: bus.KindPod, Namespace: teamNS, Name: "api-0", UID: "u1"},
			Pod:    &bus.PodState{Phase: "Running", Containers: []bus.ContainerState{{Name: "api", State: bus.ContainerRunning}}},
		}); err != nil {
			t.Fatalf("publish telemetry: %v", err)
		}

		raw := dialRaw(t, url, viewerToken)
		var seen []string
		call := func(name string, args any) *mcpgo.CallToolResult {
			res := callTool(t, raw, name, args)
			text := fullText(t, res)
			if strings.Contains(text, value) || strings.Contains(text, encoded) {
				t.Errorf("%s %v: the Secret value is in the result", name, args)
			}
			seen = append(seen, name)
			return res
		}

		// The Secret itself: its keys are shown, its values never.
		var one wire.Resource
		decode(t, call(wire.ToolGetResource, wire.GetResourceArgs{APIVersion: "v1", Kind: "Secret", Namespace: teamNS, Name: "db-credentials"}), &one)
		if data, _ := one.Object["data"].(map[string]any); data["password"] != mcp.Redacted || data["username"] != mcp.Redacted {
			t.Errorf("secret data %v, want every value redacted", one.Object["data"])
		}
		if md, _ := one.Object["metadata"].(map[string]any); md["annotations"].(map[string]any)["owner"] != "payments" {
			t.Errorf("secret metadata %v, want its other annotations", md)
		}
		var secrets wire.ResourceList
		decode(t, call(wire.ToolListResources, wire.ListResourcesArgs{APIVersion: "v1", Kind: "Secret", Namespace: teamNS}), &secrets)
		if len(secrets.Items) == 0 {
			t.Error("list_resources found no Secrets in team")
		}
		// Every kind the API server serves, in team and cluster-wide.
		dc, err := discovery.NewDiscoveryClientForConfig(c.env.Config)
		if err != nil {
			t.Fatal(err)
		}
		lists, err := discovery.ServerPreferredResources(dc)
		if err != nil {
			t.Fatal(err)
		}
		kinds := 0
		for _, l := range lists {
			for _, r := range l.APIResources {
				if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") {
					continue
				}
				kinds++
				call(wire.ToolListResources, wire.ListResourcesArgs{APIVersion: l.GroupVersion, Kind: r.Kind, Namespace: teamNS})
				call(wire.ToolListResources, wire.ListResourcesArgs{APIVersion: l.GroupVersion, Kind: r.Kind})
			}
		}
		if kinds < 20 {
			t.Errorf("only %d kinds listed", kinds)
		}
		var pod wire.Resource
		decode(t, call(wire.ToolGetResource, wire.GetResourceArgs{APIVersion: "v1", Kind: "Pod", Namespace: teamNS, Name: "api-0"}), &pod)
		var events wire.Events
		decode(t, call(wire.ToolGetEvents, wire.GetEventsArgs{Namespace: teamNS, Kind: "Secret", Name: "db-credentials"}), &events)
		if len(events.Events) != 1 || events.Events[0].Reason != "Mounted" {
			t.Errorf("events %+v, want the one about the Secret", events.Events)
		}
		var tel wire.Telemetry
		decode(t, call(wire.ToolGetTelemetry, wire.GetTelemetryArgs{Kind: "pod", Namespace: teamNS, Name: "api-0"}), &tel)
		if len(tel.Messages) != 1 || tel.Messages[0].Envelope.Pod == nil || tel.Messages[0].Subject != bus.TelemetrySubject(repeatCluster, bus.KindPod, teamNS, "api-0") {
			t.Errorf("telemetry %+v, want the one message published, on the subject it was published on", tel.Messages)
		}
		// envtest runs no kubelet; the API server answers an unscheduled
		// pod's logs with nothing.
		call(wire.ToolGetLogs, wire.GetLogsArgs{Namespace: teamNS, Pod: "api-0"})
		call(wire.ToolListProposals, wire.ListProposalsArgs{Namespace: teamNS})
		call(wire.ToolGetPolicies, wire.GetPoliciesArgs{})
		t.Logf("checked %d tool results over %d kinds", len(seen), kinds)
	})

	t.Run("env values and annotations are redacted when configured", func(t *testing.T) {
		c.create(t, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "literal-env", Annotations: map[string]string{"note": "annotation-text"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/app:1",
				Env: []corev1.EnvVar{{Name: "DATABASE_URL", Value: "postgres://app:literal-password@db:5432/app"}}}}},
		})
		args := wire.GetResourceArgs{APIVersion: "v1", Kind: "Pod", Namespace: teamNS, Name: "literal-env"}
		plain := fullText(t, callTool(t, dialRaw(t, url, viewerToken), wire.ToolGetResource, args))
		if !strings.Contains(plain, "literal-password") || !strings.Contains(plain, "annotation-text") {
			t.Fatalf("by default env values and annotations are shown: %s", plain)
		}
		redacting := c.serve(t, time.Second, func(o *mcp.Options) { o.Redact = mcp.Redaction{EnvValues: true, Annotations: true} })
		text := fullText(t, callTool(t, dialRaw(t, redacting, viewerToken), wire.ToolGetResource, args))
		if strings.Contains(text, "literal-password") || strings.Contains(text, "annotation-text") || !strings.Contains(text, "DATABASE_URL") {
			t.Errorf("with redaction: %s", text)
		}
	})

	t.Run("read tools are authorized per call", func(t *testing.T) {
		// The reader may get proposals and nothing else.
		raw := dialRaw(t, url, c.readerToken)
		for name, args := range map[string]any{
			wire.ToolGetResource:   wire.GetResourceArgs{APIVersion: "v1", Kind: "Secret", Namespace: teamNS, Name: "db-credentials"},
			wire.ToolListResources: wire.ListResourcesArgs{APIVersion: "v1", Kind: "Pod", Namespace: teamNS},
			wire.ToolGetEvents:     wire.GetEventsArgs{Namespace: teamNS, Kind: "Pod", Name: "api-0"},
			wire.ToolGetTelemetry:  wire.GetTelemetryArgs{Kind: "pod", Namespace: teamNS, Name: "api-0"},
		} {
			res := callTool(t, raw, name, args)
			if !res.IsError || !strings.Contains(resultText(res), "forbidden") {
				t.Errorf("%s as reader: %s, want forbidden", name, resultText(res))
			}
		}
		// A tool that needs a right the reader holds nowhere is not offered,
		// and cannot be called.
		req := mcpgo.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = wire.ToolGetPolicies, wire.GetPoliciesArgs{}
		if res, err := raw.CallTool(t.Context(), req); err == nil {
			t.Errorf("get_policies as reader: %s, want it unknown", resultText(res))
		}
	})

	t.Run("each identity has its own rate limit", func(t *testing.T) {
		limited := c.serve(t, time.Second, func(o *mcp.Options) { o.RateLimit, o.Burst = 0.01, 3 })
		// The reader may get proposals: it is offered get_proposal.
		args := wire.GetProposalArgs{Namespace: teamNS, Name: "none"}
		reader := dialRaw(t, limited, c.readerToken)
		for i := range 3 {
			if res := callTool(t, reader, wire.ToolGetProposal, args); res.IsError && strings.Contains(resultText(res), "rate limited") {
				t.Fatalf("call %d within the burst was rate limited", i+1)
			}
		}
		before := rateLimited(t)
		res := callTool(t, reader, wire.ToolGetProposal, args)
		if !res.IsError || !strings.Contains(resultText(res), "rate limited") || !strings.Contains(resultText(res), readerSA) {
			t.Errorf("fourth call: %s, want rate limited", resultText(res))
		}
		if after := rateLimited(t); after != before+1 {
			t.Errorf("tend_mcp_rate_limited_total went from %v to %v, want one more", before, after)
		}
		// Another identity is not affected.
		if res := callTool(t, dialRaw(t, limited, viewerToken), wire.ToolGetProposal, args); strings.Contains(resultText(res), "rate limited") {
			t.Errorf("another identity: %s", resultText(res))
		}
	})
}

// rateLimited reads tend_mcp_rate_limited_total as a registry with the MCP
// server's metrics exports it.
func rateLimited(t *testing.T) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := mcp.Register(reg); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tend_mcp_rate_limited_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("tend_mcp_rate_limited_total is not exported")
	return 0
}

// proposalsWithPrefix returns the proposals in team whose fingerprint
// starts with prefix.
func (c *cluster) proposalsWithPrefix(t *testing.T, prefix string) []tendv1.Proposal {
	t.Helper()
	return c.proposalsWhere(t, func(fp string) bool { return strings.HasPrefix(fp, prefix) })
}
