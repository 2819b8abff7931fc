package localstack

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"maps"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
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

// TestChartShimDaemonSet renders the runtime shim's DaemonSet and checks
// what the design asks of it: the CRI socket read-write and no other
// writable host access, no API token, a toleration for every taint,
// resource limits, and each node's own NATS identity. Without the values it
// needs, the chart refuses to render it.
func TestChartShimDaemonSet(t *testing.T) {
	helm := filepath.Join(binDir(t), "helm")
	chart := filepath.Join("..", "..", "charts", "tend")
	render := func(set ...string) ([]byte, error) {
		args := []string{"template", "tend", chart, "--namespace", SystemNamespace, "--kube-version", "1.37.1", "--show-only", "templates/shim-daemonset.yaml"}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		return exec.Command(helm, args...).CombinedOutput()
	}
	out, err := render("shim.enabled=true", "shim.cluster=prod", "shim.controllerKeys[0]=UCONTROLLER", "shim.nkeySecret=tend-shim-nkeys", "shim.keepImages[0]=registry.example.com/base/*")
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	ds := &appsv1.DaemonSet{}
	if err := yaml.UnmarshalStrict(out, ds); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	spec := ds.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("containers %v", spec.Containers)
	}
	c := spec.Containers[0]
	for _, want := range []string{"--cluster=prod", "--node=$(NODE_NAME)", "--nats-nkey-seed=/etc/tend/nats/$(NODE_NAME).nk", "--controller-key=UCONTROLLER", "--keep-image=registry.example.com/base/*", "--cri-endpoint=unix:///run/containerd/containerd.sock"} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("args %v lack %s", c.Args, want)
		}
	}
	if len(c.Env) != 1 || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("env %v, want NODE_NAME from spec.nodeName", c.Env)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken || spec.HostNetwork || spec.HostPID || spec.HostIPC {
		t.Error("the shim needs no API token and no host namespace")
	}
	if len(spec.Tolerations) != 1 || spec.Tolerations[0].Operator != corev1.TolerationOpExists || spec.Tolerations[0].Key != "" {
		t.Errorf("tolerations %v, want one for every taint", spec.Tolerations)
	}
	if c.Resources.Limits.Memory().IsZero() || c.Resources.Limits.Cpu().IsZero() {
		t.Errorf("resources %v, want limits", c.Resources)
	}
	if sc := c.SecurityContext; sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged != nil && *sc.Privileged ||
		sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("security context %+v: want no privilege, no capability, a read-only root", sc)
	}
	hostPaths := map[string]string{}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	for _, m := range c.VolumeMounts {
		path, host := hostPaths[m.Name]
		switch {
		case !host:
		case path == "/run/containerd/containerd.sock":
			if m.ReadOnly {
				t.Error("the CRI socket must be mounted read-write")
			}
		case !m.ReadOnly:
			t.Errorf("host path %s is mounted writable", path)
		}
	}
	if want := map[string]string{"cri-socket": "/run/containerd/containerd.sock", "pod-logs": "/var/log/pods", "image-fs": "/var/lib/containerd"}; !maps.Equal(hostPaths, want) {
		t.Errorf("host paths %v, want %v", hostPaths, want)
	}

	// Off by default; on without its values, refused with the reason.
	if out, err := render(); err == nil && len(bytes.TrimSpace(out)) > 0 && !bytes.Contains(out, []byte("could not find template")) {
		t.Errorf("the shim is rendered by default:\n%s", out)
	}
	for _, tc := range []struct{ set []string }{
		{[]string{"shim.enabled=true"}},
		{[]string{"shim.enabled=true", "shim.cluster=prod"}},
		{[]string{"shim.enabled=true", "shim.cluster=prod", "shim.controllerKeys[0]=UCONTROLLER"}},
	} {
		out, err := render(tc.set...)
		if err == nil || !bytes.Contains(out, []byte("is required when shim.enabled")) {
			t.Errorf("%v: %v\n%s; want a refusal naming the missing value", tc.set, err, out)
		}
	}
}

// TestChartValuesAreChecked lints the chart strictly and renders it the
// way a new user would, with no --kube-version; values.schema.json refuses
// an unknown key or a wrong type, naming it.
func TestChartValuesAreChecked(t *testing.T) {
	helm := filepath.Join(binDir(t), "helm")
	chart := filepath.Join("..", "..", "charts", "tend")
	if out, err := exec.Command(helm, "lint", "--strict", chart).CombinedOutput(); err != nil {
		t.Errorf("helm lint --strict: %v\n%s", err, out)
	}
	if out, err := exec.Command(helm, "template", "tend", chart).CombinedOutput(); err != nil {
		t.Errorf("helm template without --kube-version: %v\n%s", err, out)
	}
	for set, want := range map[string]string{
		"defaultPolic=false":          "additional properties 'defaultPolic' not allowed",
		"defaultPolicy=maybe":         "/defaultPolicy': got string, want boolean",
		"shim.image.pullPolicy=Often": "/shim/image/pullPolicy",
		"serviceAccounts.agent=Agent": "/serviceAccounts/agent",
		"shim.controllerKeys[0]=key":  "/shim/controllerKeys/0",
	} {
		out, err := exec.Command(helm, "template", "tend", chart, "--set", set).CombinedOutput()
		if err == nil || !bytes.Contains(out, []byte(want)) {
			t.Errorf("--set %s: %v, want a refusal naming %q:\n%s", set, err, want, out)
		}
	}
}

// TestChartAgentShares checks that the agent's replicas share the telemetry:
// --shares follows agent.replicas (at most 10, fewer than the stream's partitions).
func TestChartAgentShares(t *testing.T) {
	helm := filepath.Join(binDir(t), "helm")
	chart := filepath.Join("..", "..", "charts", "tend")
	for replicas, want := range map[string]string{"": "--shares=1", "3": "--shares=3", "10": "--shares=10"} {
		args := []string{"template", "tend", chart, "--namespace", SystemNamespace, "--kube-version", "1.37.1", "--show-only", "templates/agent.yaml"}
		if replicas != "" {
			args = append(args, "--set", "agent.replicas="+replicas)
		}
		out, err := exec.Command(helm, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm template: %v\n%s", err, out)
		}
		d := &appsv1.Deployment{}
		for doc := range bytes.SplitSeq(out, []byte("\n---\n")) {
			if bytes.Contains(doc, []byte("\nkind: Deployment\n")) {
				if err := yaml.UnmarshalStrict(doc, d); err != nil {
					t.Fatalf("%v\n%s", err, doc)
				}
			}
		}
		if len(d.Spec.Template.Spec.Containers) == 0 {
			t.Fatalf("no agent Deployment in:\n%s", out)
		}
		if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Contains(args, want) {
			t.Errorf("agent.replicas=%q: args %v lack %s", replicas, args, want)
		}
	}
}
