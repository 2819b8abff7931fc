package policies

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sync"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// Limits of a rule, mirroring the GatePolicy CRD validation so that a policy
// that skipped the API server (a bundle file) is held to the same rules.
const (
	maxWhenLength    = 4096
	maxMessageLength = 1024
	maxNameLength    = 63
	maxRules         = 64
	minApprovals     = 1
	maxApprovals     = 10
)

var (
	ruleNamePattern = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	reasonPattern   = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
)

// Sentinel errors wrapped by the errors of a PolicyResult.
var (
	// ErrInvalidPolicy marks a policy-level problem (scope, names, rule count).
	ErrInvalidPolicy = errors.New("policies: invalid policy")
	// ErrInvalidRule marks a rule that does not validate or compile.
	ErrInvalidRule = errors.New("policies: invalid rule")
)

// newEnv builds the CEL environment every rule is compiled in, and the object
// types the input is converted to for it. Library versions are pinned so that
// an upgrade of cel-go cannot change what a loaded policy means.
func newEnv() (*cel.Env, *inputTypes, error) {
	ts := &inputTypes{}
	env, err := cel.NewEnv(
		// Libraries that register types go before NativeTypes, which wraps
		// the type provider configured so far.
		cel.OptionalTypes(cel.OptionalTypesVersion(2)),
		ext.NativeTypes(reflect.TypeFor[Input](), ext.ParseStructTags(true)),
		inputObjects(ts),
		cel.Variable("proposal", cel.ObjectType(celTypeName(reflect.TypeFor[Input]()))),
		cel.Variable("now", cel.TimestampType),
		ext.Strings(ext.StringsVersion(5)),
		ext.Sets(ext.SetsVersion(0)),
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(maxWhenLength),
		cel.ParserRecursionLimit(100),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to build CEL environment: %w", err)
	}
	return env, ts, nil
}

// compiledRule is one validated, compiled rule.
type compiledRule struct {
	name      string
	outcome   v1alpha1.Outcome
	reason    string
	message   string
	approvals int32
	groups    []string
	// program evaluates the rule with its cost tracked and limited.
	program cel.Program
	// untracked, if set, evaluates the rule without tracking its cost, and
	// reads field paths from their slots (see flattenFieldPaths). It is set
	// when the rule's estimated cost never exceeds the limit, for any input
	// (cost is costBounded) or for inputs within the size bounds
	// (costBoundedSmall).
	untracked cel.Program
	cost      costBound
	// preconditions are conjuncts of the rule that it cannot be true
	// without; see precondition.
	preconditions []precondition
	// loops is true when the rule has a comprehension (all, exists, map,
	// ...): only comprehensions check for interrupts.
	loops bool
}

// costBound is what a rule's estimated cost says about the cost limit.
type costBound int

const (
	// costUnbounded: the rule may exceed the limit; its cost is tracked.
	costUnbounded costBound = iota
	// costBoundedSmall: the rule stays within the limit for inputs within
	// the size bounds.
	costBoundedSmall
	// costBounded: the rule stays within the limit for every input.
	costBounded
)

// Size bounds of an input under which the cost of a rule is estimated a
// second time, when it cannot be bounded for every input: no string of the
// input longer than boundedString bytes (a CEL string's size is its count of
// code points, never more than its bytes), no list or map with more than
// boundedEntries entries.
const (
	boundedString  = 1024
	boundedEntries = 64
)

// within reports whether an input of size s is within the size bounds.
func (s inputSize) within() bool {
	return s.maxString <= boundedString && s.maxEntries <= boundedEntries
}

// sizeEstimator is the checker.CostEstimator of the size bounds: every
// string, list and map reached from the variable proposal, and every element,
// key and value of them, is within the bounds.
type sizeEstimator struct{}

var _ checker.CostEstimator = sizeEstimator{}

func (sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	if p := n.Path(); len(p) == 0 || p[0] != "proposal" {
		return nil
	}
	switch n.Type().Kind() {
	case types.StringKind:
		return &checker.SizeEstimate{Min: 0, Max: boundedString}
	case types.ListKind, types.MapKind:
		return &checker.SizeEstimate{Min: 0, Max: boundedEntries}
	}
	return nil
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// unknownSizes is the checker.CostEstimator that knows no size.
type unknownSizes struct{}

var _ checker.CostEstimator = unknownSizes{}

func (unknownSizes) EstimateSize(checker.AstNode) *checker.SizeEstimate { return nil }

func (unknownSizes) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// compiledPolicy is one policy as loaded: either valid with its rules, or
// invalid with the error that made it so.
type compiledPolicy struct {
	name string
	// allActions is true when the scope is empty or could not be understood.
	allActions bool
	actions    map[string]struct{}
	rules      []compiledRule
	err        error
}

func (p *compiledPolicy) inScope(action string) bool {
	if p.allActions {
		return true
	}
	_, ok := p.actions[action]
	return ok
}

// compilePolicy validates and compiles gp. A non-nil err on the result marks
// the policy invalid; it is then in force only as a denial.
func (g *Gate) compilePolicy(gp *v1alpha1.GatePolicy) compiledPolicy {
	cp := compiledPolicy{name: gp.Name}
	var errs []error

	if gp.Name == "" {
		errs = append(errs, fmt.Errorf("%w: metadata.name is empty", ErrInvalidPolicy))
	}

	// Scope. An entry outside the catalogue makes the policy invalid and, since
	// its intent is unknown, in scope for every action.
	if len(gp.Spec.Actions) == 0 {
		cp.allActions = true
	} else {
		cp.actions = make(map[string]struct{}, len(gp.Spec.Actions))
		for _, a := range gp.Spec.Actions {
			if !knownAction(string(a)) {
				errs = append(errs, fmt.Errorf("%w: actions: %q is not in the action catalogue", ErrInvalidPolicy, a))
				cp.allActions = true
				continue
			}
			cp.actions[string(a)] = struct{}{}
		}
	}

	switch n := len(gp.Spec.Rules); {
	case n == 0:
		errs = append(errs, fmt.Errorf("%w: no rules", ErrInvalidPolicy))
	case n > maxRules:
		errs = append(errs, fmt.Errorf("%w: %d rules, at most %d allowed", ErrInvalidPolicy, n, maxRules))
	}

	seen := make(map[string]struct{}, len(gp.Spec.Rules))
	for i := range gp.Spec.Rules {
		r := &gp.Spec.Rules[i]
		label := r.Name
		if label == "" {
			label = fmt.Sprintf("#%d", i)
		}
		if _, dup := seen[r.Name]; dup && r.Name != "" {
			errs = append(errs, fmt.Errorf("%w: rule %q: duplicate rule name", ErrInvalidRule, label))
			continue
		}
		seen[r.Name] = struct{}{}
		rule, err := g.compileRule(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: rule %q: %w", ErrInvalidRule, label, err))
			continue
		}
		cp.rules = append(cp.rules, rule)
	}

	if len(errs) > 0 {
		cp.err = errors.Join(errs...)
		cp.rules = nil
	}
	return cp
}

// compileRule validates r and compiles its expression. It never panics: a
// panic inside cel-go becomes an error, so the policy is invalid.
func (g *Gate) compileRule(r *v1alpha1.GateRule) (rule compiledRule, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("internal error while compiling: %v", p)
		}
	}()

	var errs []error
	switch {
	case r.Name == "":
		errs = append(errs, errors.New("name is empty"))
	case len(r.Name) > maxNameLength || !ruleNamePattern.MatchString(r.Name):
		errs = append(errs, fmt.Errorf("name must match %s and be at most %d characters", ruleNamePattern, maxNameLength))
	}
	switch {
	case r.Reason == "":
		errs = append(errs, errors.New("reason is empty"))
	case len(r.Reason) > maxNameLength || !reasonPattern.MatchString(r.Reason):
		errs = append(errs, fmt.Errorf("reason %q must match %s and be at most %d characters", r.Reason, reasonPattern, maxNameLength))
	}
	if utf8.RuneCountInString(r.Message) > maxMessageLength {
		errs = append(errs, fmt.Errorf("message is longer than %d characters", maxMessageLength))
	}

	approvals, groups := int32(0), []string(nil)
	switch r.Outcome {
	case v1alpha1.OutcomeAutoApprove, v1alpha1.OutcomeDeny:
		if r.Approvals != nil {
			errs = append(errs, fmt.Errorf("approvals are only allowed with outcome %s", v1alpha1.OutcomeRequireApproval))
		}
	case v1alpha1.OutcomeRequireApproval:
		approvals = minApprovals
		if r.Approvals != nil {
			if c := r.Approvals.Count; c != 0 {
				if c < minApprovals || c > maxApprovals {
					errs = append(errs, fmt.Errorf("approvals.count %d is outside %d..%d", c, minApprovals, maxApprovals))
				}
				approvals = c
			}
			for _, grp := range r.Approvals.Groups {
				if grp == "" {
					errs = append(errs, errors.New("approvals.groups has an empty group"))
					continue
				}
				if !slices.Contains(groups, grp) {
					groups = append(groups, grp)
				}
			}
		}
	default:
		errs = append(errs, fmt.Errorf("outcome %q is not one of %s, %s, %s", r.Outcome,
			v1alpha1.OutcomeAutoApprove, v1alpha1.OutcomeRequireApproval, v1alpha1.OutcomeDeny))
	}

	switch {
	case r.When == "":
		errs = append(errs, errors.New("when is empty"))
	case utf8.RuneCountInString(r.When) > maxWhenLength:
		errs = append(errs, fmt.Errorf("when is longer than %d characters", maxWhenLength))
	default:
		if err := g.compileWhen(&rule, r.When); err != nil {
			errs = append(errs, err)
		}
	}

	if len(errs) > 0 {
		return compiledRule{}, errors.Join(errs...)
	}
	rule.name = r.Name
	rule.outcome = r.Outcome
	rule.reason = r.Reason
	rule.message = r.Message
	rule.approvals = approvals
	rule.groups = groups
	return rule, nil
}

// compileWhen compiles a rule's expression into rule, requires a bool
// result and sets the runtime limits. When the checker's cost estimate shows
// that the rule cannot exceed the cost limit (for every input, or for inputs
// within the size bounds), it also compiles a program that does not track
// cost, which is much faster; the limit still holds for it by the estimate.
func (g *Gate) compileWhen(rule *compiledRule, when string) error {
	ast, iss := g.env.Compile(when)
	if iss.Err() != nil {
		return fmt.Errorf("when does not compile: %w", iss.Err())
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return fmt.Errorf("when must be a bool expression, is %s", ast.OutputType())
	}
	opts := []cel.ProgramOption{
		cel.InterruptCheckFrequency(g.opts.InterruptCheckFrequency),
		cel.EvalOptions(cel.OptOptimize),
	}
	prg, err := g.env.Program(ast, append(opts, cel.CostLimit(g.opts.CostLimit))...)
	if err != nil {
		return fmt.Errorf("when does not compile: %w", err)
	}
	rule.program = prg
	rule.preconditions = rulePreconditions(g.inputs, ast)
	celast.PreOrderVisit(ast.NativeRep().Expr(), celast.NewExprVisitor(func(e celast.Expr) {
		rule.loops = rule.loops || e.Kind() == celast.ComprehensionKind
	}))
	rule.cost = g.costBound(ast)
	if rule.cost == costUnbounded {
		return nil
	}
	// The untracked program reads field paths from their slots, from a
	// second checked tree of the rule.
	flat, iss := g.env.Compile(when)
	if iss.Err() != nil {
		return fmt.Errorf("when does not compile: %w", iss.Err())
	}
	flattenFieldPaths(flat, g.inputs.slots)
	if rule.untracked, err = g.env.Program(flat, opts...); err != nil {
		return fmt.Errorf("when does not compile: %w", err)
	}
	return nil
}

// costBound estimates the cost of a checked rule against the cost limit. Only
// a rule that calls nothing but core overloads can be bounded, and its
// estimate must leave costHeadroom below the limit.
func (g *Gate) costBound(ast *cel.Ast) costBound {
	core, err := coreOverloads()
	if err != nil {
		return costUnbounded
	}
	for _, ref := range ast.NativeRep().ReferenceMap() {
		for _, id := range ref.OverloadIDs {
			if _, ok := core[id]; !ok {
				return costUnbounded
			}
		}
	}
	limit := g.opts.CostLimit / costHeadroom
	if est, err := g.env.EstimateCost(ast, unknownSizes{}); err == nil && est.Max <= limit {
		return costBounded
	}
	if est, err := g.env.EstimateCost(ast, sizeEstimator{}); err == nil && est.Max <= limit {
		return costBoundedSmall
	}
	return costUnbounded
}

// costHeadroom is the factor by which a rule's estimated cost must stay below
// the cost limit for it to run untracked, in case an estimate falls short of
// the tracked cost by a small factor.
const costHeadroom = 2

// coreOverloads are the overloads of CEL's standard library and of optional
// values, whose estimated costs cel-go keeps in step with the costs it tracks
// at run time. The extension libraries' estimates are not always upper
// bounds (the strings extension's join, for one, assumes one-character
// elements), so a rule that calls an extension function is always tracked.
var coreOverloads = sync.OnceValues(func() (map[string]struct{}, error) {
	env, err := cel.NewEnv(cel.OptionalTypes(cel.OptionalTypesVersion(2)))
	if err != nil {
		return nil, fmt.Errorf("failed to build the core CEL environment: %w", err)
	}
	ids := make(map[string]struct{})
	for _, fn := range env.Functions() {
		for _, o := range fn.OverloadDecls() {
			ids[o.ID()] = struct{}{}
		}
	}
	return ids, nil
})

func knownAction(a string) bool {
	return slices.Contains(v1alpha1.Actions, v1alpha1.Action(a))
}
