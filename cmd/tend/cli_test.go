package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/internal/localstack"
	"github.com/tendops/tend/mcp"
	"github.com/tendops/tend/mcp/wire"
)

// TestCommandWordsAndVersion needs no cluster: a mistyped subcommand fails
// with a suggestion, an unknown output format fails before any cluster is
// read, and tend version reports the MCP server's version.
func TestCommandWordsAndVersion(t *testing.T) {
	for _, args := range [][]string{{"proposals", "lsit"}, {"gate", "nope"}, {"audit", "verfy"}, {"bogus"}} {
		_, _, err := runTend(t, args...)
		if err == nil || !strings.Contains(err.Error(), "unknown command") {
			t.Errorf("tend %s: err = %v, want an unknown command error", strings.Join(args, " "), err)
		}
	}
	if _, _, err := runTend(t, "proposals", "lsit"); err == nil || !strings.Contains(err.Error(), "list") {
		t.Errorf("tend proposals lsit does not suggest list: %v", err)
	}
	if out, _, err := runTend(t, "proposals"); err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("tend proposals alone prints its help: err %v, out:\n%s", err, out)
	}
	// A bad format is refused before the kubeconfig is even read.
	_, _, err := runTend(t, "proposals", "list", "-o", "xml", "--kubeconfig", filepath.Join(t.TempDir(), "none"))
	if err == nil || !strings.Contains(err.Error(), "invalid --output") {
		t.Errorf("-o xml: %v", err)
	}
	if _, _, err := runTend(t, "status", "-o", "name"); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Errorf("status -o name: %v", err)
	}
	// As a kubectl plugin, usage reads kubectl tend.
	arg0 := os.Args[0]
	os.Args[0] = "/usr/local/bin/kubectl-tend"
	help, _, err := runTend(t, "proposals", "--help")
	os.Args[0] = arg0
	if err != nil || !strings.Contains(help, "kubectl tend proposals [command]") {
		t.Errorf("the plugin's usage does not read kubectl tend (%v):\n%s", err, help)
	}
	out, _, err := runTend(t, "version")
	if err != nil || !strings.HasPrefix(out, "tend "+wire.Version+",") {
		t.Errorf("tend version = %q (%v), want it to start with tend %s", out, err, wire.Version)
	}
	out, _, err = runTend(t, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil || v["version"] != wire.Version || v["kind"] != "Version" {
		t.Errorf("tend version -o json = %s (%v)", out, err)
	}
}

// TestOutputsAndDoctorOnARealAPIServer runs list, show and status with
// each printer, and tend doctor before and after tend is installed, on a
// real API server.
func TestOutputsAndDoctorOnARealAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	env, admin := startAPIServer(t)
	ctx := t.Context()
	kubeconfig := userKubeconfig(t, env, envtest.User{Name: "root", Groups: []string{"system:masters"}})

	// Before tend is installed, the doctor fails and says what is missing.
	out, _, err := runTend(t, "doctor", "--kubeconfig", kubeconfig)
	if err == nil {
		t.Fatalf("doctor passed on a cluster without tend:\n%s", out)
	}
	expectChecks(t, out, map[string]string{"API server": "OK", "CRDs": "FAIL missing: ", "admission": "FAIL", "RBAC": "FAIL", "NATS": "SKIP"})
	if err := localstack.Install(ctx, admin); err != nil {
		t.Fatalf("failed to install tend: %v", err)
	}
	out, _, err = runTend(t, "doctor", "--kubeconfig", kubeconfig, "--nats-url", "nats://127.0.0.1:1", "--check-timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), "NATS") {
		t.Errorf("doctor with an unreachable NATS: err %v", err)
	}
	expectChecks(t, out, map[string]string{"CRDs": "OK", "admission": "OK", "RBAC": "OK", "gate": "OK", "metrics API": "WARN", "Secrets": "SKIP", "NATS": "FAIL cannot connect to nats://127.0.0.1:1"})
	doctorChecksAgentSecrets(t, admin, kubeconfig)
	out, _, err = runTend(t, "doctor", "--kubeconfig", kubeconfig, "-o", "json")
	if err != nil {
		t.Errorf("doctor after install, no NATS: %v\n%s", err, out)
	}
	var doc struct {
		Kind   string        `json:"kind"`
		Checks []doctorCheck `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Kind != "Doctor" || len(doc.Checks) != 9 {
		t.Errorf("doctor -o json: %v\n%s", err, out)
	}
	// A CRD gone is named.
	if err := admin.Delete(ctx, &apiextensionsv1.CustomResourceDefinition{ObjectMeta: metav1.ObjectMeta{Name: "improvementschedules.tend.dev"}}); err != nil {
		t.Fatal(err)
	}
	out, _, err = runTend(t, "doctor", "--kubeconfig", kubeconfig)
	if err == nil {
		t.Errorf("doctor passed with a CRD deleted")
	}
	// Gone, or still being deleted: either way named.
	expectChecks(t, out, map[string]string{"CRDs": "FAIL"})
	if !strings.Contains(out, "improvementschedules.tend.dev") {
		t.Errorf("doctor does not name the deleted CRD:\n%s", out)
	}

	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	// The administrator relays the agent's proposals, as the MCP server
	// would; the admission policy wants the relay named.
	self, err := mcp.Self(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"scale-api", "rollback-web"} {
		p := &tendv1.Proposal{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: tendv1.ProposalSpec{
				Action:   tendv1.ActionRollbackWorkload,
				Target:   tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "shop", Name: strings.TrimPrefix(strings.TrimPrefix(name, "scale-"), "rollback-"), UID: "6f1d2c3b-0000-4000-8000-000000000001"},
				Proposer: tendv1.Proposer{Username: "system:serviceaccount:tend-system:tend-agent", Agent: "maintenance", Via: self.Username},
			},
		}
		if err := admin.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}

	// -o json is a ProposalList as the API server stores it, managed
	// fields left out, and reads back as one.
	out, _, err = runTend(t, "proposals", "list", "-n", "shop", "-o", "json", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var list tendv1.ProposalList
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("list -o json does not decode as a ProposalList: %v\n%s", err, out)
	}
	if list.Kind != "ProposalList" || list.APIVersion != "tend.dev/v1alpha1" || len(list.Items) != 2 {
		t.Fatalf("list -o json: kind %q apiVersion %q, %d items", list.Kind, list.APIVersion, len(list.Items))
	}
	for _, p := range list.Items {
		if p.Kind != "Proposal" || p.APIVersion != "tend.dev/v1alpha1" || p.ManagedFields != nil || p.Spec.Proposer.Agent != "maintenance" {
			t.Errorf("item %s: kind %q apiVersion %q managedFields %v", p.Name, p.Kind, p.APIVersion, p.ManagedFields)
		}
	}
	// Two lists of the same proposals print the same bytes.
	again, _, err := runTend(t, "proposals", "list", "-n", "shop", "-o", "json", "--kubeconfig", kubeconfig)
	if err != nil || again != out {
		t.Errorf("list -o json is not stable (%v)", err)
	}
	out, _, err = runTend(t, "proposals", "list", "-n", "shop", "-o", "name", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	names := strings.Fields(out)
	if len(names) != 2 || !strings.HasPrefix(names[0], "proposal.tend.dev/") {
		t.Errorf("list -o name = %q", out)
	}
	out, _, err = runTend(t, "proposals", "list", "-n", "shop", "-o", "jsonpath={.items[*].spec.target.name}", "--kubeconfig", kubeconfig)
	if err != nil || len(strings.Fields(out)) != 2 {
		t.Errorf("list -o jsonpath = %q (%v)", out, err)
	}
	out, _, err = runTend(t, "proposals", "list", "-n", "shop", "-o", "wide", "--kubeconfig", kubeconfig)
	if err != nil || !strings.Contains(out, "RISK") || !strings.Contains(out, "maintenance") {
		t.Errorf("list -o wide = %q (%v)", out, err)
	}
	out, _, err = runTend(t, "proposals", "show", "rollback-web", "-n", "shop", "-o", "yaml", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var one tendv1.Proposal
	if err := yaml.Unmarshal([]byte(out), &one); err != nil || one.Name != "rollback-web" || one.Kind != "Proposal" {
		t.Errorf("show -o yaml: %v\n%s", err, out)
	}
	// Impersonation is kubectl's: as a user with no rights, the list is
	// refused by the API server.
	if _, _, err := runTend(t, "proposals", "list", "-n", "shop", "--as", "mallory", "--kubeconfig", kubeconfig); err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Errorf("list --as mallory: %v", err)
	}
	out, _, err = runTend(t, "status", "-o", "json", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		APIVersion string         `json:"apiVersion"`
		Kind       string         `json:"kind"`
		Proposals  map[string]int `json:"proposals"`
		KillSwitch struct {
			Engaged bool `json:"engaged"`
		} `json:"killSwitch"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if diff := cmp.Diff(map[string]int{"Pending": 2}, st.Proposals); diff != "" || st.Kind != "Status" || st.APIVersion != "cli.tend.dev/v1alpha1" || st.KillSwitch.Engaged {
		t.Errorf("status -o json: %s (-want +got proposals %s)", out, diff)
	}
}

// expectChecks checks doctor's table: each named check has the result and
// a detail starting as given ("RESULT detail-prefix").
func expectChecks(t *testing.T, out string, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n")[1:] {
		// Columns are two or more spaces apart; names hold single spaces.
		cols := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), 3)
		if len(cols) == 3 {
			got[cols[0]] = cols[1] + " " + cols[2]
		}
	}
	for name, w := range want {
		if !strings.HasPrefix(got[name], w) {
			t.Errorf("check %q = %q, want %q…\n%s", name, got[name], w, out)
		}
	}
}

// doctorChecksAgentSecrets installs the chart's agent Deployment, rendered
// with an LLM key from a Secret, and has tend doctor fail while the Secret
// or its key is missing, naming it, and pass once it is there.
func doctorChecksAgentSecrets(t *testing.T, admin client.Client, kubeconfig string) {
	t.Helper()
	ctx := t.Context()
	bin := os.Getenv("TEND_BIN_DIR")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin")
	}
	out, err := exec.Command(filepath.Join(bin, "helm"), "template", "tend", filepath.Join("..", "..", "charts", "tend"),
		"--namespace", localstack.SystemNamespace, "--kube-version", "1.37.1", "--show-only", "templates/agent.yaml",
		"--set", "llm.provider=openai", "--set", "llm.baseURL=http://llm.example:8000/v1", "--set", "llm.model=m",
		"--set", "llm.apiKeySecret.name=planner-key", "--set", "llm.apiKeySecret.key=token").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	var dep *appsv1.Deployment
	for _, doc := range strings.Split(string(out), "\n---") {
		d := &appsv1.Deployment{}
		if err := yaml.Unmarshal([]byte(doc), d); err == nil && d.Kind == "Deployment" {
			dep = d
		}
	}
	if dep == nil {
		t.Fatalf("the chart's agent.yaml renders no Deployment:\n%s", out)
	}
	if err := admin.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = admin.Delete(ctx, dep) }()
	// The agent also mounts its NATS credentials; make those exist, so
	// only the LLM key is missing.
	for _, ref := range secretRefs(dep.Spec.Template.Spec) {
		if ref.secret == "planner-key" {
			continue
		}
		data := map[string][]byte{}
		for _, k := range ref.keys {
			data[k] = []byte("x")
		}
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: localstack.SystemNamespace, Name: ref.secret}, Data: data}
		if err := admin.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	out2, _, err := runTend(t, "doctor", "--kubeconfig", kubeconfig)
	if err == nil || !strings.Contains(err.Error(), "Secrets") {
		t.Errorf("doctor with the LLM key Secret missing: err %v", err)
	}
	expectChecks(t, out2, map[string]string{"Secrets": "FAIL tend-agent: Secret planner-key (the LLM API key, volume llm-key) does not exist"})

	key := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: localstack.SystemNamespace, Name: "planner-key"}, Data: map[string][]byte{"api-key": []byte("k")}}
	if err := admin.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	out2, _, _ = runTend(t, "doctor", "--kubeconfig", kubeconfig)
	expectChecks(t, out2, map[string]string{"Secrets": `FAIL tend-agent: Secret planner-key (the LLM API key, volume llm-key) has no key "token"`})

	key.Data = map[string][]byte{"token": []byte("k")}
	if err := admin.Update(ctx, key); err != nil {
		t.Fatal(err)
	}
	out2, _, _ = runTend(t, "doctor", "--kubeconfig", kubeconfig)
	expectChecks(t, out2, map[string]string{"Secrets": "OK"})
}
