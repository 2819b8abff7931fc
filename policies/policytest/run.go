package policytest

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

// Options configure Run.
type Options struct {
	// Gate configures the gate the cases run against; its KillSwitch is
	// ignored, as every case sets the kill switch itself.
	Gate policies.Options
	// Run, if set, selects the cases whose name, or whose suite name and
	// name joined by "/", it matches.
	Run *regexp.Regexp
}

// Report is the outcome of a run.
type Report struct {
	// Policies reports how each policy loaded, in the order given to Run.
	Policies []policies.PolicyResult
	// Cases holds a result per case run, in suite then file order.
	Cases []CaseResult
}

// Passed counts the cases that passed.
func (r *Report) Passed() int {
	n := 0
	for i := range r.Cases {
		if r.Cases[i].Passed() {
			n++
		}
	}
	return n
}

// Failed counts the cases that failed.
func (r *Report) Failed() int { return len(r.Cases) - r.Passed() }

// Invalid returns the results of the policies that did not load.
func (r *Report) Invalid() []policies.PolicyResult {
	var out []policies.PolicyResult
	for _, p := range r.Policies {
		if !p.Valid {
			out = append(out, p)
		}
	}
	return out
}

// OK reports whether every policy loaded and at least one case ran and every
// case passed.
func (r *Report) OK() bool {
	return len(r.Cases) > 0 && r.Failed() == 0 && len(r.Invalid()) == 0
}

// CaseResult is the outcome of one case.
type CaseResult struct {
	// Source and Suite locate the case; Case is its name.
	Source, Suite, Case string
	// Now is the time the case was decided at.
	Now time.Time
	// Got is the gate's decision.
	Got policies.Result
	// Mismatches between the expectation and Got; none when the case passed.
	Mismatches []Mismatch
}

// Name is the case's full name, suite and case joined by "/".
func (c *CaseResult) Name() string { return c.Suite + "/" + c.Case }

// Passed reports whether the decision met the expectation.
func (c *CaseResult) Passed() bool { return len(c.Mismatches) == 0 }

// Diff renders the mismatches, one pair of lines per field, expected
// (prefixed "-") above got ("+"), each line ending in a newline. It is empty
// when the case passed.
func (c *CaseResult) Diff() string {
	if c.Passed() {
		return ""
	}
	var b strings.Builder
	b.WriteString("(-expected +got)\n")
	for _, m := range c.Mismatches {
		fmt.Fprintf(&b, "- %s: %s\n+ %s: %s\n", m.Field, m.Expected, m.Field, m.Got)
	}
	return b.String()
}

// Mismatch is one field of the decision that differs from the expectation.
type Mismatch struct {
	// Field is outcome, reasons, policy, rule, requiredApprovals or
	// approverGroups.
	Field string
	// Expected and Got render the two sides.
	Expected, Got string
}

// Run loads pols into a fresh gate and decides every case of suites that
// opts.Run selects. Invalid policies stay loaded, as in a cluster: cases in
// their scope are denied. It fails only when the gate cannot be built.
func Run(ctx context.Context, pols []v1alpha1.GatePolicy, suites []Suite, opts Options) (*Report, error) {
	g, err := policies.New(opts.Gate)
	if err != nil {
		return nil, fmt.Errorf("failed to create the gate: %w", err)
	}
	rep := &Report{Policies: g.Load(pols)}
	for i := range suites {
		s := &suites[i]
		for j := range s.Cases {
			c := &s.Cases[j]
			if opts.Run != nil && !opts.Run.MatchString(c.Name) && !opts.Run.MatchString(s.Name+"/"+c.Name) {
				continue
			}
			now := c.now()
			g.SetKillSwitch(c.State.KillSwitch)
			got := g.DecideState(ctx, c.input(), c.State.state(now), now)
			rep.Cases = append(rep.Cases, CaseResult{
				Source:     s.Source,
				Suite:      s.Name,
				Case:       c.Name,
				Now:        now,
				Got:        got,
				Mismatches: compare(&c.Expect, &got),
			})
		}
	}
	return rep, nil
}

// compare lists how got differs from e.
func compare(e *Expectation, got *policies.Result) []Mismatch {
	var ms []Mismatch
	if got.Outcome != e.Outcome {
		ms = append(ms, Mismatch{Field: "outcome", Expected: string(e.Outcome), Got: string(got.Outcome)})
	}
	codes := make([]string, len(got.Reasons))
	for i, r := range got.Reasons {
		codes[i] = r.Code
	}
	var missing []string
	for _, want := range e.Reasons {
		if !slices.Contains(codes, want) && !slices.Contains(missing, want) {
			missing = append(missing, want)
		}
	}
	if len(missing) > 0 {
		ms = append(ms, Mismatch{
			Field:    "reasons",
			Expected: fmt.Sprintf("include %s (missing %s)", list(e.Reasons), list(missing)),
			Got:      list(codes),
		})
	}
	if e.Policy != nil && *e.Policy != got.Policy {
		ms = append(ms, Mismatch{Field: "policy", Expected: strconv.Quote(*e.Policy), Got: strconv.Quote(got.Policy) + decidedBy(got)})
	}
	if e.Rule != nil && *e.Rule != got.Rule {
		ms = append(ms, Mismatch{Field: "rule", Expected: strconv.Quote(*e.Rule), Got: strconv.Quote(got.Rule) + decidedBy(got)})
	}
	if n := e.RequiredApprovals; n != nil && *n != got.RequiredApprovals {
		ms = append(ms, Mismatch{Field: "requiredApprovals", Expected: strconv.Itoa(int(*n)), Got: strconv.Itoa(int(got.RequiredApprovals))})
	}
	if e.ApproverGroups != nil {
		want, have := slices.Sorted(slices.Values(e.ApproverGroups)), slices.Sorted(slices.Values(got.ApproverGroups))
		want, have = slices.Compact(want), slices.Compact(have)
		if !slices.Equal(want, have) {
			ms = append(ms, Mismatch{Field: "approverGroups", Expected: list(want), Got: list(have)})
		}
	}
	return ms
}

// decidedBy explains an empty policy or rule: what decided instead.
func decidedBy(got *policies.Result) string {
	if got.Policy != "" || len(got.Reasons) == 0 {
		return ""
	}
	r := got.Reasons[0]
	if r.Guard != "" {
		return fmt.Sprintf(" (no rule decided: guard %s, %s)", r.Guard, r.Code)
	}
	return fmt.Sprintf(" (no rule decided: %s)", r.Code)
}

// list renders codes as [A, B], [] when empty.
func list(s []string) string {
	return "[" + strings.Join(s, ", ") + "]"
}
