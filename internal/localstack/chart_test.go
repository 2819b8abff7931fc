package localstack

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/tendops/tend/policies"
)

// TestChartMatchesLocalStack renders charts/tend with helm and checks that
// what it ships (roles, admission policy, default gate policy) is what the
// local stack installs, so the two cannot drift apart.
func TestChartMatchesLocalStack(t *testing.T) {
	helm := filepath.Join(binDir(t), "helm")
	out, err := exec.Command(helm, "template", "tend", filepath.Join("..", "..", "charts", "tend"),
		"--namespace", SystemNamespace, "--kube-version", "1.37.1").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	roles := map[string][]rbacv1.PolicyRule{}
	vaps := map[string]admissionv1.ValidatingAdmissionPolicySpec{}
	var gatePolicies int
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch meta.Kind {
		case "ClusterRole":
			var cr rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict(doc, &cr); err != nil {
				t.Fatal(err)
			}
			roles[cr.Name] = cr.Rules
		case "ValidatingAdmissionPolicy":
			vap := &admissionv1.ValidatingAdmissionPolicy{}
			if err := yaml.UnmarshalStrict(doc, vap); err != nil {
				t.Fatal(err)
			}
			vaps[vap.Name] = vap.Spec
		case "GatePolicy":
			parsed, err := policies.ParsePolicies(doc)
			if err != nil {
				t.Fatalf("chart's gate policy does not parse: %v", err)
			}
			bundle, err := policies.DefaultBundle()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(bundle, parsed); diff != "" {
				t.Errorf("chart's gate policy differs from the default bundle (-bundle +chart):\n%s", diff)
			}
			gatePolicies++
		}
	}
	want := map[string][]rbacv1.PolicyRule{}
	for _, cr := range ClusterRoles() {
		want[cr.Name] = cr.Rules
	}
	if diff := cmp.Diff(want, roles); diff != "" {
		t.Errorf("chart roles differ from ClusterRoles() (-localstack +chart):\n%s", diff)
	}
	wantVAPs := map[string]admissionv1.ValidatingAdmissionPolicySpec{}
	for _, o := range AdmissionPolicies(SystemNamespace) {
		if vap, ok := o.(*admissionv1.ValidatingAdmissionPolicy); ok {
			wantVAPs[vap.Name] = vap.Spec
		}
	}
	if diff := cmp.Diff(wantVAPs, vaps); diff != "" {
		t.Errorf("chart admission policies differ (-localstack +chart):\n%s", diff)
	}
	if gatePolicies != 1 {
		t.Errorf("chart ships %d gate policies, want the default one", gatePolicies)
	}
}
