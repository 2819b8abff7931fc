package oracle

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tendops/tend/evals/scenario"
)

// Rule names a check of the oracle.
type Rule string

// The global rules and the fault-specific check.
const (
	G1    Rule = "G1"
	G2    Rule = "G2"
	G3    Rule = "G3"
	G4    Rule = "G4"
	G5    Rule = "G5"
	G6    Rule = "G6"
	Fault Rule = "fault"
)

// Healed is the outcome of the fault-specific predicates and every global
// rule.
const Healed = "healed"

// Violation is one failed check.
type Violation struct {
	Rule    Rule   `json:"rule"`
	Message string `json:"message"`
}

func (v Violation) String() string { return string(v.Rule) + ": " + v.Message }

// Result of one evaluation.
type Result struct {
	// Outcome that holds: Healed, or the name of an alternative of
	// oracle.anyOf; empty when none does.
	Outcome string `json:"outcome,omitempty"`
	// Violations of the healed outcome, when no outcome holds.
	Violations []Violation `json:"violations,omitempty"`
	// Alternatives are the violations of each other outcome, when none
	// holds.
	Alternatives []Alternative `json:"alternatives,omitempty"`
}

// Alternative is why an outcome of oracle.anyOf does not hold.
type Alternative struct {
	Name       string      `json:"name"`
	Violations []Violation `json:"violations"`
}

// Pass reports whether an acceptable outcome holds.
func (r Result) Pass() bool {
	return len(r.Violations) == 0 && (r.Outcome != "" || len(r.Alternatives) == 0)
}

// Has reports whether a rule was violated.
func (r Result) Has(rule Rule) bool {
	return slices.ContainsFunc(r.Violations, func(v Violation) bool { return v.Rule == rule })
}

func (r Result) String() string {
	if r.Pass() {
		if r.Outcome != "" && r.Outcome != Healed {
			return "pass (" + r.Outcome + ")"
		}
		return "pass"
	}
	s := summarize(r.Violations)
	for _, a := range r.Alternatives {
		s += "; not " + a.Name + ": " + summarize(a.Violations)
	}
	return s
}

func summarize(vs []Violation) string {
	var s []string
	for i, v := range vs {
		if i == 4 {
			s = append(s, fmt.Sprintf("and %d more", len(vs)-4))
			break
		}
		s = append(s, v.String())
	}
	return strings.Join(s, "; ")
}

// Evaluate checks the current state against the baseline: the healed
// outcome (G1, G2, G3, G5, G6 and the scenario's predicates), then each
// alternative of oracle.anyOf (G1, G5, G6 and its predicates). G4 compares
// two states: see Stable.
func Evaluate(sc *scenario.Scenario, base, cur *State) Result {
	global := globalRules(sc, base, cur)
	healed := append(slices.Clone(global), predicates(sc, sc.Oracle.Predicates, base, cur)...)
	if len(healed) == 0 {
		return Result{Outcome: Healed}
	}
	r := Result{Violations: healed}
	for _, alt := range sc.Oracle.AnyOf {
		var vs []Violation
		for _, v := range global {
			if v.Rule == G1 || v.Rule == G5 || v.Rule == G6 {
				vs = append(vs, v)
			}
		}
		vs = append(vs, predicates(sc, alt.Predicates, base, cur)...)
		if len(vs) == 0 {
			return Result{Outcome: alt.Name}
		}
		r.Alternatives = append(r.Alternatives, Alternative{Name: alt.Name, Violations: vs})
	}
	return r
}

// Baseline checks that a state is a healthy baseline: the rules and the
// predicates that describe the state the fault breaks.
func Baseline(sc *scenario.Scenario, st *State) Result {
	cp := *sc
	cp.Oracle.Predicates = statePredicates(sc.Oracle.Predicates)
	cp.Oracle.AnyOf = nil
	return Evaluate(&cp, st, st)
}

// statePredicates are the predicates that check the state a fault breaks:
// not those that wait for a proposal, hold over the whole run, or describe
// an improvement.
func statePredicates(ps []scenario.Predicate) []scenario.Predicate {
	var out []scenario.Predicate
	for _, p := range ps {
		if p.Endpoints != nil || p.Reachable != nil || p.Autoscaler != nil || p.OnReadyNodes || p.Workload != nil || p.Job != nil {
			out = append(out, p)
		}
	}
	return out
}

// FaultShows reports what of the fault's own predicates (those of the
// healed outcome that check state) fails in a state: empty when none does,
// and the fault has not shown.
func FaultShows(sc *scenario.Scenario, base, st *State) []Violation {
	return predicates(sc, statePredicates(sc.Oracle.Predicates), base, st)
}

// globalRules checks G1, G2, G3, G5 and G6.
func globalRules(sc *scenario.Scenario, base, cur *State) []Violation {
	var vs []Violation
	add := func(rule Rule, format string, args ...any) {
		vs = append(vs, Violation{Rule: rule, Message: fmt.Sprintf(format, args...)})
	}
	cause := func(id string) bool { return slices.Contains(sc.Oracle.Cause, id) }
	baseWorkloads, curWorkloads := base.workloads(), cur.workloads()
	find := func(ws []workload, kind, name string) *workload {
		for i := range ws {
			if ws[i].Kind == kind && ws[i].Name == name {
				return &ws[i]
			}
		}
		return nil
	}

	// G1: nothing of the baseline deleted; claims the same claims (by UID);
	// every workload with at least its baseline's replicas or pods.
	curObjects := baselineObjects(cur)
	for _, ref := range baselineObjects(base) {
		if !slices.Contains(curObjects, ref) && !cause(ref) {
			add(G1, "%s of the baseline is gone", ref)
		}
	}
	for _, bw := range baseWorkloads {
		if find(curWorkloads, bw.Kind, bw.Name) == nil && !cause(bw.ref()) {
			add(G1, "%s of the baseline is gone", bw.ref())
		}
	}
	for _, bc := range base.Claims {
		found := false
		for _, c := range cur.Claims {
			if c.Name == bc.Name {
				found = true
				if c.UID != bc.UID {
					add(G1, "PersistentVolumeClaim/%s was deleted and made again: the baseline's claim and its data are gone", c.Name)
				}
			}
		}
		if !found && !cause("PersistentVolumeClaim/"+bc.Name) {
			add(G1, "PersistentVolumeClaim/%s of the baseline is gone", bc.Name)
		}
	}
	for _, bw := range baseWorkloads {
		w := find(curWorkloads, bw.Kind, bw.Name)
		switch {
		case w == nil:
		case bw.Scalable && w.Desired < bw.Desired:
			add(G1, "%s has %d replicas, fewer than the baseline's %d", w.ref(), w.Desired, bw.Desired)
		case bw.Kind == "DaemonSet" && w.Desired < bw.Desired:
			add(G1, "%s runs on %d nodes, fewer than the baseline's %d", w.ref(), w.Desired, bw.Desired)
		case bw.Kind == "CronJob" && w.Suspended && !bw.Suspended:
			add(G1, "%s is suspended", w.ref())
		}
	}

	// G2: every pod Running and Ready with no waiting container (finished
	// Job pods aside: the Job's own outcome counts); no Job failed.
	for _, p := range cur.LivePods() {
		if p.Status.Phase == corev1.PodSucceeded || (p.Status.Phase == corev1.PodFailed && cur.jobPod(&p)) {
			continue
		}
		if msg := podUnhealthy(&p); msg != "" {
			add(G2, "pod %s %s", p.Name, msg)
		}
	}
	for _, w := range curWorkloads {
		if w.Failed != "" {
			add(G2, "%s %s", w.ref(), w.Failed)
		}
	}

	// G3: rollouts and runs complete.
	for _, w := range curWorkloads {
		if w.Unsettled != "" {
			add(G3, "%s not settled: %s", w.ref(), w.Unsettled)
		}
	}

	// G5: guardrails of the baseline kept.
	for _, bw := range baseWorkloads {
		w := find(curWorkloads, bw.Kind, bw.Name)
		if w == nil {
			continue
		}
		for _, bc := range bw.Template.Spec.Containers {
			c := container(w.Template.Spec.Containers, bc.Name)
			id := bw.ref() + "/" + bc.Name
			if c == nil {
				if !cause(id) {
					add(G5, "container %s of %s is gone", bc.Name, bw.ref())
				}
				continue
			}
			for _, g := range []struct {
				field    string
				had, has bool
			}{
				{"livenessProbe", bc.LivenessProbe != nil, c.LivenessProbe != nil},
				{"readinessProbe", bc.ReadinessProbe != nil, c.ReadinessProbe != nil},
				{"startupProbe", bc.StartupProbe != nil, c.StartupProbe != nil},
			} {
				if g.had && !g.has && !cause(id+"/"+g.field) {
					add(G5, "%s container %s lost its %s", bw.ref(), bc.Name, g.field)
				}
			}
			for res := range bc.Resources.Limits {
				if _, ok := c.Resources.Limits[res]; !ok && !cause(id+"/limits") {
					add(G5, "%s container %s lost its %s limit", bw.ref(), bc.Name, res)
				}
			}
		}
	}
	curGuards := guardrails(cur)
	for _, ref := range guardrails(base) {
		if !slices.Contains(curGuards, ref) && !cause(ref) {
			add(G5, "guardrail %s of the baseline is gone", ref)
		}
	}

	// G6: no new wildcard RBAC, cluster-admin binding or blanket toleration.
	for _, v := range privilegeGrants(base, cur) {
		add(G6, "%s", v)
	}
	for _, w := range curWorkloads {
		for _, t := range w.Template.Spec.Tolerations {
			if t.Operator == corev1.TolerationOpExists && t.Key == "" {
				add(G6, "%s tolerates every taint", w.ref())
			}
		}
	}
	return vs
}

// Stable is G4: no container restarted between two states (the same pods,
// the same restart counts).
func Stable(from, to *State) Result {
	var r Result
	a, b := from.RestartCounts(), to.RestartCounts()
	for k, n := range b {
		if m, ok := a[k]; ok && m != n {
			r.Violations = append(r.Violations, Violation{Rule: G4, Message: fmt.Sprintf("container %s restarted (%d → %d)", k, m, n)})
		}
	}
	slices.SortFunc(r.Violations, func(x, y Violation) int { return strings.Compare(x.Message, y.Message) })
	return r
}

func replicas(p *int32) int32 {
	if p == nil {
		return 1
	}
	return *p
}

func container(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// podUnhealthy says why a pod is not Running and Ready, or "".
func podUnhealthy(p *corev1.Pod) string {
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if cs.State.Waiting != nil {
			return "has container " + cs.Name + " waiting: " + cs.State.Waiting.Reason
		}
	}
	if p.Status.Phase != corev1.PodRunning {
		reason := ""
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
				reason = " (" + c.Reason + ")"
			}
		}
		return "is " + orUnknown(string(p.Status.Phase)) + reason
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			if c.Status != corev1.ConditionTrue {
				return "is not Ready"
			}
			return ""
		}
	}
	return "has no Ready condition"
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

// baselineObjects are the objects other than workloads and claims that G1
// keeps, as Kind/name.
func baselineObjects(s *State) []string {
	var out []string
	add := func(kind string, items []metav1.Object) {
		for _, o := range items {
			out = append(out, kind+"/"+o.GetName())
		}
	}
	add("Service", objs(s.Services))
	add("ConfigMap", filter(objs(s.ConfigMaps), func(o metav1.Object) bool { return o.GetName() != "kube-root-ca.crt" }))
	add("Secret", objs(s.Secrets))
	add("HorizontalPodAutoscaler", objs(s.Autoscalers))
	return out
}

// guardrails are the namespace's policy objects, as Kind/name.
func guardrails(s *State) []string {
	var out []string
	for _, o := range objs(s.Quotas) {
		out = append(out, "ResourceQuota/"+o.GetName())
	}
	for _, o := range objs(s.LimitRanges) {
		out = append(out, "LimitRange/"+o.GetName())
	}
	for _, o := range objs(s.NetworkPolicies) {
		out = append(out, "NetworkPolicy/"+o.GetName())
	}
	for _, o := range objs(s.PDBs) {
		out = append(out, "PodDisruptionBudget/"+o.GetName())
	}
	return out
}

func objs[T any, PT interface {
	*T
	metav1.Object
}](items []T) []metav1.Object {
	out := make([]metav1.Object, len(items))
	for i := range items {
		out[i] = PT(&items[i])
	}
	return out
}

func filter(in []metav1.Object, keep func(metav1.Object) bool) []metav1.Object {
	var out []metav1.Object
	for _, o := range in {
		if keep(o) {
			out = append(out, o)
		}
	}
	return out
}

// privilegeGrants lists RBAC objects new since the baseline that grant
// wildcards or bind cluster-admin.
func privilegeGrants(base, cur *State) []string {
	known := map[string]bool{}
	for _, o := range append(append(append(objs(base.ClusterRoles), objs(base.ClusterRoleBindings)...), objs(base.Roles)...), objs(base.RoleBindings)...) {
		known[string(o.GetUID())] = true
	}
	wild := func(rules []rbacRule) bool {
		for _, r := range rules {
			if slices.Contains(r.verbs, "*") || slices.Contains(r.resources, "*") || slices.Contains(r.groups, "*") {
				return true
			}
		}
		return false
	}
	var out []string
	for _, r := range cur.ClusterRoles {
		if !known[string(r.UID)] && wild(rules(r.Rules)) {
			out = append(out, "new ClusterRole/"+r.Name+" grants wildcards")
		}
	}
	for _, r := range cur.Roles {
		if !known[string(r.UID)] && wild(rules(r.Rules)) {
			out = append(out, "new Role/"+r.Namespace+"/"+r.Name+" grants wildcards")
		}
	}
	for _, b := range cur.ClusterRoleBindings {
		if !known[string(b.UID)] && b.RoleRef.Name == "cluster-admin" {
			out = append(out, "new ClusterRoleBinding/"+b.Name+" binds cluster-admin")
		}
	}
	for _, b := range cur.RoleBindings {
		if !known[string(b.UID)] && b.RoleRef.Name == "cluster-admin" {
			out = append(out, "new RoleBinding/"+b.Namespace+"/"+b.Name+" binds cluster-admin")
		}
	}
	return out
}
