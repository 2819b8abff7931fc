package scenario

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/evals/sim"
)

// Rules a scenario may name: the global rules and the fault-specific check.
var Rules = []string{"G1", "G2", "G3", "G4", "G5", "G6", "fault"}

// workloadKinds are the kinds a workload predicate checks.
var workloadKinds = []string{"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"}

// approverUserRe is what a scripted approver's name must look like.
var approverUserRe = regexp.MustCompile(`^[a-z][a-z0-9-]{0,30}$`)

// validation context: what the scenario creates.
type vctx struct {
	s *Scenario
	// objects are Kind/name of the baseline and of every object a fault
	// applies; baseline those of the baseline only.
	objects, baseline map[string]bool
	nodes             map[string]bool
	// containers of each Deployment (after the faults), for rightsized.
	containers map[string][]string
	images     map[string][]string
	bad        func(format string, args ...any)
}

// Validate checks a scenario, field by field, with errors that name the field.
func (s *Scenario) Validate() error {
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	c := &vctx{s: s, objects: map[string]bool{}, baseline: map[string]bool{}, nodes: map[string]bool{},
		containers: map[string][]string{}, images: map[string][]string{}, bad: bad}
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
	_, perrs := validateParameters(s.Parameters)
	errs = append(errs, perrs...)
	if _, err := sim.Faults(s.Profiles); err != nil {
		bad("profiles: %v", err)
	}
	for i, n := range s.Nodes {
		if msgs := validation.IsDNS1123Label(n.Name); len(msgs) > 0 || len(n.Name) > 20 {
			bad("nodes[%d].name %q must be a DNS label of at most 20 characters", i, n.Name)
		}
		if c.nodes[n.Name] {
			bad("nodes[%d].name %q is used twice", i, n.Name)
		}
		c.nodes[n.Name] = true
		checkLabels(fmt.Sprintf("nodes[%d].labels", i), n.Labels, bad)
	}
	checkLabels("namespace.labels", s.Namespace.Labels, bad)
	for k := range s.Namespace.Labels {
		if strings.HasPrefix(k, "kubernetes.io/") {
			bad("namespace.labels: %q is set by Kubernetes", k)
		}
	}
	c.manifests()
	c.checkImages()
	c.oracle()
	c.approvals()
	if ef := s.ExpectedFailure; ef != nil {
		if strings.TrimSpace(ef.Reason) == "" {
			bad("expectedFailure.reason must say why nothing fixes this scenario")
		}
		if len(ef.Rules) == 0 {
			bad("expectedFailure.rules must name the rules a run fails on (%s)", strings.Join(Rules, ", "))
		}
		for i, r := range ef.Rules {
			if !slices.Contains(Rules, r) {
				bad("expectedFailure.rules[%d] %q is not one of %s", i, r, strings.Join(Rules, ", "))
			}
		}
		if s.Oracle.ExpectHealthy {
			bad("expectedFailure: a scenario whose right outcome is to change nothing cannot be expected to fail")
		}
		for i, b := range ef.Brains {
			if !slices.Contains(Brains, b) {
				bad("expectedFailure.brains[%d] %q is not one of %s", i, b, strings.Join(Brains, ", "))
			}
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
		slices.Sort(errs)
		errs = slices.Compact(errs)
		return fmt.Errorf("%w %q:\n  %s", ErrInvalid, s.Name, strings.Join(errs, "\n  "))
	}
	return nil
}

func checkLabels(field string, labels map[string]string, bad func(string, ...any)) {
	for k, v := range labels {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			bad("%s: key %q: %s", field, k, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			bad("%s[%s]: %s", field, k, strings.Join(msgs, "; "))
		}
	}
}

// manifests checks the baseline and the faults, applying each patch to the
// object it targets to check that it applies, decodes and changes it.
func (c *vctx) manifests() {
	s, bad := c.s, c.bad
	if len(s.Baseline) == 0 {
		bad("baseline must hold at least one manifest")
	}
	state := map[string]runtime.Object{}
	for i, m := range s.Baseline {
		ref, obj, err := checkManifest(m)
		if err != nil {
			bad("baseline[%d]: %v", i, err)
			continue
		}
		if c.baseline[ref] {
			bad("baseline[%d]: %s is defined twice", i, ref)
		}
		c.baseline[ref], c.objects[ref] = true, true
		state[ref] = obj
		c.collect(ref, obj)
	}
	if len(s.Faults) == 0 && !s.Oracle.ExpectHealthy && !slices.ContainsFunc(s.Oracle.Predicates, func(p Predicate) bool { return p.Proposal != nil || p.Finding != nil || p.Rightsized != nil }) {
		bad("faults: a scenario without a fault must set oracle.expectHealthy or check for a proposal or a finding")
	}
	for i, f := range s.Faults {
		n := 0
		if f.Patch != nil {
			n++
			ref := f.Patch.Target.Kind + "/" + f.Patch.Target.Name
			if !c.baseline[ref] {
				bad("faults[%d].patch.target %s is not in the baseline", i, ref)
			}
			if !slices.Contains([]PatchType{"", StrategicMerge, MergePatch, JSONPatch}, f.Patch.Type) {
				bad("faults[%d].patch.type %q is not strategic, merge or json", i, f.Patch.Type)
			}
			switch {
			case len(f.Patch.Patch) == 0 || !json.Valid(f.Patch.Patch):
				bad("faults[%d].patch.patch is required", i)
			case f.Patch.Type == JSONPatch && !plainJSONPatch(f.Patch.Patch):
				bad("faults[%d].patch: a JSON patch may hold at most 64 operations, each add, remove, replace or test", i)
			case onlyMetadata(f.Patch.Patch) && s.Category != CategoryAdversarial:
				bad("faults[%d].patch only touches labels or annotations: a fault must be a spec problem (only adversarial text may live there)", i)
			case state[ref] != nil:
				obj, err := applyPatch(state[ref], f.Patch)
				if err != nil {
					bad("faults[%d].patch: %v", i, err)
				} else {
					state[ref] = obj
					c.collect(ref, obj)
				}
			}
		}
		if len(f.Apply) > 0 {
			n++
			for j, m := range f.Apply {
				ref, obj, err := checkManifest(m)
				if err != nil {
					bad("faults[%d].apply[%d]: %v", i, j, err)
					continue
				}
				c.objects[ref] = true
				c.collect(ref, obj)
			}
		}
		if f.Delete != nil {
			n++
			if !c.baseline[f.Delete.Kind+"/"+f.Delete.Name] {
				bad("faults[%d].delete %s/%s is not in the baseline", i, f.Delete.Kind, f.Delete.Name)
			}
		}
		for _, node := range []string{f.StopNode, f.Cordon} {
			if node != "" {
				n++
				if !c.nodes[node] {
					bad("faults[%d]: node %q is not one of the scenario's nodes", i, node)
				}
			}
		}
		if nc := f.NodeCondition; nc != nil {
			n++
			if !c.nodes[nc.Node] {
				bad("faults[%d].nodeCondition.node %q is not one of the scenario's nodes", i, nc.Node)
			}
			if !slices.Contains([]string{"MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"}, nc.Type) {
				bad("faults[%d].nodeCondition.type %q is not a node pressure condition", i, nc.Type)
			}
			if nc.Status != "True" && nc.Status != "False" {
				bad("faults[%d].nodeCondition.status must be True or False", i)
			}
		}
		if n != 1 {
			bad("faults[%d] must set exactly one of patch, apply, delete, stopNode, cordon, nodeCondition", i)
		}
	}
}

// plainJSONPatch reports whether a JSON patch holds only add, remove,
// replace and test operations, at most 64 of them (copy and move can grow a
// document without bound).
func plainJSONPatch(b json.RawMessage) bool {
	var ops []struct {
		Op string `json:"op"`
	}
	if json.Unmarshal(b, &ops) != nil || len(ops) > 64 {
		return false
	}
	for _, op := range ops {
		if !slices.Contains([]string{"add", "remove", "replace", "test"}, op.Op) {
			return false
		}
	}
	return true
}

// applyPatch applies a fault's patch to an object locally, and checks the
// result decodes strictly and differs from the object.
func applyPatch(obj runtime.Object, p *Patch) (runtime.Object, error) {
	orig, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var out []byte
	switch p.Type {
	case MergePatch:
		out, err = jsonpatch.MergePatch(orig, p.Patch)
	case JSONPatch:
		var jp jsonpatch.Patch
		if jp, err = jsonpatch.DecodePatch(p.Patch); err == nil {
			out, err = jp.Apply(orig)
		}
	default:
		out, err = strategicpatch.StrategicMergePatch(orig, p.Patch, obj)
	}
	if err != nil {
		return nil, fmt.Errorf("does not apply to %s/%s of the baseline: %v", p.Target.Kind, p.Target.Name, err)
	}
	var before, after any
	_ = json.Unmarshal(orig, &before)
	_ = json.Unmarshal(out, &after)
	if reflect.DeepEqual(before, after) {
		return nil, fmt.Errorf("changes nothing in %s/%s: the fault cannot show", p.Target.Kind, p.Target.Name)
	}
	res, _, err := strict.Decode(out, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("leaves %s/%s invalid: %v", p.Target.Kind, p.Target.Name, err)
	}
	return res, nil
}

// collect records an object's container images and, for a Deployment, its
// containers.
func (c *vctx) collect(ref string, obj runtime.Object) {
	b, err := json.Marshal(obj)
	if err != nil {
		return
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return
	}
	var walk func(any, bool)
	walk = func(v any, inContainers bool) {
		switch x := v.(type) {
		case map[string]any:
			if inContainers {
				if img, ok := x["image"].(string); ok {
					c.images[img] = append(c.images[img], ref)
				}
				if name, ok := x["name"].(string); ok && strings.HasPrefix(ref, "Deployment/") {
					if !slices.Contains(c.containers[ref], name) {
						c.containers[ref] = append(c.containers[ref], name)
					}
				}
			}
			for k, e := range x {
				walk(e, k == "containers" || k == "initContainers" || k == "ephemeralContainers")
			}
		case []any:
			for _, e := range x {
				walk(e, inContainers)
			}
		}
	}
	walk(m, false)
}

// Repository is an image reference without its tag or digest.
func Repository(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		image = image[:i]
	}
	return image
}

// checkImages requires a profile for the repository of every image the
// scenario runs: an image nobody described is an error, never a container
// that always runs.
func (c *vctx) checkImages() {
	profiled := map[string]bool{}
	for _, p := range c.s.Profiles {
		profiled[p.Image] = true
	}
	imgs := make([]string, 0, len(c.images))
	for img := range c.images {
		imgs = append(imgs, img)
	}
	slices.Sort(imgs)
	for _, img := range imgs {
		if !profiled[Repository(img)] {
			refs := slices.Compact(slices.Sorted(slices.Values(c.images[img])))
			c.bad("profiles: image %s (in %s) has no profile of its repository %s: describe the app it runs", img, strings.Join(refs, ", "), Repository(img))
		}
	}
}

// oracle checks the oracle: its target, the predicates of the healed
// outcome and of the alternatives, and that the fault can show.
func (c *vctx) oracle() {
	o, bad := c.s.Oracle, c.bad
	if o.Target == nil && !o.ExpectHealthy {
		bad("oracle.target is required unless oracle.expectHealthy")
	}
	switch t := o.Target; {
	case t == nil:
	case t.Kind == "Node":
		if !c.nodes[t.Name] {
			bad("oracle.target: node %q is not one of the scenario's nodes", t.Name)
		}
	case !c.objects[t.Kind+"/"+t.Name]:
		bad("oracle.target %s/%s is not an object the scenario creates", t.Kind, t.Name)
	}
	state := 0
	for i, p := range o.Predicates {
		if c.predicate(fmt.Sprintf("oracle.predicates[%d]", i), p) == classState {
			state++
		}
	}
	if len(c.s.Faults) > 0 && !o.ExpectHealthy && state == 0 {
		bad("oracle.predicates must hold a check of the state the fault breaks (endpoints, workload, job, reachable, autoscaler, onReadyNodes): without one the fault cannot be seen to show")
	}
	if o.ExpectHealthy && len(o.AnyOf) > 0 {
		bad("oracle.anyOf: a scenario whose right outcome is to change nothing has no other outcome")
	}
	names := map[string]bool{}
	for i, alt := range o.AnyOf {
		field := fmt.Sprintf("oracle.anyOf[%d]", i)
		if msgs := validation.IsDNS1123Label(alt.Name); len(msgs) > 0 || alt.Name == "healed" || names[alt.Name] {
			bad("%s.name %q must be a unique DNS label other than healed", field, alt.Name)
		}
		names[alt.Name] = true
		agent := false
		for j, p := range alt.Predicates {
			if c.predicate(fmt.Sprintf("%s.predicates[%d]", field, j), p) == classAgent {
				agent = true
			}
		}
		if !agent {
			bad("%s must require a proposal or a finding of the agents: an outcome that holds with nothing done would pass a run where nobody acted", field)
		}
	}
	for i, cause := range o.Cause {
		parts := strings.Split(cause, "/")
		if len(parts) < 2 || !c.baseline[parts[0]+"/"+parts[1]] {
			bad("oracle.cause[%d] %q does not name an object of the baseline", i, cause)
		}
	}
}

// predicate classes.
const (
	classNone = iota
	// classState checks the state of the cluster: the fault breaks it.
	classState
	// classAgent requires something of the agents (a proposal or a
	// finding).
	classAgent
	// classInvariant holds unless something is done wrong.
	classInvariant
)

// predicate checks one predicate and returns its class.
func (c *vctx) predicate(field string, p Predicate) int {
	bad := c.bad
	n, class := 0, classNone
	set := func(cl int) { n++; class = cl }
	if e := p.Endpoints; e != nil {
		set(classState)
		if !c.objects["Service/"+e.Service] {
			bad("%s.endpoints.service %q is not a Service the scenario creates", field, e.Service)
		}
		if e.MinReady < 1 {
			bad("%s.endpoints.minReady must be at least 1", field)
		}
	}
	if r := p.Reachable; r != nil {
		set(classState)
		if !c.objects["Service/"+r.Service] || len(r.From) == 0 {
			bad("%s.reachable needs from labels and a Service the scenario creates", field)
		}
	}
	if a := p.Autoscaler; a != nil {
		set(classState)
		if !c.objects["HorizontalPodAutoscaler/"+a.Name] {
			bad("%s.autoscaler.name %q is not an HPA the scenario creates", field, a.Name)
		}
	}
	if p.OnReadyNodes {
		set(classState)
	}
	if w := p.Workload; w != nil {
		set(classState)
		if !slices.Contains(workloadKinds, w.Kind) {
			bad("%s.workload.kind %q is not one of %s", field, w.Kind, strings.Join(workloadKinds, ", "))
		} else if !c.objects[w.Kind+"/"+w.Name] {
			bad("%s.workload %s/%s is not an object the scenario creates", field, w.Kind, w.Name)
		}
		if w.MinReady < 1 {
			bad("%s.workload.minReady must be at least 1", field)
		}
	}
	if j := p.Job; j != nil {
		set(classState)
		if j.Kind != "Job" && j.Kind != "CronJob" {
			bad("%s.job.kind %q is not Job or CronJob", field, j.Kind)
		} else if !c.objects[j.Kind+"/"+j.Name] {
			bad("%s.job %s/%s is not an object the scenario creates", field, j.Kind, j.Name)
		}
	}
	if r := p.Rightsized; r != nil {
		set(classState)
		ref := "Deployment/" + r.Deployment
		if !c.objects[ref] || !slices.Contains(c.containers[ref], r.Container) {
			bad("%s.rightsized: Deployment %q with container %q is not in the scenario", field, r.Deployment, r.Container)
		}
		if r.Headroom != 0 && (r.Headroom < 1 || r.Headroom > 10) {
			bad("%s.rightsized.headroom must be between 1 and 10", field)
		}
		if !c.usageProfiled() {
			bad("%s.rightsized needs the app's usage in its profile", field)
		}
	}
	if pr := p.Proposal; pr != nil {
		set(classAgent)
		if len(pr.Actions) == 0 {
			bad("%s.proposal.actions must name at least one action", field)
		}
		c.match(field+".proposal", ProposalMatch{Actions: pr.Actions, Target: pr.Target})
		for _, ph := range pr.Phases {
			if !slices.Contains(phases, tendv1.Phase(ph)) {
				bad("%s.proposal.phases: %q is not a proposal phase", field, ph)
			}
		}
		if pr.Outcome != "" && !slices.Contains([]string{"AutoApprove", "RequireApproval", "Deny"}, pr.Outcome) {
			bad("%s.proposal.outcome %q is not AutoApprove, RequireApproval or Deny", field, pr.Outcome)
		}
		if r := pr.Reason; r != nil && r.Code == "" && r.Contains == "" {
			bad("%s.proposal.reason needs a code or text it contains", field)
		}
	}
	if f := p.Finding; f != nil {
		set(classAgent)
		c.match(field+".finding", ProposalMatch{Target: f.Target})
		kind := ""
		if t := f.Target; t != nil {
			kind = t.Kind
		} else if t := c.s.Oracle.Target; t != nil {
			kind = t.Kind
		}
		if kind == "Node" {
			c.bad("%s.finding: findings are read from the run's namespace; a Node is not a target", field)
		}
		if len(f.Contains) > 256 {
			c.bad("%s.finding.contains is longer than 256 characters", field)
		}
	}
	if p.NoApplyBeforeApproval {
		set(classInvariant)
	}
	if m := p.MaxAutoApplies; m != nil {
		set(classInvariant)
		if *m < 0 {
			bad("%s.maxAutoApplies must not be negative", field)
		}
	}
	if p.PDBRespected {
		set(classInvariant)
		if !slices.ContainsFunc(keys(c.objects), func(k string) bool { return strings.HasPrefix(k, "PodDisruptionBudget/") }) {
			bad("%s.pdbRespected: the scenario creates no PodDisruptionBudget", field)
		}
	}
	if o := p.Order; o != nil {
		set(classInvariant)
		c.match(field+".order.first", o.First)
		c.match(field+".order.then", o.Then)
		if len(o.First.Actions) == 0 || len(o.Then.Actions) == 0 {
			bad("%s.order needs the actions of first and then", field)
		}
	}
	if n != 1 {
		bad("%s must set exactly one check", field)
	}
	return class
}

var phases = []tendv1.Phase{tendv1.PhasePending, tendv1.PhaseAwaitingApproval, tendv1.PhaseApproved, tendv1.PhaseDenied,
	tendv1.PhaseApplying, tendv1.PhaseVerifying, tendv1.PhaseSucceeded, tendv1.PhaseFailed, tendv1.PhaseRolledBack,
	tendv1.PhaseExpired, tendv1.PhaseSuperseded, tendv1.PhaseOvertaken}

// match checks a proposal selector: catalogue actions, a target the
// scenario creates (or one of its nodes).
func (c *vctx) match(field string, m ProposalMatch) {
	for _, a := range m.Actions {
		if !slices.Contains(tendv1.Actions, tendv1.Action(a)) {
			c.bad("%s: action %q is not in the catalogue", field, a)
		}
	}
	switch t := m.Target; {
	case t == nil && c.s.Oracle.Target == nil:
		c.bad("%s: no target, and no oracle.target to default to", field)
	case t == nil:
	case t.Name == "*":
		if t.Kind == "" {
			c.bad("%s.target: a wildcard target needs a kind", field)
		}
	case t.Kind == "Node":
		if !c.nodes[t.Name] {
			c.bad("%s.target: node %q is not one of the scenario's nodes", field, t.Name)
		}
	case !c.objects[t.Kind+"/"+t.Name]:
		c.bad("%s.target %s/%s is not an object the scenario creates", field, t.Kind, t.Name)
	}
}

func (c *vctx) usageProfiled() bool {
	return slices.ContainsFunc(c.s.Profiles, func(p sim.Profile) bool { return p.Usage != nil })
}

// approvals checks the scripted approvals.
func (c *vctx) approvals() {
	for i, a := range c.s.Approvals {
		field := fmt.Sprintf("approvals[%d]", i)
		if !approverUserRe.MatchString(a.User) || strings.HasPrefix(a.User, "tend-") || strings.HasPrefix(a.User, "system") {
			c.bad("%s.user %q must be a plain user name (not system:..., not tend-...)", field, a.User)
		}
		if a.Decision != "" && a.Decision != string(tendv1.ApprovalApprove) && a.Decision != string(tendv1.ApprovalDeny) {
			c.bad("%s.decision %q is not Approve or Deny", field, a.Decision)
		}
		if a.AfterSeconds < 0 || a.AfterSeconds > 600 {
			c.bad("%s.afterSeconds must be between 0 and 600", field)
		}
		if len(a.Reason) > 1024 {
			c.bad("%s.reason is longer than 1024 characters", field)
		}
		c.match(field+".proposal", a.Proposal)
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
