package localstack

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
)

// TestHelmAdoptsWhatTendUpInstalled installs the chart, as release tend in
// tend-system, on a cluster where `tend up` already installed tend's
// objects: Helm takes them over instead of failing on ownership. The
// uninstall then removes the chart's objects and leaves the CRDs and the
// user's own GatePolicy.
func TestHelmAdoptsWhatTendUpInstalled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the local control plane")
	}
	bin := binDir(t)
	st, err := Start(t.Context(), Options{
		BinDir: bin, WorkDir: t.TempDir(), ClusterName: "helm", Nodes: 1, NoAgents: true,
		Proposal:                     controllers.ProposalOptions{StableWindow: 5 * time.Second},
		SkipControllerNameValidation: true,
	})
	if err != nil {
		t.Fatalf("failed to start the local stack: %v", err)
	}
	t.Cleanup(st.Stop)
	helm := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "helm"), append(args, "--kubeconfig", st.Kubeconfig)...)
		// Helm's caches and config stay in the test's directory.
		home := t.TempDir()
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	helm("install", HelmRelease, filepath.Join("..", "..", "charts", "tend"), "--namespace", SystemNamespace,
		"--set", "controller.enabled=false,sensor.enabled=false,mcp.enabled=false,agent.enabled=false,nats.bundled=false,nats.url=nats://127.0.0.1:4222,networkPolicies.enabled=false",
		"--wait", "--timeout", "2m")

	ctx := t.Context()
	var cr rbacv1.ClusterRole
	if err := st.Client.Get(ctx, client.ObjectKey{Name: "tend:controller"}, &cr); err != nil {
		t.Fatal(err)
	}
	if got := cr.GetLabels()["helm.sh/chart"]; got == "" {
		t.Errorf("the chart did not take over the controller's ClusterRole: labels %v", cr.GetLabels())
	}

	mine := &tendv1.GatePolicy{ObjectMeta: metav1.ObjectMeta{Name: "mine"}, Spec: tendv1.GatePolicySpec{Rules: []tendv1.GateRule{{
		Name: "freeze", When: `proposal.namespace.name == "frozen"`, Outcome: tendv1.OutcomeDeny, Reason: "Frozen", Message: "frozen",
	}}}}
	if err := st.Client.Create(ctx, mine); err != nil {
		t.Fatal(err)
	}
	helm("uninstall", HelmRelease, "--namespace", SystemNamespace, "--wait", "--timeout", "2m")
	if err := st.Client.Get(ctx, client.ObjectKeyFromObject(mine), &tendv1.GatePolicy{}); err != nil {
		t.Errorf("the user's GatePolicy did not survive the uninstall: %v", err)
	}
	if err := st.Client.Get(ctx, client.ObjectKey{Name: "proposals.tend.dev"}, &apiextensionsv1.CustomResourceDefinition{}); err != nil {
		t.Errorf("the Proposal CRD did not survive the uninstall: %v", err)
	}
	if err := st.Client.Get(ctx, client.ObjectKey{Name: "tend:controller"}, &cr); !apierrors.IsNotFound(err) {
		t.Errorf("the chart's ClusterRole is still there after the uninstall: %v", err)
	}
}
