package policies

import (
	"fmt"
	"slices"
	"strings"
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
	check func(c *guardContext) (verdict, bool)
}

// guardContext is everything a guard may look at.
type guardContext struct {
	in  *Input
	st  *State
	lim *Limits
	now time.Time
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
		{name: GuardKillSwitch, check: func(*guardContext) (verdict, bool) {
			if !g.killSwitch.Load() {
				return verdict{}, false
			}
			return verdict{
				floor:   v1alpha1.OutcomeRequireApproval,
				code:    ReasonKillSwitchEngaged,
				message: "the kill switch is engaged; nothing is approved automatically",
			}, true
		}},
		{name: GuardFacts, check: facts},
		{name: GuardCircuitBreaker, check: circuitBreaker},
		{name: GuardFreeze, check: freeze},
		{name: GuardChangeWindow, check: changeWindow},
		{name: GuardRunWindow, check: runWindow},
		{name: GuardBlastRadius, check: blastRadius},
		{name: GuardRate, check: rate},
		{name: GuardPatchPaths, check: patchPaths},
		{name: GuardDisruptionBudget, check: disruptionBudget},
	}
}

// protectedResource requires approval for targets in a protected namespace (a
// listed one, or one labelled label=true) and for targets labelled label=true.
func protectedResource(namespaces []string, label string) func(*guardContext) (verdict, bool) {
	return func(c *guardContext) (verdict, bool) {
		in := c.in
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

// facts holds automatic approval when the controller could not establish
// the facts a decision rests on: none at all, or, for a rollback, that the
// revision it returns to ever ran healthy. What a proposal claims about
// itself never stands in for a fact.
func facts(c *guardContext) (verdict, bool) {
	f := &c.in.Facts
	if !f.Gathered {
		return requireApproval(ReasonFactsMissing, "the controller gathered no facts about the target; a human must decide")
	}
	if v1alpha1.Action(c.in.Action) == v1alpha1.ActionRollbackWorkload && !f.Revision.ToHealthy {
		if f.Revision.To == 0 {
			return requireApproval(ReasonRevisionNotHealthy, "the controller found no earlier revision to return to")
		}
		return requireApproval(ReasonRevisionNotHealthy, "the controller found no record that revision %d ever ran healthy", f.Revision.To)
	}
	return verdict{}, false
}

// requireApproval is the verdict of every guard but the input checks.
func requireApproval(code, format string, args ...any) (verdict, bool) {
	return verdict{floor: v1alpha1.OutcomeRequireApproval, code: code, message: truncate(fmt.Sprintf(format, args...), maxMessageLength)}, true
}

// circuitBreaker holds automatic approval after failures. The cluster
// breaker holds every proposal while tripped, and trips when failures or
// volume in the window cross the cluster limits; the controller persists a
// trip and only a reset clears it. The per-proposer and per-target breakers
// hold only the proposals of a proposer, or for a target, whose own
// failures in the window reach their limits, so that one misbehaving agent
// or one flapping workload cannot stop the others.
func circuitBreaker(c *guardContext) (verdict, bool) {
	if c.st.Breaker.Tripped {
		return requireApproval(ReasonCircuitOpen, "the circuit breaker is open (%s); nothing is approved automatically until it is reset", c.st.Breaker.Reason)
	}
	if reason := breakerTrip(c); reason != "" {
		return requireApproval(ReasonCircuitOpen, "the circuit breaker trips: %s; nothing is approved automatically until it is reset", reason)
	}
	since := breakerSince(c)
	target := TargetKey(c.in.Target.Kind, c.in.Target.Namespace, c.in.Target.Name)
	var byProposer, byTarget int64
	for _, r := range c.st.Recent {
		if !r.failed() || !r.Finished.After(since) {
			continue
		}
		if r.Proposer != "" && r.Proposer == c.in.Proposer.Username {
			byProposer++
		}
		if r.Target == target {
			byTarget++
		}
	}
	switch {
	case byProposer >= c.lim.BreakerPerProposer:
		return requireApproval(ReasonProposerBreakerOpen, "%d proposals of %s failed or were rolled back within %s (limit %d); its proposals need a human until they age out", byProposer, c.in.Proposer.Username, c.lim.BreakerWindow, c.lim.BreakerPerProposer)
	case byTarget >= c.lim.BreakerPerTarget:
		return requireApproval(ReasonTargetBreakerOpen, "%d proposals for %s failed or were rolled back within %s (limit %d); changes to it need a human until they age out", byTarget, objectKey(c.in.Target.Namespace, c.in.Target.Name), c.lim.BreakerWindow, c.lim.BreakerPerTarget)
	}
	return verdict{}, false
}

// breakerSince is when the breaker's window starts: the window, or the last
// reset if later.
func breakerSince(c *guardContext) time.Time {
	since := c.now.Add(-c.lim.BreakerWindow)
	if c.st.Breaker.ResetAt.After(since) {
		since = c.st.Breaker.ResetAt
	}
	return since
}

// breakerTrip returns why the cluster breaker should trip now, or "".
func breakerTrip(c *guardContext) string {
	since := breakerSince(c)
	var failures, proposals int64
	for _, r := range c.st.Recent {
		if r.Created.After(since) {
			proposals++
		}
		if r.failed() && r.Finished.After(since) {
			failures++
		}
	}
	switch {
	case failures >= c.lim.BreakerMaxFailures:
		return fmt.Sprintf("%d proposals failed or were rolled back within %s (limit %d)", failures, c.lim.BreakerWindow, c.lim.BreakerMaxFailures)
	case proposals+1 > c.lim.BreakerMaxProposals:
		return fmt.Sprintf("%d proposals within %s (limit %d)", proposals+1, c.lim.BreakerWindow, c.lim.BreakerMaxProposals)
	}
	return ""
}

// freeze holds automatic approval during a change freeze.
func freeze(c *guardContext) (verdict, bool) {
	for _, f := range c.lim.Freezes {
		if !c.now.Before(f.Start.Time) && c.now.Before(f.End.Time) {
			return requireApproval(ReasonChangeFreeze, "change freeze %q until %s: %s", f.Name, f.End.UTC().Format(time.RFC3339), f.Reason)
		}
	}
	return verdict{}, false
}

// changeWindow holds automatic approval outside the change windows: now
// must fall in a window of every policy that sets windows.
func changeWindow(c *guardContext) (verdict, bool) {
	for _, set := range c.lim.WindowSets {
		if !slices.ContainsFunc(set, func(w ChangeWindow) bool { return w.inWindow(c.now) }) {
			specs := make([]string, len(set))
			for i, w := range set {
				specs[i] = fmt.Sprintf("%q for %s (%s)", w.Spec, w.Duration, w.Location)
			}
			return requireApproval(ReasonOutsideChangeWindow, "outside the change windows %s", strings.Join(specs, ", "))
		}
	}
	return verdict{}, false
}

// runWindow keeps an improvement run's changes inside the run's window. A
// proposal that names a run which does not list it is denied: what is in a
// run, and when its window closes, is the run object's to say, never the
// proposal's. A change of a run whose window has closed is denied, not held
// for a human: the window does not open again, and nothing of the run is
// applied outside it. An undo is never held to the window.
func runWindow(c *guardContext) (verdict, bool) {
	r := &c.in.Facts.Run
	switch {
	case r.Name == "" || r.Undo && r.Member:
		return verdict{}, false
	case !r.Member:
		return deny(ReasonNotInRun, "the proposal names improvement run %s, which does not list it; a run's changes are the ones its run proposed", r.Name)
	case r.WindowEnd.IsZero():
		return deny(ReasonOutsideRunWindow, "the controller found no window for improvement run %s", r.Name)
	case !c.now.Before(r.WindowEnd):
		return deny(ReasonOutsideRunWindow, "the window of improvement run %s closed at %s; nothing of the run is applied outside it", r.Name, r.WindowEnd.UTC().Format(time.RFC3339))
	}
	return verdict{}, false
}

// deny is the verdict of a guard whose limit no approval can lift.
func deny(code, format string, args ...any) (verdict, bool) {
	return verdict{floor: v1alpha1.OutcomeDeny, code: code, message: truncate(fmt.Sprintf(format, args...), maxMessageLength)}, true
}

// blastRadius bounds how much one action, and tend as a whole, disrupts at
// once. Taking down more of a workload, or more nodes, than the policies
// allow is denied: a human's approval does not lift a policy's limit. More
// proposals applying at once than allowed waits for a human.
func blastRadius(c *guardContext) (verdict, bool) {
	if p := c.in.Facts.Disruption.Percent; p > c.lim.MaxDisruptedPercent {
		return deny(ReasonBlastRadius, "the action takes down %d%% of a workload's replicas at once (limit %d%%)", p, c.lim.MaxDisruptedPercent)
	}
	if info, ok := v1alpha1.LookupAction(v1alpha1.Action(c.in.Action)); ok && info.NodeWide && c.in.Target.Kind == "Node" {
		if c.st.NodesDisrupted+1 > c.lim.MaxNodesDisrupted {
			return deny(ReasonBlastRadius, "%d nodes are already cordoned or draining; one more exceeds the limit of %d", c.st.NodesDisrupted, c.lim.MaxNodesDisrupted)
		}
	}
	var inNamespace, inCluster int64
	for _, r := range c.st.Recent {
		if r.applying() {
			inCluster++
			if r.Namespace != "" && r.Namespace == c.in.Target.Namespace {
				inNamespace++
			}
		}
	}
	if c.in.Target.Namespace != "" && inNamespace >= c.lim.MaxApplyingPerNamespace {
		return requireApproval(ReasonTooManyApplying, "%d proposals are applying in namespace %s (limit %d)", inNamespace, c.in.Target.Namespace, c.lim.MaxApplyingPerNamespace)
	}
	if inCluster >= c.lim.MaxApplyingPerCluster {
		return requireApproval(ReasonTooManyApplying, "%d proposals are applying in the cluster (limit %d)", inCluster, c.lim.MaxApplyingPerCluster)
	}
	return verdict{}, false
}

// rate bounds the proposals of an action per window: in the cluster, per
// proposer or per target, as each limit says.
func rate(c *guardContext) (verdict, bool) {
	target := TargetKey(c.in.Target.Kind, c.in.Target.Namespace, c.in.Target.Name)
	for _, rl := range c.lim.RateLimits {
		if rl.Action != "*" && rl.Action != c.in.Action {
			continue
		}
		since := c.now.Add(-rl.Window)
		var n int64 = 1 // this proposal
		for _, r := range c.st.Recent {
			if (rl.Action != "*" && r.Action != rl.Action) || !r.Created.After(since) {
				continue
			}
			switch rl.Per {
			case v1alpha1.RateScopeProposer:
				if r.Proposer != c.in.Proposer.Username {
					continue
				}
			case v1alpha1.RateScopeTarget:
				if r.Target != target {
					continue
				}
			}
			n++
		}
		if n > rl.Max {
			what := "proposals"
			if rl.Action != "*" {
				what = rl.Action + " proposals"
			}
			switch rl.Per {
			case v1alpha1.RateScopeProposer:
				what += " by " + c.in.Proposer.Username
			case v1alpha1.RateScopeTarget:
				what += " for " + objectKey(c.in.Target.Namespace, c.in.Target.Name)
			}
			return requireApproval(ReasonRateLimited, "%d %s within %s (limit %d)", n, what, rl.Window, rl.Max)
		}
	}
	return verdict{}, false
}

// sensitivePaths are never patched without a human.
var sensitivePaths = []string{"/metadata/ownerReferences", "/metadata/finalizers"}

// patchPaths denies a generic patch that touches a path outside the
// catalogue's table for the target's kind (v1alpha1.PatchPaths), which the
// controller would refuse to apply anyway, and holds for a human one that
// touches a path outside what every path-listing policy allows, or a
// security-relevant one should the table ever list it.
func patchPaths(c *guardContext) (verdict, bool) {
	if v1alpha1.Action(c.in.Action) != v1alpha1.ActionPatchWorkload {
		return verdict{}, false
	}
	paths := c.in.Parameters.PatchPaths
	if len(paths) == 0 {
		return deny(ReasonPatchPathNotAllowed, "the patch touches no path")
	}
	for _, p := range paths {
		if !v1alpha1.PatchPathAllowed(c.in.Target.Kind, p) {
			return deny(ReasonPatchPathNotAllowed, "path %q is not one PatchWorkload may touch on a %s (its containers' image, command, args, env, ports and probes, nodeSelector, affinity and tolerations; a Service's selector and ports)", p, c.in.Target.Kind)
		}
	}
	for _, p := range paths {
		if strings.Contains(strings.ToLower(p), "securitycontext") || slices.ContainsFunc(sensitivePaths, func(s string) bool { return underPath(p, s) }) ||
			strings.HasSuffix(p, "/serviceAccountName") || strings.HasSuffix(p, "/privileged") {
			return requireApproval(ReasonSensitivePatch, "path %q touches securityContext, RBAC, ownerReferences or finalizers; a human must approve", p)
		}
	}
	for _, p := range paths {
		for _, set := range c.lim.PatchPathSets {
			if !slices.ContainsFunc(set, func(prefix string) bool { return underPath(p, prefix) }) {
				return requireApproval(ReasonPatchPathNotAllowed, "path %q is not among the allowed patch paths %v", p, set)
			}
		}
	}
	return verdict{}, false
}

// disruptionBudget denies an eviction, or a drain, that a
// PodDisruptionBudget refuses now: the budget is never violated, and an
// approval does not change what it allows. The decision names the budget.
func disruptionBudget(c *guardContext) (verdict, bool) {
	d := &c.in.Facts.Disruption
	if d.PDB == "" {
		return verdict{}, false
	}
	return deny(ReasonDisruptionBudget, "PodDisruptionBudget %s allows %d disruptions now and the action needs more; wait for its pods to be ready or change the budget", d.PDB, d.PDBAllowed)
}

// underPath reports whether JSON pointer p is prefix or below it.
func underPath(p, prefix string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	return p == prefix || strings.HasPrefix(p, prefix+"/")
}
