package scenario

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
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

// drawsChecked is how many seeded draws Parse validates besides the
// lowest and highest values of every parameter.
const drawsChecked = 6

// Parse decodes one scenario strictly (unknown fields are errors), fills in
// default timeouts and validates it. A scenario with parameters is
// validated with the lowest and the highest value of each, and with a few
// seeded draws; the scenario returned is the one with the lowest values.
func Parse(b []byte) (*Scenario, error) {
	if len(b) > maxSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrInvalid, maxSize)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if tree == nil {
		return nil, fmt.Errorf("%w: the file holds no scenario", ErrInvalid)
	}
	var params []Parameter
	if raw, ok := tree["parameters"]; ok {
		pb, err := json.Marshal(raw)
		if err != nil {
			return nil, fmt.Errorf("%w: parameters: %v", ErrInvalid, err)
		}
		dec := json.NewDecoder(bytes.NewReader(pb))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&params); err != nil {
			return nil, fmt.Errorf("%w: parameters: %v", ErrInvalid, err)
		}
	}
	if _, errs := validateParameters(params); len(errs) > 0 {
		return nil, fmt.Errorf("%w %v:\n  %s", ErrInvalid, tree["name"], strings.Join(errs, "\n  "))
	}
	if name, _ := tree["name"].(string); strings.Contains(name, "${") {
		return nil, fmt.Errorf("%w: name must not use a parameter", ErrInvalid)
	}
	if err := profilesFollowImages(tree); err != nil {
		return nil, err
	}
	s, err := instantiate(tree, params, corner(params, false))
	if err != nil {
		return nil, err
	}
	if len(params) > 0 {
		others := []Values{corner(params, true)}
		for i := range drawsChecked {
			others = append(others, draw(params, rand.New(rand.NewPCG(uint64(i), 0x5eed))))
		}
		for _, vals := range others {
			if _, err := instantiate(tree, params, vals); err != nil {
				return nil, fmt.Errorf("with %s: %w", vals, err)
			}
		}
	}
	return s, nil
}

// Instance is the scenario of one run: its parameters drawn from the seed
// of the suite run, the scenario's name and the run number. A scenario
// without parameters is itself.
func (s *Scenario) Instance(seed uint64, run int) (*Scenario, error) {
	rs := RunSeed(seed, s.Name, run)
	if len(s.Parameters) == 0 || s.tree == nil {
		c := *s
		c.Seed = rs
		return &c, nil
	}
	in, err := instantiate(s.tree, s.Parameters, draw(s.Parameters, rand.New(rand.NewPCG(rs, 0x5eed))))
	if err != nil {
		return nil, err
	}
	in.File, in.Seed = s.File, rs
	return in, nil
}

// instantiate substitutes vals into the decoded file and decodes and
// validates the result.
func instantiate(tree map[string]any, params []Parameter, vals Values) (*Scenario, error) {
	body := make(map[string]any, len(tree))
	for k, v := range tree {
		if k != "parameters" {
			body[k] = v
		}
	}
	used := map[string]bool{}
	sub, err := substitute(body, vals, "", used)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	for i, p := range params {
		if !slices.ContainsFunc(mapsKeys(used), func(r string) bool { return r == p.Name || strings.HasPrefix(r, p.Name+".") }) {
			return nil, fmt.Errorf("%w: parameters[%d] (%s) is never used", ErrInvalid, i, p.Name)
		}
	}
	jb, err := json.Marshal(sub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var s Scenario
	if err := yaml.UnmarshalStrict(jb, &s); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	s.Parameters = params
	if len(params) > 0 {
		s.Values = vals
	}
	s.tree = tree
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

func mapsKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// profilesFollowImages checks that a profile varies only with its image or
// tags: two runs that draw different values must not describe one image
// two ways (the simulator is shared by every run).
func profilesFollowImages(tree map[string]any) error {
	ps, _ := tree["profiles"].([]any)
	for i, p := range ps {
		m, ok := p.(map[string]any)
		if !ok {
			continue
		}
		keyed := references([]any{m["image"], m["tags"]})
		var rest []string
		for k, v := range m {
			if k != "image" && k != "tags" {
				for _, r := range references(v) {
					if !slices.Contains(keyed, r) {
						rest = append(rest, fmt.Sprintf("%s uses ${%s}", k, r))
					}
				}
			}
		}
		if len(rest) > 0 {
			slices.Sort(rest)
			return fmt.Errorf("%w: profiles[%d]: %s, which its image and tags do not: two runs could describe one image two ways; put the parameter in a tag",
				ErrInvalid, i, strings.Join(rest, ", "))
		}
	}
	return nil
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

// checkManifest decodes a manifest strictly into its built-in type and
// returns Kind/name and the object.
func checkManifest(m Manifest) (string, runtime.Object, error) {
	if len(bytes.TrimSpace(m.RawMessage)) == 0 {
		return "", nil, errors.New("empty manifest")
	}
	obj, gvk, err := strict.Decode(m.RawMessage, nil, nil)
	if err != nil {
		return "", nil, fmt.Errorf("does not decode: %v", err)
	}
	if !slices.Contains(namespacedKinds, gvk.Kind) {
		return "", nil, fmt.Errorf("kind %s is not one a scenario may create (%s)", gvk.Kind, strings.Join(namespacedKinds, ", "))
	}
	acc, ok := obj.(metav1.Object)
	if !ok {
		return "", nil, fmt.Errorf("kind %s has no metadata", gvk.Kind)
	}
	if msgs := validation.IsDNS1123Subdomain(acc.GetName()); len(msgs) > 0 {
		return "", nil, fmt.Errorf("%s name %q: %s", gvk.Kind, acc.GetName(), strings.Join(msgs, "; "))
	}
	if acc.GetNamespace() != "" {
		return "", nil, fmt.Errorf("%s/%s sets a namespace: the harness chooses it", gvk.Kind, acc.GetName())
	}
	if gvk.Kind == "Event" {
		var ev struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(m.RawMessage, &ev) == nil && ev.Reason == FindingReason {
			return "", nil, fmt.Errorf("Event/%s has reason %s: only the agents record findings (it would pass a finding predicate)", acc.GetName(), FindingReason)
		}
	}
	return gvk.Kind + "/" + acc.GetName(), obj, nil
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
