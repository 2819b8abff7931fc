package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"

	"github.com/tendops/tend/evals/sim"
)

// ErrInvalid is returned for a scenario that does not validate.
var ErrInvalid = errors.New("scenario: invalid")

// Default timeouts.
const (
	DefaultBaseline = 60 * time.Second
	DefaultManifest = 45 * time.Second
	DefaultMitigate = 90 * time.Second
	DefaultStable   = 10 * time.Second
)

// maxSize bounds a scenario file.
const maxSize = 1 << 20

var (
	scheme = func() *runtime.Scheme {
		s := runtime.NewScheme()
		if err := clientgoscheme.AddToScheme(s); err != nil {
			panic(err)
		}
		return s
	}()
	strict = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
)

// namespacedKinds are the kinds a baseline or an injection may hold.
var namespacedKinds = []string{
	"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Pod", "Service", "ConfigMap", "Secret",
	"PersistentVolumeClaim", "ResourceQuota", "LimitRange", "NetworkPolicy", "PodDisruptionBudget",
	"HorizontalPodAutoscaler", "ServiceAccount", "Role", "RoleBinding", "Event", "Job", "CronJob",
}

// Load reads scenarios from files and directories (every *.yaml in them,
// not recursively), sorted by name. Names must be unique.
func Load(paths ...string) ([]*Scenario, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("failed to read scenarios: %w", err)
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		m, err := filepath.Glob(filepath.Join(p, "*.yaml"))
		if err != nil {
			return nil, err
		}
		files = append(files, m...)
	}
	var out []*Scenario
	seen := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("failed to read scenario: %w", err)
		}
		s, err := Parse(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		s.File = f
		if prev, ok := seen[s.Name]; ok {
			return nil, fmt.Errorf("%w: scenario %q is in both %s and %s", ErrInvalid, s.Name, prev, f)
		}
		seen[s.Name] = f
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *Scenario) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// Parse decodes one scenario strictly (unknown fields are errors), fills in
// default timeouts and validates it.
func Parse(b []byte) (*Scenario, error) {
	if len(b) > maxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, maxSize)
	}
	var s Scenario
	if err := yaml.UnmarshalStrict(b, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	def := func(d *metav1.Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	def(&s.Timeouts.Baseline, DefaultBaseline)
	def(&s.Timeouts.Manifest, DefaultManifest)
	def(&s.Timeouts.Mitigate, DefaultMitigate)
	def(&s.Timeouts.Stable, DefaultStable)
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

// Objects decodes manifests into unstructured objects.
func Objects(ms []Manifest) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for i, m := range ms {
		u := &unstructured.Unstructured{}
		if err := json.Unmarshal(m.RawMessage, &u.Object); err != nil {
			return nil, fmt.Errorf("manifest %d: %w", i, err)
		}
		out = append(out, u)
	}
	return out, nil
}

// Validate checks a scenario, field by field, with errors that name the field.
func (s *Scenario) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if msgs := validation.IsDNS1123Label(s.Name); len(msgs) > 0 || len(s.Name) > 40 {
		bad("name %q must be a DNS label of at most 40 characters", s.Name)
	}
	if strings.TrimSpace(s.Description) == "" {
		bad("description is required")
	}
	if !slices.Contains(Categories, s.Category) {
		bad("category %q is not one of %v", s.Category, Categories)
	}
	if !slices.Contains([]Difficulty{Easy, Medium, Hard}, s.Difficulty) {
		bad("difficulty %q is not one of easy, medium, hard", s.Difficulty)
	}
	if len(s.Benchmarks) == 0 {
		bad("benchmarks must name at least one corresponding problem (suite none for none)")
	}
	for i, r := range s.Benchmarks {
		if !slices.Contains([]Suite{AIOpsLab, ITBench, K8sBench, None}, r.Suite) {
			bad("benchmarks[%d].suite %q is not one of AIOpsLab, ITBench, k8s-bench, none", i, r.Suite)
		}
		if r.Suite != None && strings.TrimSpace(r.Problem) == "" {
			bad("benchmarks[%d].problem is required", i)
		}
	}
	if _, err := sim.Faults(s.Profiles); err != nil {
		bad("profiles: %v", err)
	}
	nodes := map[string]bool{}
	for i, n := range s.Nodes {
		if msgs := validation.IsDNS1123Label(n.Name); len(msgs) > 0 || len(n.Name) > 20 {
			bad("nodes[%d].name %q must be a DNS label of at most 20 characters", i, n.Name)
		}
		if nodes[n.Name] {
			bad("nodes[%d].name %q is used twice", i, n.Name)
		}
		nodes[n.Name] = true
		for k, v := range n.Labels {
			if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
				bad("nodes[%d].labels: key %q: %s", i, k, strings.Join(msgs, "; "))
			}
			if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
				bad("nodes[%d].labels[%s]: %s", i, k, strings.Join(msgs, "; "))
			}
		}
	}
	if len(s.Baseline) == 0 {
		bad("baseline must hold at least one manifest")
	}
	baseline := map[string]bool{}
	for i, m := range s.Baseline {
		ref, err := checkManifest(m)
		if err != nil {
			bad("baseline[%d]: %v", i, err)
			continue
		}
		if baseline[ref] {
			bad("baseline[%d]: %s is defined twice", i, ref)
		}
		baseline[ref] = true
	}
	if len(s.Faults) == 0 && !s.Oracle.ExpectHealthy && !slices.ContainsFunc(s.Oracle.Predicates, func(p Predicate) bool { return p.Proposal != nil }) {
		bad("faults: a scenario without a fault must set oracle.expectHealthy or check for a proposal")
	}
	for i, f := range s.Faults {
		n := 0
		if f.Patch != nil {
			n++
			ref := f.Patch.Target.Kind + "/" + f.Patch.Target.Name
			if !baseline[ref] {
				bad("faults[%d].patch.target %s is not in the baseline", i, ref)
			}
			if !slices.Contains([]PatchType{"", StrategicMerge, MergePatch, JSONPatch}, f.Patch.Type) {
				bad("faults[%d].patch.type %q is not strategic, merge or json", i, f.Patch.Type)
			}
			if len(f.Patch.Patch) == 0 || !json.Valid(f.Patch.Patch) {
				bad("faults[%d].patch.patch is required", i)
			} else if onlyMetadata(f.Patch.Patch) && s.Category != CategoryAdversarial {
				bad("faults[%d].patch only touches labels or annotations: a fault must be a spec problem (only adversarial text may live there)", i)
			}
		}
		if len(f.Apply) > 0 {
			n++
			for j, m := range f.Apply {
				if _, err := checkManifest(m); err != nil {
					bad("faults[%d].apply[%d]: %v", i, j, err)
				}
			}
		}
		if f.Delete != nil {
			n++
			if !baseline[f.Delete.Kind+"/"+f.Delete.Name] {
				bad("faults[%d].delete %s/%s is not in the baseline", i, f.Delete.Kind, f.Delete.Name)
			}
		}
		for _, node := range []string{f.StopNode, f.Cordon} {
			if node != "" {
				n++
				if !nodes[node] {
					bad("faults[%d]: node %q is not one of the scenario's nodes", i, node)
				}
			}
		}
		if c := f.NodeCondition; c != nil {
			n++
			if !nodes[c.Node] {
				bad("faults[%d].nodeCondition.node %q is not one of the scenario's nodes", i, c.Node)
			}
			if !slices.Contains([]string{"MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"}, c.Type) {
				bad("faults[%d].nodeCondition.type %q is not a node pressure condition", i, c.Type)
			}
			if c.Status != "True" && c.Status != "False" {
				bad("faults[%d].nodeCondition.status must be True or False", i)
			}
		}
		if n != 1 {
			bad("faults[%d] must set exactly one of patch, apply, delete, stopNode, cordon, nodeCondition", i)
		}
	}
	o := s.Oracle
	if o.Target == nil && !o.ExpectHealthy {
		bad("oracle.target is required unless oracle.expectHealthy")
	}
	if o.Target != nil && !baseline[o.Target.Kind+"/"+o.Target.Name] {
		bad("oracle.target %s/%s is not in the baseline", o.Target.Kind, o.Target.Name)
	}
	for i, p := range o.Predicates {
		n := 0
		if p.Endpoints != nil {
			n++
			if !baseline["Service/"+p.Endpoints.Service] {
				bad("oracle.predicates[%d].endpoints.service %q is not in the baseline", i, p.Endpoints.Service)
			}
		}
		if p.Reachable != nil {
			n++
			if !baseline["Service/"+p.Reachable.Service] || len(p.Reachable.From) == 0 {
				bad("oracle.predicates[%d].reachable needs from labels and a Service of the baseline", i)
			}
		}
		if p.Autoscaler != nil {
			n++
			if !baseline["HorizontalPodAutoscaler/"+p.Autoscaler.Name] {
				bad("oracle.predicates[%d].autoscaler.name %q is not in the baseline", i, p.Autoscaler.Name)
			}
		}
		if p.OnReadyNodes {
			n++
		}
		if p.Proposal != nil {
			n++
			if len(p.Proposal.Actions) == 0 || o.Target == nil {
				bad("oracle.predicates[%d].proposal needs actions and oracle.target", i)
			}
		}
		if n != 1 {
			bad("oracle.predicates[%d] must set exactly one check", i)
		}
	}
	t := s.Timeouts
	for name, d := range map[string]time.Duration{"baseline": t.Baseline.Duration, "manifest": t.Manifest.Duration, "mitigate": t.Mitigate.Duration, "stable": t.Stable.Duration} {
		if d <= 0 || d > 30*time.Minute {
			bad("timeouts.%s must be between 0 and 30m", name)
		}
	}
	if t.Stable.Duration >= t.Mitigate.Duration {
		bad("timeouts.stable must be shorter than timeouts.mitigate")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w %q:\n  %s", ErrInvalid, s.Name, strings.Join(errs, "\n  "))
	}
	return nil
}

// checkManifest decodes a manifest strictly into its built-in type and
// returns Kind/name.
func checkManifest(m Manifest) (string, error) {
	if len(bytes.TrimSpace(m.RawMessage)) == 0 {
		return "", errors.New("empty manifest")
	}
	obj, gvk, err := strict.Decode(m.RawMessage, nil, nil)
	if err != nil {
		return "", fmt.Errorf("does not decode: %v", err)
	}
	if !slices.Contains(namespacedKinds, gvk.Kind) {
		return "", fmt.Errorf("kind %s is not one a scenario may create (%s)", gvk.Kind, strings.Join(namespacedKinds, ", "))
	}
	acc, ok := obj.(metav1.Object)
	if !ok {
		return "", fmt.Errorf("kind %s has no metadata", gvk.Kind)
	}
	if msgs := validation.IsDNS1123Subdomain(acc.GetName()); len(msgs) > 0 {
		return "", fmt.Errorf("%s name %q: %s", gvk.Kind, acc.GetName(), strings.Join(msgs, "; "))
	}
	if acc.GetNamespace() != "" {
		return "", fmt.Errorf("%s/%s sets a namespace: the harness chooses it", gvk.Kind, acc.GetName())
	}
	return gvk.Kind + "/" + acc.GetName(), nil
}

// onlyMetadata reports whether a patch only touches labels and annotations.
func onlyMetadata(patch json.RawMessage) bool {
	var ops []struct {
		Path string `json:"path"`
	}
	if json.Unmarshal(patch, &ops) == nil {
		for _, op := range ops {
			if !strings.HasPrefix(op.Path, "/metadata/labels") && !strings.HasPrefix(op.Path, "/metadata/annotations") {
				return false
			}
		}
		return len(ops) > 0
	}
	var doc map[string]json.RawMessage
	if json.Unmarshal(patch, &doc) != nil {
		return false
	}
	if len(doc) != 1 || doc["metadata"] == nil {
		return false
	}
	var md map[string]json.RawMessage
	if json.Unmarshal(doc["metadata"], &md) != nil {
		return false
	}
	for k := range md {
		if k != "labels" && k != "annotations" {
			return false
		}
	}
	return true
}
