package policies

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"unicode/utf8"

	"github.com/google/cel-go/cel"
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

// newEnv builds the CEL environment every rule is compiled in. Library
// versions are pinned so that an upgrade of cel-go cannot change what a
// loaded policy means.
func newEnv() (*cel.Env, error) {
	env, err := cel.NewEnv(
		// Libraries that register types go before NativeTypes, which wraps
		// the type provider configured so far.
		cel.OptionalTypes(cel.OptionalTypesVersion(2)),
		ext.NativeTypes(reflect.TypeFor[Input](), ext.ParseStructTags(true)),
		fastInputAdapter(),
		cel.Variable("proposal", cel.ObjectType(celTypeName(reflect.TypeFor[Input]()))),
		cel.Variable("now", cel.TimestampType),
		ext.Strings(ext.StringsVersion(5)),
		ext.Sets(ext.SetsVersion(0)),
		cel.DefaultUTCTimeZone(true),
		cel.ParserExpressionSizeLimit(maxWhenLength),
		cel.ParserRecursionLimit(100),
	)
	if err != nil {
		return nil, fmt.Errorf("failed to build CEL environment: %w", err)
	}
	return env, nil
}

// compiledRule is one validated, compiled rule.
type compiledRule struct {
	name      string
	outcome   v1alpha1.Outcome
	reason    string
	message   string
	approvals int32
	groups    []string
	program   cel.Program
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
		prg, err := g.compileWhen(r.When)
		if err != nil {
			errs = append(errs, err)
		} else {
			rule.program = prg
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

// compileWhen compiles a rule's expression, requires a bool result and sets
// the runtime limits.
func (g *Gate) compileWhen(when string) (cel.Program, error) {
	ast, iss := g.env.Compile(when)
	if iss.Err() != nil {
		return nil, fmt.Errorf("when does not compile: %w", iss.Err())
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, fmt.Errorf("when must be a bool expression, is %s", ast.OutputType())
	}
	prg, err := g.env.Program(ast,
		cel.CostLimit(g.opts.CostLimit),
		cel.InterruptCheckFrequency(g.opts.InterruptCheckFrequency),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, fmt.Errorf("when does not compile: %w", err)
	}
	return prg, nil
}

func knownAction(a string) bool {
	return slices.Contains(v1alpha1.Actions, v1alpha1.Action(a))
}
