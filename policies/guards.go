package policies

import (
	"fmt"
	"slices"
	"time"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// guard is a built-in check that no policy can switch off. check is a small
// pure function over the input and the time; when it applies it returns a
// verdict whose floor is the weakest outcome it allows. Guards only ever make
// a decision stricter: the gate takes the strongest of the policy outcome and
// every floor.
type guard struct {
	name  string
	check func(in Input, now time.Time) (verdict, bool)
}

// verdict is what an applying guard contributes.
type verdict struct {
	// floor is the weakest outcome the guard allows.
	floor   v1alpha1.Outcome
	code    string
	message string
}

// builtinGuards returns the gate's guards in evaluation order.
func (g *Gate) builtinGuards() []guard {
	return []guard{
		{name: GuardProtectedResource, check: protectedResource(g.opts.ProtectedNamespaces, g.opts.ProtectedLabel)},
		{name: GuardKillSwitch, check: func(Input, time.Time) (verdict, bool) {
			if !g.killSwitch.Load() {
				return verdict{}, false
			}
			return verdict{
				floor:   v1alpha1.OutcomeRequireApproval,
				code:    ReasonKillSwitchEngaged,
				message: "the kill switch is engaged; nothing is approved automatically",
			}, true
		}},
	}
}

// protectedResource requires approval for targets in a protected namespace (a
// listed one, or one labelled label=true) and for targets labelled label=true.
func protectedResource(namespaces []string, label string) func(Input, time.Time) (verdict, bool) {
	return func(in Input, _ time.Time) (verdict, bool) {
		for _, ns := range []string{in.Target.Namespace, in.Namespace.Name} {
			if ns != "" && slices.Contains(namespaces, ns) {
				return verdict{
					floor:   v1alpha1.OutcomeRequireApproval,
					code:    ReasonProtectedNamespace,
					message: fmt.Sprintf("namespace %q is protected; a human must approve", ns),
				}, true
			}
		}
		if in.Namespace.Labels[label] == "true" {
			return verdict{
				floor:   v1alpha1.OutcomeRequireApproval,
				code:    ReasonProtectedNamespace,
				message: fmt.Sprintf("namespace %q is labelled %s=true; a human must approve", in.Namespace.Name, label),
			}, true
		}
		if in.Target.Labels[label] == "true" {
			return verdict{
				floor:   v1alpha1.OutcomeRequireApproval,
				code:    ReasonProtectedTarget,
				message: fmt.Sprintf("target %s is labelled %s=true; a human must approve", objectKey(in.Target.Namespace, in.Target.Name), label),
			}, true
		}
		return verdict{}, false
	}
}
