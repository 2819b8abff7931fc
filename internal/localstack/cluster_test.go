package localstack

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

// TestKwokctlConfig checks the kwokctl configuration a cluster starts with:
// none by default; raised control-plane rate limits; for real nodes, kwok
// limited to its own nodes and the kubernetes Service's IP in the API
// server's certificate.
func TestKwokctlConfig(t *testing.T) {
	type arg struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	type patch struct {
		Name      string `json:"name"`
		ExtraArgs []arg  `json:"extraArgs"`
	}
	type config struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Options    struct {
			KubeApiserverCertSANs []string `json:"kubeApiserverCertSANs"`
		} `json:"options"`
		ComponentsPatches []patch `json:"componentsPatches"`
	}
	kwok := patch{Name: "kwok-controller", ExtraArgs: []arg{{"manage-all-nodes", "false"}, {"manage-nodes-with-annotation-selector", "kwok.x-k8s.io/node=fake"}}}
	qps := func(name string) patch {
		return patch{Name: name, ExtraArgs: []arg{{"kube-api-qps", "400"}, {"kube-api-burst", "800"}}}
	}
	tests := []struct {
		name    string
		opts    ClusterOptions
		sans    []string
		patches []patch
	}{
		{"rate limits", ClusterOptions{ControlPlaneQPS: 400}, nil, []patch{qps("kube-controller-manager"), qps("kube-scheduler")}},
		{"real nodes", ClusterOptions{RealNodes: true}, []string{KubernetesServiceIP}, []patch{kwok}},
		{"both", ClusterOptions{ControlPlaneQPS: 400, RealNodes: true}, []string{KubernetesServiceIP}, []patch{qps("kube-controller-manager"), qps("kube-scheduler"), kwok}},
	}
	if got := kwokctlConfig(ClusterOptions{}); got != nil {
		t.Errorf("default: %s, want none", got)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c config
			if err := yaml.UnmarshalStrict(kwokctlConfig(tt.opts)[len("---\n"):], &c); err != nil {
				t.Fatal(err)
			}
			if c.APIVersion != "config.kwok.x-k8s.io/v1alpha1" || c.Kind != "KwokctlConfiguration" {
				t.Errorf("kind %s/%s", c.APIVersion, c.Kind)
			}
			if diff := cmp.Diff(tt.sans, c.Options.KubeApiserverCertSANs); diff != "" {
				t.Errorf("SANs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.patches, c.ComponentsPatches); diff != "" {
				t.Errorf("patches (-want +got):\n%s", diff)
			}
		})
	}
}
