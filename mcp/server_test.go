package mcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/api/crds"
	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp"
	"github.com/tendops/tend/mcp/wire"
)

const (
	teamNS   = "team"
	otherNS  = "other"
	agentsNS = "tend-agents"
	// waitTimeout bounds every wait on the API server; tests never wait for time itself.
	waitTimeout = 30 * time.Second
)

// cluster is a real kube-apiserver and etcd with tend's CRDs installed, the
// identities of the test and an MCP server in front of it.
type cluster struct {
	env    *envtest.Environment
	scheme *runtime.Scheme
	// admin is the server's own client (system:masters).
	admin client.WithWatch
	// agentToken and readerToken are service account tokens issued by the
	// API server: agent-a may create and get proposals in team and get
	// deployments; reader may only get proposals.
	agentToken, readerToken string
	// agentUser and readerUser are envtest users (client certificates) with
	// the same rights as the service accounts.
	agentUser, readerUser *envtest.AuthenticatedUser
	deployment            *appsv1.Deployment
	// js reaches the NATS server the MCP server publishes repeats to.
	js jetstream.JetStream
}

// repeatCluster names the cluster in repeat subjects.
const repeatCluster = "envtest"

const (
	agentSA  = "system:serviceaccount:" + agentsNS + ":agent-a"
	readerSA = "system:serviceaccount:" + agentsNS + ":reader"
)

func startCluster(t testing.TB) *cluster {
	t.Helper()
	ctrllog.SetLogger(logr.Discard())
	assets := os.Getenv("TEND_BIN_DIR")
	if assets == "" {
		var err error
		if assets, err = filepath.Abs(filepath.Join("..", "bin")); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			t.Fatalf("control plane binary %s missing from %s: run make tools (%v)", b, assets, err)
		}
	}
	all, err := crds.All()
	if err != nil {
		t.Fatalf("crds.All: %v", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := tendv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDs:                  all,
		Scheme:                scheme,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("failed to start envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("failed to stop envtest: %v", err)
		}
	})
	admin, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	c := &cluster{env: env, scheme: scheme, admin: admin}

	for _, ns := range []string{teamNS, otherNS, agentsNS} {
		c.create(t, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	c.deployment = &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/web:2"}}},
			},
		},
	}
	c.create(t, c.deployment)
	// The other targets the propose tools name: proposals pin an object
	// that exists.
	c.create(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "web-1", Labels: map[string]string{"app": "web"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/web:2"}}},
	})
	c.create(t, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}})
	c.create(t, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "migrate"},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "migrate", Image: "registry.example.com/migrate:1"}},
		}}},
	})
	c.create(t, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 3,
		},
	})

	proposals := func(verbs ...string) rbacv1.PolicyRule {
		return rbacv1.PolicyRule{APIGroups: []string{tendv1.GroupVersion.Group}, Resources: []string{"proposals"}, Verbs: verbs}
	}
	c.create(t, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "proposer"},
		Rules: []rbacv1.PolicyRule{
			proposals("create", "get", "list", "watch"),
			{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get"}},
		},
	})
	c.create(t, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: "proposal-reader"},
		Rules:      []rbacv1.PolicyRule{proposals("get")},
	})
	for _, b := range []struct{ name, role, sa, user string }{
		{"agent-a", "proposer", "agent-a", "agent-a"},
		{"reader", "proposal-reader", "reader", "reader"},
	} {
		c.create(t, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: agentsNS, Name: b.sa}})
		c.create(t, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, Name: b.name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: b.role},
			Subjects: []rbacv1.Subject{
				{Kind: rbacv1.ServiceAccountKind, Namespace: agentsNS, Name: b.sa},
				{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: b.user},
			},
		})
	}
	// Proposing a change to a node is a cluster-wide right, on the
	// subresource proposals/cluster: agent-a holds it through a
	// ClusterRoleBinding, and it grants nothing in any namespace.
	c.create(t, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "node-proposer"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{tendv1.GroupVersion.Group}, Resources: []string{"proposals/cluster"}, Verbs: []string{"create"}},
	}})
	c.create(t, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "node-proposer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "node-proposer"},
		Subjects: []rbacv1.Subject{
			{Kind: rbacv1.ServiceAccountKind, Namespace: agentsNS, Name: "agent-a"},
			{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "agent-a"},
		},
	})
	c.agentToken = c.token(t, "agent-a")
	c.readerToken = c.token(t, "reader")

	if c.agentUser, err = env.AddUser(envtest.User{Name: "agent-a"}, nil); err != nil {
		t.Fatalf("AddUser agent-a: %v", err)
	}
	if c.readerUser, err = env.AddUser(envtest.User{Name: "reader"}, nil); err != nil {
		t.Fatalf("AddUser reader: %v", err)
	}
	return c
}

func (c *cluster) create(t testing.TB, obj client.Object) {
	t.Helper()
	if err := c.admin.Create(t.Context(), obj); err != nil {
		t.Fatalf("failed to create %T %s: %v", obj, obj.GetName(), err)
	}
}

// token asks the API server for a bound token of a service account through
// the TokenRequest API, as the kubelet does for a projected volume.
func (c *cluster) token(t testing.TB, sa string) string {
	t.Helper()
	obj := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: agentsNS, Name: sa}}
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	if err := c.admin.SubResource("token").Create(t.Context(), obj, tr); err != nil {
		t.Fatalf("TokenRequest for %s: %v", sa, err)
	}
	if tr.Status.Token == "" {
		t.Fatalf("TokenRequest for %s returned no token", sa)
	}
	return tr.Status.Token
}

// serve runs tend's MCP server with the real authenticator and authorizer
// on a loopback HTTP server and returns its URL.
func (c *cluster) serve(t testing.TB, decisionWait time.Duration, configure ...func(*mcp.Options)) string {
	t.Helper()
	if c.js == nil {
		nats, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir()})
		if err != nil {
			t.Fatalf("failed to start NATS: %v", err)
		}
		t.Cleanup(nats.Shutdown)
		nc, js, err := bus.Connect(t.Context(), nats.URL(), t.Name())
		if err != nil {
			t.Fatalf("failed to connect to NATS: %v", err)
		}
		t.Cleanup(nc.Close)
		if err := bus.EnsureStreams(t.Context(), js, bus.StreamsConfig{}); err != nil {
			t.Fatalf("failed to create streams: %v", err)
		}
		c.js = js
	}
	opts := mcp.Options{
		Client:        c.admin,
		Authenticator: &mcp.TokenReviewAuthenticator{Client: c.admin},
		Authorizer:    &mcp.SubjectAccessReviewAuthorizer{Client: c.admin},
		DecisionWait:  decisionWait,
		Repeats:       bus.NewRepeatPublisher(c.js, repeatCluster),
		Cluster:       repeatCluster,
		Telemetry:     c.js,
		Logs:          &mcp.KubeLogs{Clientset: kubernetes.NewForConfigOrDie(c.env.Config)},
		// The default rate limit would throttle the tests' bursts.
		RateLimit: 1000, Burst: 1000,
		// agent-a's rights are in team.
		ToolNamespaces: []string{teamNS},
	}
	// Reads of the common kinds come from informers, as in tend's
	// deployments.
	reader, err := mcp.StartReadCache(t.Context(), c.env.Config, c.scheme, nil)
	if err != nil {
		t.Fatalf("StartReadCache: %v", err)
	}
	opts.Reader = reader
	for _, f := range configure {
		f(&opts)
	}
	srv, err := mcp.New(opts)
	if err != nil {
		t.Fatalf("mcp.New: %v", err)
	}
	// The MCP endpoint, and a trivial handler on the same server for the
	// raw HTTP reference of the benchmarks.
	mux := http.NewServeMux()
	srv.Mount(mux, "/mcp")
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts.URL + "/mcp"
}

// proposals returns the proposals in team with fingerprint fp.
func (c *cluster) proposals(t testing.TB, fp string) []tendv1.Proposal {
	t.Helper()
	return c.proposalsWhere(t, func(got string) bool { return got == fp })
}

// proposalsWhere returns the proposals in team whose fingerprint keep
// accepts.
func (c *cluster) proposalsWhere(t testing.TB, keep func(fingerprint string) bool) []tendv1.Proposal {
	t.Helper()
	var list tendv1.ProposalList
	if err := c.admin.List(t.Context(), &list, client.InNamespace(teamNS)); err != nil {
		t.Fatalf("list proposals: %v", err)
	}
	var out []tendv1.Proposal
	for _, p := range list.Items {
		if keep(p.Spec.Fingerprint) {
			out = append(out, p)
		}
	}
	return out
}

// decide writes a gate decision into a proposal's status, as the proposal
// controller would.
func (c *cluster) decide(ctx context.Context, name string) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		p := &tendv1.Proposal{}
		if err := c.admin.Get(ctx, client.ObjectKey{Namespace: teamNS, Name: name}, p); err != nil {
			return err
		}
		p.Status.Phase = tendv1.PhaseAwaitingApproval
		p.Status.Decision = &tendv1.Decision{
			Outcome:           tendv1.OutcomeRequireApproval,
			Reasons:           []tendv1.Reason{{Code: "ProductionNamespace", Message: "Rollbacks in team need one approver.", Policy: "default", Rule: "prod"}},
			RequiredApprovals: 1,
			SpecHash:          "sha256:test",
			DecidedAt:         metav1.Now(),
		}
		return c.admin.Status().Update(ctx, p)
	})
}

func static(token string) agents.TokenSource {
	return func(context.Context) (string, error) { return token, nil }
}

func dialTools(t *testing.T, url, token string) *agents.ToolClient {
	t.Helper()
	tc, err := agents.DialTools(t.Context(), url, "maintenance", static(token))
	if err != nil {
		t.Fatalf("DialTools: %v", err)
	}
	t.Cleanup(func() { _ = tc.Close() })
	return tc
}

// dialRaw opens an MCP session with mcp-go's client, for calls the agent's
// client does not make (get_proposal, arguments of the wrong shape).
func dialRaw(t testing.TB, url, token string) *mcpclient.Client {
	t.Helper()
	c, err := mcpclient.NewStreamableHttpClient(url, transport.WithHTTPHeaders(map[string]string{"Authorization": "Bearer " + token}))
	if err != nil {
		t.Fatalf("NewStreamableHttpClient: %v", err)
	}
	if err := c.Start(t.Context()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	req := mcpgo.InitializeRequest{}
	req.Params.ClientInfo = mcpgo.Implementation{Name: "test", Version: "0"}
	if _, err := c.Initialize(t.Context(), req); err != nil {
		t.Fatalf("Initialize: %v", err)
	}
	return c
}

func callTool(t testing.TB, c *mcpclient.Client, name string, args any) *mcpgo.CallToolResult {
	t.Helper()
	req := mcpgo.CallToolRequest{}
	req.Params.Name, req.Params.Arguments = name, args
	res, err := c.CallTool(t.Context(), req)
	if err != nil {
		t.Fatalf("CallTool %s: %v", name, err)
	}
	return res
}

func resultText(res *mcpgo.CallToolResult) string {
	var texts []string
	for _, c := range res.Content {
		if tc, ok := mcpgo.AsTextContent(c); ok {
			texts = append(texts, tc.Text)
		}
	}
	return strings.Join(texts, "; ")
}

func getProposal(t *testing.T, c *mcpclient.Client, name string) wire.ProposalView {
	t.Helper()
	res := callTool(t, c, wire.ToolGetProposal, wire.GetProposalArgs{Namespace: teamNS, Name: name})
	if res.IsError {
		t.Fatalf("get_proposal %s: %s", name, resultText(res))
	}
	raw := res.RawStructuredContent
	if len(raw) == 0 {
		var err error
		if raw, err = json.Marshal(res.StructuredContent); err != nil {
			t.Fatal(err)
		}
	}
	var v wire.ProposalView
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decode get_proposal result: %v", err)
	}
	return v
}

func rollbackArgs(fp string) wire.ProposeRollbackArgs {
	return wire.ProposeRollbackArgs{
		Namespace: teamNS, Name: "web", FromRevision: 2, ToRevision: 1,
		Common: wire.Common{
			Summary:     "1 of 1 pods of revision 2 of deployment team/web are crash-looping; revision 1 was healthy",
			Risk:        "Low",
			Telemetry:   []wire.TelemetryRef{{Subject: "tend.telemetry.test.pod.team.web-2-a", Sequence: 3, ID: "uid/3"}},
			Fingerprint: fp,
			Agent:       "maintenance",
		},
	}
}

const initializeBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"0"}}}`

func post(t *testing.T, url, authorization string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(initializeBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func TestServer(t *testing.T) {
	c := startCluster(t)
	url := c.serve(t, time.Second)

	t.Run("requests without a valid token are refused", func(t *testing.T) {
		for _, tc := range []struct{ name, authorization string }{
			{"no token", ""},
			{"empty bearer", "Bearer "},
			{"other scheme", "Basic " + c.agentToken},
			{"garbage token", "Bearer garbage"},
			{"tampered token", "Bearer " + c.agentToken[:len(c.agentToken)-4] + "AAAA"},
		} {
			resp := post(t, url, tc.authorization)
			if resp.StatusCode != http.StatusUnauthorized {
				body, _ := io.ReadAll(resp.Body)
				t.Errorf("%s: status %d (%s), want 401", tc.name, resp.StatusCode, body)
			}
			if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", tc.name, resp.Header.Get("WWW-Authenticate"))
			}
		}
		// The same request with a valid token is served.
		if resp := post(t, url, "Bearer "+c.agentToken); resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(resp.Body)
			t.Errorf("valid token: status %d (%s), want 200", resp.StatusCode, body)
		}
		if _, err := agents.DialTools(t.Context(), url, "maintenance", static("garbage")); err == nil {
			t.Error("DialTools with a garbage token succeeded")
		}
	})

	t.Run("a proposer may shorten its proposal's life, never lengthen it", func(t *testing.T) {
		tools := dialTools(t, url, c.agentToken)
		for _, tc := range []struct {
			fingerprint string
			in          int64
			want        time.Duration
		}{{"expires-in-a-minute", 60, time.Minute}, {"expires-in-a-week", 7 * 24 * 3600, time.Hour}} {
			args := rollbackArgs(tc.fingerprint)
			args.ExpiresInSeconds = tc.in
			if _, err := tools.ProposeRollback(t.Context(), args); err != nil {
				t.Fatalf("ProposeRollback: %v", err)
			}
			got := c.proposals(t, tc.fingerprint)
			if len(got) != 1 || got[0].Spec.ExpiresAt == nil {
				t.Fatalf("%s: got %d proposals, want 1 with an expiry", tc.fingerprint, len(got))
			}
			life := got[0].Spec.ExpiresAt.Sub(got[0].CreationTimestamp.Time)
			if life < tc.want-5*time.Second || life > tc.want+5*time.Second {
				t.Errorf("%s: expires %s after creation, want about %s", tc.fingerprint, life, tc.want)
			}
		}
	})

	t.Run("the proposer is the authenticated caller", func(t *testing.T) {
		tools := dialTools(t, url, c.agentToken)
		args := rollbackArgs("proposer-is-caller")
		args.Agent = "system:admin"
		res, err := tools.ProposeRollback(t.Context(), args)
		if err != nil {
			t.Fatalf("ProposeRollback: %v", err)
		}
		got := c.proposals(t, args.Fingerprint)
		if len(got) != 1 {
			t.Fatalf("got %d proposals, want 1", len(got))
		}
		p := got[0]
		if res.Name != p.Name || res.Namespace != teamNS || res.Duplicate {
			t.Errorf("result %+v does not name the new proposal %s", res, p.Name)
		}
		if p.Spec.Proposer.Username != agentSA {
			t.Errorf("proposer %q, want %q", p.Spec.Proposer.Username, agentSA)
		}
		for _, g := range []string{"system:serviceaccounts", "system:serviceaccounts:" + agentsNS, "system:authenticated"} {
			if !slices.Contains(p.Spec.Proposer.Groups, g) {
				t.Errorf("proposer groups %v lack %q", p.Spec.Proposer.Groups, g)
			}
		}
		// The agent's name for itself is kept for the record only.
		if p.Spec.Proposer.Agent != "system:admin" {
			t.Errorf("proposer agent %q, want the caller's text", p.Spec.Proposer.Agent)
		}
		wantSpec := tendv1.ProposalSpec{
			Action: tendv1.ActionRollbackWorkload,
			Target: tendv1.TargetRef{
				APIVersion: "apps/v1", Kind: "Deployment", Namespace: teamNS, Name: "web",
				UID: c.deployment.UID, ResourceVersion: c.deployment.ResourceVersion, Generation: c.deployment.Generation,
			},
			Parameters: tendv1.Parameters{Rollback: &tendv1.RollbackParameters{FromRevision: 2, ToRevision: 1}},
			Evidence: tendv1.Evidence{Summary: args.Summary, Telemetry: []tendv1.TelemetryRef{
				{Subject: "tend.telemetry.test.pod.team.web-2-a", Sequence: 3, ID: "uid/3"},
			}},
			Risk:        tendv1.RiskLow,
			Proposer:    p.Spec.Proposer,
			Fingerprint: args.Fingerprint,
			ExpiresAt:   p.Spec.ExpiresAt,
		}
		if diff := cmp.Diff(wantSpec, p.Spec); diff != "" {
			t.Errorf("proposal spec (-want +got):\n%s", diff)
		}
		if p.Spec.ExpiresAt == nil || !p.Spec.ExpiresAt.After(p.CreationTimestamp.Time) {
			t.Errorf("expiresAt %v is not after creation %v", p.Spec.ExpiresAt, p.CreationTimestamp)
		}

		// Fields naming another proposer are not arguments: the call is
		// refused, naming them. The agent's own name for itself is kept for
		// the record and changes nothing.
		raw := dialRaw(t, url, c.agentToken)
		res2 := callTool(t, raw, wire.ToolProposeRollback, map[string]any{
			"namespace": teamNS, "name": "web", "summary": "crash-looping", "fingerprint": "proposer-spoofed",
			"agent": "system:admin", "proposer": map[string]any{"username": "system:admin", "groups": []string{"system:masters"}},
			"username": "system:admin",
		})
		if !res2.IsError || !strings.Contains(resultText(res2), `unknown arguments "proposer", "username"`) {
			t.Fatalf("propose_rollback with proposer fields: %s, want them refused by name", resultText(res2))
		}
		if got := c.proposals(t, "proposer-spoofed"); len(got) != 0 {
			t.Fatalf("got %d proposals from a refused call", len(got))
		}
		res2 = callTool(t, raw, wire.ToolProposeRollback, map[string]any{
			"namespace": teamNS, "name": "web", "summary": "crash-looping", "fingerprint": "proposer-spoofed", "agent": "system:admin",
		})
		if res2.IsError {
			t.Fatalf("propose_rollback naming itself system:admin: %s", resultText(res2))
		}
		spoofed := c.proposals(t, "proposer-spoofed")
		if len(spoofed) != 1 {
			t.Fatalf("got %d proposals, want 1", len(spoofed))
		}
		if u, g := spoofed[0].Spec.Proposer.Username, spoofed[0].Spec.Proposer.Groups; u != agentSA || slices.Contains(g, "system:masters") {
			t.Errorf("proposer %q %v, want %q without system:masters", u, g, agentSA)
		}

		// The only write is the proposal: the target is untouched.
		d := &appsv1.Deployment{}
		if err := c.admin.Get(t.Context(), client.ObjectKeyFromObject(c.deployment), d); err != nil {
			t.Fatal(err)
		}
		if d.ResourceVersion != c.deployment.ResourceVersion {
			t.Errorf("deployment changed: resourceVersion %s, was %s", d.ResourceVersion, c.deployment.ResourceVersion)
		}
	})

	t.Run("a caller without create on proposals is refused", func(t *testing.T) {
		for _, tc := range []struct {
			name, token, namespace, want string
		}{
			// The reader may propose nothing, so it is not offered the tool.
			{"reader", c.readerToken, teamNS, "not found"},
			{"agent in another namespace", c.agentToken, otherNS, agentSA + " may not create proposals.tend.dev in namespace other"},
		} {
			tools := dialTools(t, url, tc.token)
			args := rollbackArgs("forbidden-" + tc.name)
			args.Namespace = tc.namespace
			res, err := tools.ProposeRollback(t.Context(), args)
			if err == nil {
				t.Fatalf("%s: ProposeRollback = %+v; want an error", tc.name, res)
			}
			if tc.name == "reader" {
				if !strings.Contains(err.Error(), tc.want) {
					t.Errorf("%s: error %q, want the tool not found", tc.name, err)
				}
			} else if !errors.Is(err, agents.ErrToolFailed) || !strings.Contains(err.Error(), "forbidden") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: error %q, want it to say forbidden: %s", tc.name, err, tc.want)
			}
			var list tendv1.ProposalList
			if err := c.admin.List(t.Context(), &list, client.InNamespace(tc.namespace)); err != nil {
				t.Fatal(err)
			}
			for _, p := range list.Items {
				if p.Spec.Fingerprint == args.Fingerprint {
					t.Errorf("%s: proposal %s was created", tc.name, p.Name)
				}
			}
		}
		// get is authorized separately: the reader may read a proposal.
		made, err := dialTools(t, url, c.agentToken).ProposeRollback(t.Context(), rollbackArgs("read-by-reader"))
		if err != nil {
			t.Fatalf("ProposeRollback: %v", err)
		}
		v := getProposal(t, dialRaw(t, url, c.readerToken), made.Name)
		if v.Proposer != agentSA || v.Name != made.Name {
			t.Errorf("reader saw %+v", v)
		}
	})

	t.Run("the authorizer agrees with the API server", func(t *testing.T) {
		authz := &mcp.SubjectAccessReviewAuthorizer{Client: c.admin}
		create := authzv1.ResourceAttributes{Namespace: teamNS, Verb: "create", Group: tendv1.GroupVersion.Group, Resource: "proposals"}
		for _, u := range []struct {
			user    *envtest.AuthenticatedUser
			name    string
			allowed bool
		}{{c.agentUser, "agent-a", true}, {c.readerUser, "reader", false}} {
			// The API server's own enforcement, for the user's client certificate.
			uc, err := client.New(u.user.Config(), client.Options{Scheme: c.scheme})
			if err != nil {
				t.Fatal(err)
			}
			p := &tendv1.Proposal{
				ObjectMeta: metav1.ObjectMeta{Namespace: teamNS, GenerateName: "direct-"},
				Spec: tendv1.ProposalSpec{
					Action: tendv1.ActionRollbackWorkload, Target: tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: teamNS, Name: "web", UID: c.deployment.UID},
					Proposer: tendv1.Proposer{Username: u.name},
				},
			}
			apiErr := uc.Create(t.Context(), p, client.DryRunAll)
			if u.allowed != (apiErr == nil) {
				t.Fatalf("%s: API server create (dry run) = %v, want allowed=%v", u.name, apiErr, u.allowed)
			}
			if !u.allowed && !apierrors.IsForbidden(apiErr) {
				t.Fatalf("%s: API server create = %v, want Forbidden", u.name, apiErr)
			}
			err = authz.Authorize(t.Context(), mcp.Identity{Username: u.name, Groups: []string{"system:authenticated"}}, create)
			if u.allowed && err != nil {
				t.Errorf("%s: Authorize = %v, want allowed", u.name, err)
			}
			if !u.allowed && !errors.Is(err, mcp.ErrForbidden) {
				t.Errorf("%s: Authorize = %v, want ErrForbidden", u.name, err)
			}
		}
	})

	t.Run("invalid arguments are tool errors and the server keeps serving", func(t *testing.T) {
		raw := dialRaw(t, url, c.agentToken)
		long := rollbackArgs("invalid-long-summary")
		long.Summary = strings.Repeat("s", 5000)
		path := rollbackArgs("invalid-path")
		path.Namespace = "../x"
		for _, tc := range []struct {
			name string
			args any
			want string
		}{
			{"path as namespace", path, `invalid argument: namespace "../x"`},
			{"oversized summary", long, "summary is 5000 bytes; at most 4096"},
			{"wrong type", map[string]any{"namespace": teamNS, "name": "web", "summary": "s", "toRevision": "one"}, "toRevision"},
			{"negative revision", map[string]any{"namespace": teamNS, "name": "web", "summary": "s", "fromRevision": -3, "fingerprint": "invalid-negative"}, "revisions must not be negative"},
		} {
			res := callTool(t, raw, wire.ToolProposeRollback, tc.args)
			if !res.IsError {
				t.Errorf("%s: not a tool error: %+v", tc.name, res)
				continue
			}
			if text := resultText(res); !strings.Contains(text, tc.want) {
				t.Errorf("%s: error %q, want it to say %q", tc.name, text, tc.want)
			}
		}
		for _, fp := range []string{"invalid-long-summary", "invalid-path", "invalid-negative"} {
			if got := c.proposals(t, fp); len(got) != 0 {
				t.Errorf("invalid call %s created %d proposals", fp, len(got))
			}
		}
		// The same session still works.
		res := callTool(t, raw, wire.ToolProposeRollback, rollbackArgs("after-invalid"))
		if res.IsError {
			t.Fatalf("valid call after invalid ones: %s", resultText(res))
		}
		if got := c.proposals(t, "after-invalid"); len(got) != 1 {
			t.Errorf("got %d proposals after the valid call, want 1", len(got))
		}
	})

	t.Run("an open proposal with the same fingerprint is returned, not duplicated", func(t *testing.T) {
		tools := dialTools(t, url, c.agentToken)
		first, err := tools.ProposeRollback(t.Context(), rollbackArgs("duplicate"))
		if err != nil {
			t.Fatalf("first ProposeRollback: %v", err)
		}
		second, err := tools.ProposeRollback(t.Context(), rollbackArgs("duplicate"))
		if err != nil {
			t.Fatalf("second ProposeRollback: %v", err)
		}
		if first.Duplicate || !second.Duplicate || second.Name != first.Name {
			t.Errorf("first %+v, second %+v: want the second to return the first as a duplicate", first, second)
		}
		if got := c.proposals(t, "duplicate"); len(got) != 1 {
			t.Errorf("got %d proposals, want 1", len(got))
		}
		// The repeat went to the bus for the proposal controller to count,
		// naming the open proposal and the authenticated caller.
		if second.Repeats != 1 {
			t.Errorf("second call reports %d repeats, want 1", second.Repeats)
		}
		stream, err := c.js.Stream(t.Context(), bus.StreamProposals)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := stream.GetLastMsgForSubject(t.Context(), bus.ProposalsSubject(repeatCluster, bus.RepeatEvent))
		if err != nil {
			t.Fatalf("no repeat on the bus: %v", err)
		}
		r, err := bus.DecodeRepeat(msg.Data)
		if err != nil {
			t.Fatalf("repeat on the bus: %v", err)
		}
		if r.Namespace != teamNS || r.Name != first.Name || r.Proposer != agentSA {
			t.Errorf("repeat %+v, want %s/%s by %s", r, teamNS, first.Name, agentSA)
		}

		// Once the first is closed, the same fingerprint makes a new proposal.
		p := &tendv1.Proposal{}
		if err := c.admin.Get(t.Context(), client.ObjectKey{Namespace: teamNS, Name: first.Name}, p); err != nil {
			t.Fatal(err)
		}
		p.Status.Phase = tendv1.PhaseExpired
		if err := c.admin.Status().Update(t.Context(), p); err != nil {
			t.Fatalf("expire proposal: %v", err)
		}
		third, err := tools.ProposeRollback(t.Context(), rollbackArgs("duplicate"))
		if err != nil {
			t.Fatalf("third ProposeRollback: %v", err)
		}
		if third.Duplicate || third.Name == first.Name {
			t.Errorf("third %+v: want a new proposal", third)
		}
		if got := c.proposals(t, "duplicate"); len(got) != 2 {
			t.Errorf("got %d proposals, want 2", len(got))
		}
	})

	t.Run("an undecided proposal comes back Pending and its decision shows later", func(t *testing.T) {
		tools := dialTools(t, url, c.agentToken)
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		res, err := tools.ProposeRollback(ctx, rollbackArgs("pending"))
		if err != nil {
			t.Fatalf("ProposeRollback: %v", err)
		}
		if res.Phase != string(tendv1.PhasePending) || res.Outcome != "" || res.Duplicate {
			t.Errorf("result %+v, want Pending without an outcome", res)
		}
		raw := dialRaw(t, url, c.agentToken)
		if v := getProposal(t, raw, res.Name); v.Decision != nil {
			t.Fatalf("decision %+v before the gate decided", v.Decision)
		}

		decided := make(chan error, 1)
		go func() { decided <- c.decide(ctx, res.Name) }()
		if err := <-decided; err != nil {
			t.Fatalf("decide: %v", err)
		}
		v := getProposal(t, raw, res.Name)
		want := &wire.ProposeResult{
			Namespace: teamNS, Name: res.Name, Phase: string(tendv1.PhaseAwaitingApproval), Outcome: string(tendv1.OutcomeRequireApproval),
			Reasons:           []wire.Reason{{Code: "ProductionNamespace", Message: "Rollbacks in team need one approver.", Policy: "default", Rule: "prod"}},
			RequiredApprovals: 1,
			Undo:              "Undo: if its verification fails, the controller undoes it and the proposal ends RolledBack.",
			Disruption:        v.Decision.Disruption,
			Message:           v.Decision.Message,
		}
		if v.Decision.Disruption == "" {
			t.Errorf("decision %+v says nothing of its disruption", v.Decision)
		}
		if diff := cmp.Diff(want, v.Decision); diff != "" {
			t.Errorf("decision (-want +got):\n%s", diff)
		}
		if v.Phase != string(tendv1.PhaseAwaitingApproval) || v.Proposer != agentSA || v.Action != string(tendv1.ActionRollbackWorkload) {
			t.Errorf("view %+v", v)
		}
	})

	t.Run("a decision made while the tool waits is returned", func(t *testing.T) {
		waitURL := c.serve(t, waitTimeout)
		tools := dialTools(t, waitURL, c.agentToken)
		ctx, cancel := context.WithTimeout(t.Context(), 2*waitTimeout)
		defer cancel()
		const fp = "decided-while-waiting"
		w, err := c.admin.Watch(ctx, &tendv1.ProposalList{}, client.InNamespace(teamNS))
		if err != nil {
			t.Fatalf("watch: %v", err)
		}
		defer w.Stop()
		// The gate, played by the test: decide the proposal once it exists.
		decided := make(chan error, 1)
		go func() {
			for ev := range w.ResultChan() {
				if p, ok := ev.Object.(*tendv1.Proposal); ok && ev.Type == watch.Added && p.Spec.Fingerprint == fp {
					decided <- c.decide(ctx, p.Name)
					return
				}
			}
			decided <- fmt.Errorf("watch ended: %w", ctx.Err())
		}()
		res, err := tools.ProposeRollback(ctx, rollbackArgs(fp))
		if err != nil {
			t.Fatalf("ProposeRollback: %v", err)
		}
		if err := <-decided; err != nil {
			t.Fatalf("decide: %v", err)
		}
		want := wire.ProposeResult{
			Namespace: teamNS, Name: res.Name, Phase: string(tendv1.PhaseAwaitingApproval), Outcome: string(tendv1.OutcomeRequireApproval),
			Reasons:           []wire.Reason{{Code: "ProductionNamespace", Message: "Rollbacks in team need one approver.", Policy: "default", Rule: "prod"}},
			RequiredApprovals: 1,
			Undo:              res.Undo,
			Disruption:        res.Disruption,
			Message:           res.Message,
		}
		if diff := cmp.Diff(want, res); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
	})

	t.Run("every tool call is counted by tool and result, and timed", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		if err := mcp.Register(reg); err != nil {
			t.Fatal(err)
		}
		value := func(name string, labels map[string]string) float64 {
			families, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			var sum float64
			for _, f := range families {
				if f.GetName() != name {
					continue
				}
			next:
				for _, m := range f.Metric {
					for _, l := range m.Label {
						if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
							continue next
						}
					}
					if m.Counter != nil {
						sum += m.Counter.GetValue()
					} else if m.Histogram != nil {
						sum += float64(m.Histogram.GetSampleCount())
					}
				}
			}
			return sum
		}
		get := map[string]string{"tool": wire.ToolGetResource}
		okBefore := value("tend_mcp_tool_calls_total", map[string]string{"tool": wire.ToolGetResource, "result": "ok"})
		errBefore := value("tend_mcp_tool_calls_total", map[string]string{"tool": wire.ToolGetResource, "result": "error"})
		timedBefore := value("tend_mcp_tool_call_duration_seconds", get)
		raw := dialRaw(t, url, c.agentToken)
		if res := callTool(t, raw, wire.ToolGetResource, map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": teamNS, "name": "web"}); res.IsError {
			t.Fatalf("get_resource: %s", resultText(res))
		}
		if res := callTool(t, raw, wire.ToolGetResource, map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": teamNS, "name": "web", "bogus": 1}); !res.IsError {
			t.Fatal("get_resource with an unknown argument succeeded")
		}
		// Other subtests may call too: counts are compared as growth.
		if got := value("tend_mcp_tool_calls_total", map[string]string{"tool": wire.ToolGetResource, "result": "ok"}); got < okBefore+1 {
			t.Errorf("ok calls %v, want at least %v", got, okBefore+1)
		}
		if got := value("tend_mcp_tool_calls_total", map[string]string{"tool": wire.ToolGetResource, "result": "error"}); got < errBefore+1 {
			t.Errorf("error calls %v, want at least %v", got, errBefore+1)
		}
		if got := value("tend_mcp_tool_call_duration_seconds", get); got < timedBefore+2 {
			t.Errorf("timed calls %v, want at least %v", got, timedBefore+2)
		}
	})

	t.Run("an unknown argument is an error that names it, and nothing is proposed", func(t *testing.T) {
		raw := dialRaw(t, url, c.agentToken)
		args := map[string]any{"namespace": teamNS, "name": "web", "replicas": 0, "summary": "s", "fingerprint": "strict-dry-run", "dryRun": true}
		res := callTool(t, raw, wire.ToolProposeScaleWorkload, args)
		if !res.IsError || !strings.Contains(resultText(res), `unknown argument "dryRun"`) {
			t.Errorf("propose_scale_workload with dryRun: %s, want an error naming dryRun", resultText(res))
		}
		res = callTool(t, raw, wire.ToolGetResource, map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "namespace": teamNS, "name": "web", "Name": "x"})
		if !res.IsError || !strings.Contains(resultText(res), `unknown argument "Name"`) {
			t.Errorf("get_resource with Name: %s, want an error naming it", resultText(res))
		}
		if got := c.proposals(t, "strict-dry-run"); len(got) != 0 {
			t.Errorf("%d proposals made from a call with an unknown argument", len(got))
		}
	})

	t.Run("explain_decision answers from the phase", func(t *testing.T) {
		tools := dialTools(t, url, c.agentToken)
		res, err := tools.ProposeRollback(t.Context(), rollbackArgs("explain-phase"))
		if err != nil {
			t.Fatalf("ProposeRollback: %v", err)
		}
		if err := c.decide(t.Context(), res.Name); err != nil {
			t.Fatal(err)
		}
		raw := dialRaw(t, url, c.agentToken)
		explain := func() wire.Explanation {
			var e wire.Explanation
			decode(t, callTool(t, raw, wire.ToolExplainDecision, wire.ExplainDecisionArgs{Namespace: teamNS, Name: res.Name}), &e)
			return e
		}
		if e := explain(); e.Phase != string(tendv1.PhaseAwaitingApproval) || !strings.Contains(e.Advice, "Waiting for 1 human approval") {
			t.Errorf("awaiting approval: %+v", e)
		}
		for _, tc := range []struct {
			phase tendv1.Phase
			want  string
		}{
			{tendv1.PhaseSucceeded, "Applied and verified"},
			{tendv1.PhaseRolledBack, "undid it"},
			{tendv1.PhaseExpired, "Expired"},
		} {
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				p := &tendv1.Proposal{}
				if err := c.admin.Get(t.Context(), client.ObjectKey{Namespace: teamNS, Name: res.Name}, p); err != nil {
					return err
				}
				p.Status.Phase = tc.phase
				return c.admin.Status().Update(t.Context(), p)
			})
			if err != nil {
				t.Fatal(err)
			}
			e := explain()
			if e.Phase != string(tc.phase) || !strings.Contains(e.Advice, tc.want) || strings.Contains(e.Advice, "Waiting") {
				t.Errorf("%s: %+v, want advice saying %q", tc.phase, e, tc.want)
			}
			if e.Outcome != string(tendv1.OutcomeRequireApproval) {
				t.Errorf("%s: outcome %q, want the decision still shown", tc.phase, e.Outcome)
			}
		}
	})

	t.Run("the protected resource metadata describes the bearer-token scheme", func(t *testing.T) {
		base := strings.TrimSuffix(url, "/mcp")
		resp := post(t, url, "")
		challenge := resp.Header.Get("WWW-Authenticate")
		wantMeta := base + mcp.WellKnownProtectedResource + "/mcp"
		if !strings.Contains(challenge, `resource_metadata="`+wantMeta+`"`) {
			t.Errorf("challenge %q does not point at %s", challenge, wantMeta)
		}
		for _, u := range []string{wantMeta, base + mcp.WellKnownProtectedResource} {
			r, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			var m mcp.ProtectedResourceMetadata
			err = json.NewDecoder(r.Body).Decode(&m)
			_ = r.Body.Close()
			if err != nil || r.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d, %v", u, r.StatusCode, err)
			}
			want := mcp.ProtectedResourceMetadata{Resource: url, BearerMethodsSupported: []string{"header"}, ResourceName: m.ResourceName, ResourceDocumentation: mcp.DocumentationURL}
			if diff := cmp.Diff(want, m); diff != "" || !strings.Contains(m.ResourceName, "TokenReview") {
				t.Errorf("GET %s (-want +got):\n%s", u, diff)
			}
			// No authorization server: nothing sends a client into an
			// interactive OAuth login.
			if len(m.AuthorizationServers) != 0 {
				t.Errorf("authorization servers %v", m.AuthorizationServers)
			}
		}
	})

}
