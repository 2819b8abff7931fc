package localstack

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/tendops/tend/agents/planner"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/mcp"
)

var updateGolden = flag.Bool("update", false, "rewrite the chart's golden renderings in testdata/chart")

// chartRenderings are the value sets the golden test renders: the
// defaults, and everything optional switched on.
var chartRenderings = map[string][]string{
	"default.yaml": nil,
	"all-on.yaml": {
		"shim.enabled=true", "shim.cluster=prod", "shim.controllerKeys[0]=UCONTROLLER", "shim.nkeySecret=tend-shim-nkeys",
		"monitoring.prometheusRule.enabled=true", "monitoring.dashboard.enabled=true", "monitoring.serviceMonitor.enabled=true",
		"cluster=prod.eu", "controller.shimSigningKeySecret=tend-shim-signer", "controller.notifySecret=tend-notify",
		"networkPolicies.mcpFromNamespaces[0].tend\\.dev/mcp-clients=allowed", "networkPolicies.metricsFromNamespaces[0].team=observability",
		"llm.provider=anthropic", "llm.model=claude-sonnet", "llm.apiKeySecret.name=tend-llm", "agent.brain=hybrid", "agent.replicas=2",
	},
	"external-nats.yaml": {
		"nats.bundled=false", "nats.url=tls://nats.example.com:4222", "nats.credentialsSecret=tend-nats-creds", "nats.caSecret=tend-nats-ca",
		"controller.auditKeySecret=tend-audit", "networkPolicies.enabled=false", "mcp.enabled=false", "agent.enabled=false",
	},
}

// generated matches a value the chart generates at install (a password, a
// key) and keeps on upgrades: random, so the golden renderings hold a
// placeholder instead.
var generated = regexp.MustCompile(`(?m)^(\s+[\w.-]+: )\S+( # generated at install, kept on upgrade)$`)

// TestChartGolden renders the chart and compares it with the renderings in
// testdata/chart, so that every change to what the chart installs is seen
// in review. `go test ./internal/localstack -run TestChartGolden -update`
// writes them again.
func TestChartGolden(t *testing.T) {
	helm := filepath.Join(binDir(t), "helm")
	chart := filepath.Join("..", "..", "charts", "tend")
	for file, set := range chartRenderings {
		args := []string{"template", "tend", chart, "--namespace", SystemNamespace}
		for _, s := range set {
			args = append(args, "--set", s)
		}
		out, err := exec.Command(helm, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("helm template %s: %v\n%s", file, err, out)
		}
		out = generated.ReplaceAll(out, []byte("${1}GENERATED${2}"))
		path := filepath.Join("testdata", "chart", file)
		if *updateGolden {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to write it)", err)
		}
		if diff := cmp.Diff(string(want), string(out)); diff != "" {
			t.Errorf("the chart renders %s differently (-golden +now); if intended, run with -update:\n%s", file, diff)
		}
	}
}

// TestChartMonitoringNamesRealMetrics checks that every metric the alert
// rules and the dashboard query is one tend's components register.
func TestChartMonitoringNamesRealMetrics(t *testing.T) {
	reg := &recordingRegisterer{}
	for _, err := range []error{bus.Register(reg), mcp.Register(reg), controllers.RegisterAuditMetrics(reg), controllers.RegisterNotifierMetrics(reg),
		controllers.RegisterProposalMetrics(reg, nil, nil), planner.Register(reg)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	known := map[string]bool{}
	descs := make(chan *prometheus.Desc, 1024)
	for _, c := range reg.collectors {
		c.Describe(descs)
	}
	close(descs)
	nameRE := regexp.MustCompile(`fqName: "([a-z_:]+)"`)
	for d := range descs {
		if m := nameRE.FindStringSubmatch(d.String()); m != nil {
			known[m[1]] = true
		}
	}
	helm := filepath.Join(binDir(t), "helm")
	out, err := exec.Command(helm, "template", "tend", filepath.Join("..", "..", "charts", "tend"),
		"--set", "monitoring.prometheusRule.enabled=true", "--set", "monitoring.dashboard.enabled=true", "--show-only", "templates/monitoring.yaml").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	var unknown []string
	for _, name := range regexp.MustCompile(`tend_[a-z_]+`).FindAllString(string(out), -1) {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !known[base] && !slices.Contains(unknown, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		t.Errorf("the chart's monitoring queries metrics no component registers: %v (known: %d)", unknown, len(known))
	}
}

// recordingRegisterer keeps what components register, so a test can
// describe every metric, including vectors with no samples yet.
type recordingRegisterer struct{ collectors []prometheus.Collector }

func (r *recordingRegisterer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return nil
}

func (r *recordingRegisterer) MustRegister(cs ...prometheus.Collector) {
	r.collectors = append(r.collectors, cs...)
}

func (r *recordingRegisterer) Unregister(prometheus.Collector) bool { return false }

// TestChartRBACHasNoWildcards lists every RBAC rule the chart installs,
// with everything optional on, and finds no wildcard verb, resource or API
// group: each component gets what it names.
func TestChartRBACHasNoWildcards(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "chart", "all-on.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules int
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var obj struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Rules []rbacv1.PolicyRule `json:"rules"`
		}
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		if obj.Kind != "ClusterRole" && obj.Kind != "Role" {
			continue
		}
		for _, r := range obj.Rules {
			rules++
			for field, values := range map[string][]string{"verbs": r.Verbs, "resources": r.Resources, "apiGroups": r.APIGroups} {
				if slices.Contains(values, "*") {
					t.Errorf("%s %s: a wildcard in %s: %+v", obj.Kind, obj.Metadata.Name, field, r)
				}
			}
			if len(r.Verbs) == 0 || len(r.Resources) == 0 && len(r.NonResourceURLs) == 0 {
				t.Errorf("%s %s: an empty rule %+v", obj.Kind, obj.Metadata.Name, r)
			}
		}
	}
	if rules < 10 {
		t.Fatalf("found only %d rules: the rendering was not read", rules)
	}
}
