package policies

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// Defaults of Options.
const (
	DefaultCostLimit               uint64 = 100000
	DefaultInterruptCheckFrequency uint   = 100
	DefaultProtectedLabel                 = "tend.dev/protected"
)

// DefaultProtectedNamespaces are the namespaces whose targets never
// auto-approve when Options names none: the cluster's own, and tend's.
var DefaultProtectedNamespaces = []string{"kube-system", "kube-public", v1alpha1.DefaultSystemNamespace}

// Options configure a Gate. The zero value is valid: every field has a default.
type Options struct {
	// CostLimit is the CEL runtime cost limit of one rule evaluation. A rule
	// that exceeds it is an evaluation error, so a Deny. Default
	// DefaultCostLimit.
	CostLimit uint64
	// InterruptCheckFrequency is how many comprehension iterations run between
	// checks of the context given to DecideContext. Default
	// DefaultInterruptCheckFrequency.
	InterruptCheckFrequency uint
	// ProtectedNamespaces are namespaces whose targets never auto-approve.
	// Empty means DefaultProtectedNamespaces.
	ProtectedNamespaces []string
	// ProtectedLabel is the label that, set to "true" on a namespace or a
	// target, protects it. Default DefaultProtectedLabel.
	ProtectedLabel string
	// KillSwitch is the initial state of the kill switch; see
	// Gate.SetKillSwitch.
	KillSwitch bool
}

func (o Options) withDefaults() Options {
	if o.CostLimit == 0 {
		o.CostLimit = DefaultCostLimit
	}
	if o.InterruptCheckFrequency == 0 {
		o.InterruptCheckFrequency = DefaultInterruptCheckFrequency
	}
	if len(o.ProtectedNamespaces) == 0 {
		o.ProtectedNamespaces = slices.Clone(DefaultProtectedNamespaces)
	} else {
		o.ProtectedNamespaces = slices.Clone(o.ProtectedNamespaces)
	}
	if o.ProtectedLabel == "" {
		o.ProtectedLabel = DefaultProtectedLabel
	}
	return o
}

// Gate decides proposals. It is safe for concurrent use: Load swaps in a new
// immutable compiled snapshot atomically, and Decide takes no locks.
type Gate struct {
	env    *cel.Env
	inputs *inputTypes
	opts   Options
	guards []guard

	killSwitch atomic.Bool
	// loadMu serializes Load; Decide never takes it.
	loadMu sync.Mutex
	snap   atomic.Pointer[snapshot]
}

// snapshot is one immutable compiled set of policies, sorted by name.
type snapshot struct {
	policies []compiledPolicy
	// byAction holds the scope of each catalogue action, so that a decision
	// skips the policies out of scope without looking at them. Set by index.
	byAction map[string]*scope
	limits   Limits
}

// New builds a Gate and its CEL environment. Until Load is called, every
// decision is at best RequireApproval (NoPolicies).
func New(opts Options) (*Gate, error) {
	env, inputs, err := newEnv()
	if err != nil {
		return nil, err
	}
	g := &Gate{
		env:    env,
		inputs: inputs,
		opts:   opts.withDefaults(),
	}
	g.killSwitch.Store(opts.KillSwitch)
	g.guards = g.builtinGuards()
	return g, nil
}

// SetKillSwitch engages (true) or releases (false) the kill switch. While it
// is engaged nothing is approved automatically.
func (g *Gate) SetKillSwitch(engaged bool) { g.killSwitch.Store(engaged) }

// KillSwitch reports whether the kill switch is engaged.
func (g *Gate) KillSwitch() bool { return g.killSwitch.Load() }

// PolicyResult reports how one GatePolicy loaded, for its Ready or Invalid
// condition.
type PolicyResult struct {
	// Name of the policy.
	Name string
	// Generation of the policy object that was compiled.
	Generation int64
	// Valid is true when every rule validated and compiled.
	Valid bool
	// Err joins the errors of the policy, each naming its rule; nil when Valid.
	Err error
}

// Load validates and compiles policies, replaces the gate's policy set with
// them atomically, and reports per policy (in the order given) whether it is
// valid. Invalid policies stay in force as denials for the actions in their
// scope. Load(nil) unloads every policy.
func (g *Gate) Load(policies []v1alpha1.GatePolicy) []PolicyResult {
	g.loadMu.Lock()
	defer g.loadMu.Unlock()

	results := make([]PolicyResult, len(policies))
	compiled := make([]compiledPolicy, len(policies))
	seen := make(map[string]struct{}, len(policies))
	var limits []policyLimits
	for i := range policies {
		gp := &policies[i]
		cp := g.compilePolicySafe(gp)
		if cp.err == nil {
			pl, err := compileGuards(gp.Spec.Guards)
			if err != nil {
				cp.err, cp.rules = err, nil
			} else {
				limits = append(limits, pl)
			}
		}
		if _, dup := seen[gp.Name]; dup && cp.err == nil {
			cp.err = fmt.Errorf("%w: duplicate policy name %q", ErrInvalidPolicy, gp.Name)
			cp.rules = nil
		}
		seen[gp.Name] = struct{}{}
		compiled[i] = cp
		results[i] = PolicyResult{Name: gp.Name, Generation: gp.Generation, Valid: cp.err == nil, Err: cp.err}
	}
	slices.SortStableFunc(compiled, func(a, b compiledPolicy) int { return cmp.Compare(a.name, b.name) })
	g.snap.Store((&snapshot{policies: compiled, limits: mergeLimits(limits)}).index())
	return results
}

// compilePolicySafe is compilePolicy that turns a panic into an invalid policy.
func (g *Gate) compilePolicySafe(gp *v1alpha1.GatePolicy) (cp compiledPolicy) {
	defer func() {
		if p := recover(); p != nil {
			cp = compiledPolicy{
				name:       gp.Name,
				allActions: true,
				err:        fmt.Errorf("%w: internal error while compiling: %v", ErrInvalidPolicy, p),
			}
		}
	}()
	return g.compilePolicy(gp)
}

// Result is one gate decision.
type Result struct {
	// Outcome of the decision.
	Outcome v1alpha1.Outcome
	// Policy and Rule that decided the outcome; empty when a guard, an input
	// check or the absence of a matching rule decided it.
	Policy, Rule string
	// Reasons lists every contributing reason, strongest first.
	Reasons []v1alpha1.Reason
	// RequiredApprovals is set when Outcome is RequireApproval.
	RequiredApprovals int32
	// ApproverGroups, if set, are the groups an approver must belong to (any
	// of them); only with RequireApproval.
	ApproverGroups []string
	// TripBreaker, when not empty, says why the circuit breaker must trip
	// now; the caller persists the trip so it holds until a reset.
	TripBreaker string
}

// Decision returns r as the Proposal's decision record.
func (r Result) Decision(specHash, targetResourceVersion string, decidedAt time.Time) v1alpha1.Decision {
	return v1alpha1.Decision{
		Outcome:               r.Outcome,
		Policy:                r.Policy,
		Rule:                  r.Rule,
		Reasons:               slices.Clone(r.Reasons),
		RequiredApprovals:     r.RequiredApprovals,
		ApproverGroups:        slices.Clone(r.ApproverGroups),
		SpecHash:              specHash,
		TargetResourceVersion: targetResourceVersion,
		DecidedAt:             metav1.NewTime(decidedAt),
	}
}

// Decide decides in at time now. It never panics and never returns
// AutoApprove from a path that saw an error.
func (g *Gate) Decide(in Input, now time.Time) Result {
	return g.DecideContext(context.Background(), in, now)
}

// DecideContext is Decide with a context that interrupts long rule
// evaluations; an interrupted rule is an evaluation error, so a Deny. A caller
// whose ctx ended should discard the result.
func (g *Gate) DecideContext(ctx context.Context, in Input, now time.Time) Result {
	return g.DecideState(ctx, in, State{}, now)
}

// Limits returns the guard limits in force.
func (g *Gate) Limits() Limits {
	if snap := g.snap.Load(); snap != nil {
		return snap.limits
	}
	return DefaultLimits()
}

// DecideState is DecideContext with the guards' view of the cluster, which a
// gatherer collected. It never panics and never returns AutoApprove from a
// path that saw an error.
func (g *Gate) DecideState(ctx context.Context, in Input, st State, now time.Time) (res Result) {
	defer func() {
		if p := recover(); p != nil {
			res = Result{
				Outcome: v1alpha1.OutcomeDeny,
				Reasons: []v1alpha1.Reason{{
					Code:    ReasonInternalError,
					Message: truncate(fmt.Sprintf("the gate failed: %v", p), maxMessageLength),
				}},
			}
		}
	}()

	var d decision
	if checkInput(&d, &in) {
		return d.result()
	}

	snap := g.snap.Load()
	if snap == nil || len(snap.policies) == 0 {
		d.add(v1alpha1.OutcomeRequireApproval, v1alpha1.Reason{
			Code:    ReasonNoPolicies,
			Message: "no gate policy is loaded; a human must approve",
		}, minApprovals, nil)
	} else {
		g.evaluate(ctx, &d, snap, &in, now)
		if len(d.entries) == 0 {
			d.add(v1alpha1.OutcomeRequireApproval, v1alpha1.Reason{
				Code:    ReasonNoMatchingRule,
				Message: fmt.Sprintf("no gate rule matched action %s; a human must approve", in.Action),
			}, minApprovals, nil)
		}
	}

	var lim Limits
	if snap != nil {
		lim = snap.limits
	} else {
		lim = DefaultLimits()
	}
	gc := &guardContext{in: &in, st: &st, lim: &lim, now: now}
	for _, gd := range g.guards {
		v, ok := gd.check(gc)
		if !ok {
			continue
		}
		floor := v.floor
		if rank(floor) < 0 {
			floor = v1alpha1.OutcomeDeny
		}
		d.add(floor, v1alpha1.Reason{Code: v.code, Message: v.message, Guard: gd.name}, minApprovals, nil)
	}
	res = d.result()
	if !st.Breaker.Tripped {
		res.TripBreaker = breakerTrip(gc)
	}
	return res
}

// checkInput records a Deny for an input the gate cannot decide on and
// reports whether it did.
func checkInput(d *decision, in *Input) bool {
	if !knownAction(in.Action) {
		d.add(v1alpha1.OutcomeDeny, v1alpha1.Reason{
			Code:    ReasonUnknownAction,
			Message: truncate(fmt.Sprintf("action %q is not in the action catalogue", in.Action), maxMessageLength),
		}, 0, nil)
	}
	t := &in.Target
	if info, ok := v1alpha1.LookupAction(v1alpha1.Action(in.Action)); ok && t.Name != "" {
		if _, ok := info.Target(t.APIVersion, t.Kind); !ok {
			d.add(v1alpha1.OutcomeDeny, v1alpha1.Reason{
				Code:    ReasonTargetKind,
				Message: truncate(fmt.Sprintf("%s acts on %s, not %s %s", in.Action, strings.Join(info.Kinds(), ", "), t.APIVersion, t.Kind), maxMessageLength),
			}, 0, nil)
		}
	}
	switch {
	case t.Name == "":
		d.add(v1alpha1.OutcomeDeny, v1alpha1.Reason{
			Code:    ReasonTargetNotFound,
			Message: "the proposal names no target",
		}, 0, nil)
	case !t.Exists:
		d.add(v1alpha1.OutcomeDeny, v1alpha1.Reason{
			Code:    ReasonTargetNotFound,
			Message: truncate(fmt.Sprintf("target %s %s was not found", t.Kind, objectKey(t.Namespace, t.Name)), maxMessageLength),
		}, 0, nil)
	case t.Namespace != "" && in.Namespace.Name != t.Namespace:
		d.add(v1alpha1.OutcomeDeny, v1alpha1.Reason{
			Code:    ReasonTargetNotFound,
			Message: truncate(fmt.Sprintf("no facts about the target's namespace %q", t.Namespace), maxMessageLength),
		}, 0, nil)
	case t.Namespace != "" && !in.Namespace.Exists:
		d.add(v1alpha1.OutcomeDeny, v1alpha1.Reason{
			Code:    ReasonTargetNotFound,
			Message: truncate(fmt.Sprintf("namespace %q of the target was not found", t.Namespace), maxMessageLength),
		}, 0, nil)
	}
	return len(d.entries) > 0
}

// evaluate runs every rule of every policy in scope of in.Action. The input
// is converted to CEL values once, for all rules; a rule that a failed
// precondition shows to be false is not evaluated (see precondition).
func (g *Gate) evaluate(ctx context.Context, d *decision, snap *snapshot, in *Input, now time.Time) {
	proposal, slots, size, release := g.inputs.newPooledInput(in)
	defer release()
	act := &activation{proposal: proposal, slots: slots, now: types.Timestamp{Time: now.UTC()}}
	// Rules whose cost cannot exceed the limit for this input run without
	// cost tracking; see compileWhen.
	within := size.within()
	// Only comprehensions check for interrupts: when the context can end, a
	// rule with one runs with ContextEval. Every other rule runs with Eval,
	// all in one execution frame.
	cancellable := ctx.Done() != nil
	var frame interpreter.Activation = act
	if f, err := interpreter.NewExecutionFrame(act); err == nil {
		defer f.Close()
		frame = f
	}
	sc := snap.scopeOf(in.Action)
	var buf skipBuffer
	skipped := sc.index.skipped(slots, within, &buf)
	id := -1
	for _, p := range sc.policies {
		if p.err != nil {
			d.add(v1alpha1.OutcomeDeny, v1alpha1.Reason{
				Code:    ReasonPolicyInvalid,
				Message: truncate(fmt.Sprintf("gate policy %q is invalid: %v", p.name, p.err), maxMessageLength),
				Policy:  p.name,
			}, 0, nil)
			continue
		}
		for j := range p.rules {
			id++
			if skipped.has(id) {
				continue // a precondition failed: the rule is false
			}
			r := &p.rules[j]
			prg := r.program
			if r.cost == costBounded || r.cost == costBoundedSmall && within {
				prg = r.untracked
			}
			var matched bool
			var err error
			if cancellable && r.loops {
				matched, err = evalContext(ctx, prg, act)
			} else {
				matched, err = eval(prg, frame)
			}
			switch {
			case err != nil:
				d.add(v1alpha1.OutcomeDeny, v1alpha1.Reason{
					Code:    ReasonEvaluationError,
					Message: truncate(fmt.Sprintf("rule %q of gate policy %q failed: %v", r.name, p.name, err), maxMessageLength),
					Policy:  p.name,
					Rule:    r.name,
				}, 0, nil)
			case matched:
				d.add(r.outcome, v1alpha1.Reason{
					Code:    r.reason,
					Message: r.message,
					Policy:  p.name,
					Rule:    r.name,
				}, r.approvals, r.groups)
			}
		}
	}
}

// eval runs a rule's program. Anything but a bool result is an error.
func eval(prg cel.Program, act interpreter.Activation) (bool, error) {
	out, _, err := prg.Eval(act)
	return ruleResult(out, err)
}

// evalContext is eval with interrupt checks of ctx.
func evalContext(ctx context.Context, prg cel.Program, act interpreter.Activation) (bool, error) {
	out, _, err := prg.ContextEval(ctx, act)
	return ruleResult(out, err)
}

func ruleResult(out ref.Val, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, fmt.Errorf("rule yielded %s, not bool", out.Type().TypeName())
	}
	return bool(b), nil
}

// activation binds the two rule variables, and the slots of the input's
// fields, without a map.
type activation struct {
	proposal ref.Val
	slots    []ref.Val
	now      ref.Val
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	if i, ok := slotOf(name); ok {
		if i < len(a.slots) {
			return a.slots[i], true
		}
		return nil, false
	}
	switch name {
	case "proposal":
		return a.proposal, true
	case "now":
		return a.now, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// rank orders outcomes by strength; an unknown outcome ranks -1.
func rank(o v1alpha1.Outcome) int {
	switch o {
	case v1alpha1.OutcomeAutoApprove:
		return 0
	case v1alpha1.OutcomeRequireApproval:
		return 1
	case v1alpha1.OutcomeDeny:
		return 2
	}
	return -1
}

// decision accumulates contributions to one Result.
type decision struct {
	entries []entry
}

type entry struct {
	outcome   v1alpha1.Outcome
	reason    v1alpha1.Reason
	approvals int32
	groups    []string
}

// add records one contribution. An unknown outcome is recorded as Deny.
func (d *decision) add(o v1alpha1.Outcome, r v1alpha1.Reason, approvals int32, groups []string) {
	if rank(o) < 0 {
		o = v1alpha1.OutcomeDeny
	}
	d.entries = append(d.entries, entry{outcome: o, reason: r, approvals: approvals, groups: groups})
}

// result folds the contributions: the strongest outcome wins; reasons are
// listed strongest first, in the order they were added within one strength.
func (d *decision) result() Result {
	if len(d.entries) == 0 {
		// Unreachable by construction; fail closed regardless.
		return Result{
			Outcome: v1alpha1.OutcomeDeny,
			Reasons: []v1alpha1.Reason{{Code: ReasonInternalError, Message: "the gate reached no decision"}},
		}
	}
	slices.SortStableFunc(d.entries, func(a, b entry) int { return cmp.Compare(rank(b.outcome), rank(a.outcome)) })
	top := d.entries[0]
	res := Result{
		Outcome: top.outcome,
		Policy:  top.reason.Policy,
		Rule:    top.reason.Rule,
		Reasons: make([]v1alpha1.Reason, len(d.entries)),
	}
	for i, e := range d.entries {
		res.Reasons[i] = e.reason
		if res.Outcome != v1alpha1.OutcomeRequireApproval || e.outcome != v1alpha1.OutcomeRequireApproval {
			continue
		}
		res.RequiredApprovals = max(res.RequiredApprovals, e.approvals, minApprovals)
		for _, grp := range e.groups {
			if !slices.Contains(res.ApproverGroups, grp) {
				res.ApproverGroups = append(res.ApproverGroups, grp)
			}
		}
	}
	slices.Sort(res.ApproverGroups)
	return res
}

func objectKey(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// truncate cuts s to at most n runes so that a reason message fits the API's
// limits whatever an error or an input contained.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	var b strings.Builder
	i := 0
	for _, r := range s {
		if i == n-1 {
			b.WriteRune('…')
			break
		}
		b.WriteRune(r)
		i++
	}
	return b.String()
}
