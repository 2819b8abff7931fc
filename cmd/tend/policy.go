package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
	"github.com/tendops/tend/policies/policytest"
)

func newPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "policy",
		Aliases: []string{"policies"},
		Short:   "Test gate policies offline and explain the gate's decisions",
		Long: `Work with GatePolicies as code: 'tend policy test' runs test cases against policy files
without a cluster, as 'opa test' does; 'tend policy explain' shows why the gate decided a
live proposal as it did, and what today's policies would decide.`,
	}
	cmd.AddCommand(newPolicyTestCommand(), newPolicyExplainCommand())
	return cmd
}

// errPolicyTestsFailed is returned by `tend policy test` when a case failed,
// a policy is invalid or no case ran.
var errPolicyTestsFailed = errors.New("policy tests failed")

// policyTestOptions are the options of `tend policy test`.
type policyTestOptions struct {
	paths   []string
	run     string
	verbose bool

	runRE *regexp.Regexp
}

func (o *policyTestOptions) Validate() error {
	if len(o.paths) == 0 {
		return errors.New("at least one PATH is required")
	}
	for _, p := range o.paths {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("cannot read PATH %s: %w", p, err)
		}
	}
	if o.run != "" {
		re, err := regexp.Compile(o.run)
		if err != nil {
			return fmt.Errorf("invalid --run pattern: %w", err)
		}
		o.runRE = re
	}
	return nil
}

func newPolicyTestCommand() *cobra.Command {
	o := &policyTestOptions{}
	cmd := &cobra.Command{
		Use:   "test PATH...",
		Short: "Run GatePolicy test cases (*_test.yaml) against the GatePolicies in PATHs",
		Long: `Load every GatePolicy found in PATHs (files, or directories searched recursively for
*.yaml and *.yml files) into a gate, decide every case of every test file (*_test.yaml or
*_test.yml, kind GatePolicyTest) and compare the decision with the case's expectation.
The file format is documented in docs/policies.md, "Testing policies".

Prints PASS or FAIL per case, a diff of expected against got for each failure, and a
summary. Exits non-zero when a case fails, a policy or test file is invalid, or no case ran.`,
		Example: `  tend policy test policies/
  tend policy test policies/bundle/default.yaml my-policies/ --run 'kube-system' -v`,
		Args: cobra.MinimumNArgs(1),
		PreRunE: func(_ *cobra.Command, args []string) error {
			o.paths = args
			return o.Validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPolicyTest(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	cmd.Flags().StringVar(&o.run, "run", "", "run only the cases whose name, or suite/name, matches this regular expression")
	cmd.Flags().BoolVarP(&o.verbose, "verbose", "v", false, "print the files read and every case's reasons")
	return cmd
}

// policySource is a GatePolicy with the file it came from.
type policySource struct {
	policy tendv1.GatePolicy
	file   string
}

// policyTestInput is what `tend policy test` found in its PATHs.
type policyTestInput struct {
	policies []policySource
	suites   []policytest.Suite
	// notes are files skipped, for --verbose; warnings are always printed.
	notes, warnings []string
}

func runPolicyTest(ctx context.Context, out, errOut io.Writer, o *policyTestOptions) error {
	in, err := collectPolicyTests(o.paths)
	if err != nil {
		return err
	}
	for _, w := range in.warnings {
		fmt.Fprintf(errOut, "Warning: %s\n", w)
	}
	if o.verbose {
		for _, n := range in.notes {
			fmt.Fprintln(out, n)
		}
		for _, p := range in.policies {
			fmt.Fprintf(out, "Loaded GatePolicy %s from %s\n", p.policy.Name, p.file)
		}
	}
	if len(in.suites) == 0 {
		return fmt.Errorf("no test files (*_test.yaml, *_test.yml) found in %s", strings.Join(o.paths, ", "))
	}
	if len(in.policies) == 0 {
		fmt.Fprintf(errOut, "Warning: no GatePolicy found in %s; every case is decided without policies (NoPolicies)\n", strings.Join(o.paths, ", "))
	}
	pols := make([]tendv1.GatePolicy, len(in.policies))
	for i, p := range in.policies {
		pols[i] = p.policy
	}
	rep, err := policytest.Run(ctx, pols, in.suites, policytest.Options{Run: o.runRE})
	if err != nil {
		return err
	}

	for i, r := range rep.Policies {
		if !r.Valid {
			fmt.Fprintf(out, "INVALID  GatePolicy %s (%s):\n%s", r.Name, in.policies[i].file, indent(r.Err.Error(), "         "))
		}
	}
	for i := range rep.Cases {
		c := &rep.Cases[i]
		if c.Passed() {
			fmt.Fprintf(out, "PASS     %s\n", c.Name())
			if o.verbose {
				fmt.Fprint(out, indent(formatResult(&c.Got), "         "))
			}
			continue
		}
		fmt.Fprintf(out, "FAIL     %s (%s)\n", c.Name(), c.Source)
		fmt.Fprint(out, indent(c.Diff(), "         "))
		fmt.Fprint(out, indent("got "+formatResult(&c.Got), "         "))
	}

	summary := fmt.Sprintf("%d passed, %d failed", rep.Passed(), rep.Failed())
	if n := len(rep.Invalid()); n > 0 {
		summary += fmt.Sprintf(", %d invalid %s", n, plural(n, "policy", "policies"))
	}
	fmt.Fprintln(out, summary)

	var problems []string
	if n := len(rep.Invalid()); n > 0 {
		problems = append(problems, fmt.Sprintf("%d %s invalid", n, plural(n, "policy is", "policies are")))
	}
	if n := rep.Failed(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d of %d %s failed", n, len(rep.Cases), plural(len(rep.Cases), "case", "cases")))
	}
	if len(rep.Cases) == 0 {
		problems = append(problems, fmt.Sprintf("no case matches --run %q", o.run))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", errPolicyTestsFailed, strings.Join(problems, "; "))
	}
	return nil
}

// collectPolicyTests reads the policies and test suites in paths. A file
// named explicitly must be a policy or a test file; in a directory, YAML
// files of other kinds are skipped.
func collectPolicyTests(paths []string) (*policyTestInput, error) {
	in := &policyTestInput{}
	seen := map[string]bool{}
	defined := map[string]string{}
	add := func(file string, explicit bool) error {
		abs, err := filepath.Abs(file)
		if err != nil {
			return fmt.Errorf("failed to resolve %s: %w", file, err)
		}
		if seen[abs] {
			return nil
		}
		seen[abs] = true
		data, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("failed to read %s: %w", file, err)
		}
		if policytest.IsTestFile(filepath.Base(file)) {
			suites, err := policytest.ParseSuites(file, data)
			if err != nil {
				return err
			}
			in.suites = append(in.suites, suites...)
			return nil
		}
		kinds, err := policytest.Kinds(data)
		if err != nil {
			// A template or other non-YAML file in a directory is not ours,
			// unless it says it holds policies.
			if explicit || strings.Contains(string(data), "GatePolicy") {
				return fmt.Errorf("failed to parse %s: %w", file, err)
			}
			in.notes = append(in.notes, fmt.Sprintf("Skipped %s: not YAML", file))
			return nil
		}
		switch {
		case slices.Contains(kinds, "GatePolicy"):
			pols, err := policies.ParsePolicies(data)
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			for _, p := range pols {
				if other, dup := defined[p.Name]; dup {
					return fmt.Errorf("GatePolicy %q is defined in both %s and %s", p.Name, other, file)
				}
				defined[p.Name] = file
				in.policies = append(in.policies, policySource{policy: p, file: file})
			}
		case slices.Contains(kinds, policytest.Kind):
			msg := fmt.Sprintf("%s holds %s documents but its name does not end in _test.yaml or _test.yml", file, policytest.Kind)
			if explicit {
				return errors.New(msg)
			}
			in.warnings = append(in.warnings, "skipping: "+msg)
		case explicit:
			return fmt.Errorf("%s holds no GatePolicy and no %s document", file, policytest.Kind)
		default:
			in.notes = append(in.notes, fmt.Sprintf("Skipped %s: no GatePolicy in it", file))
		}
		return nil
	}
	for _, root := range paths {
		info, err := os.Stat(root)
		if err != nil {
			return nil, fmt.Errorf("cannot read PATH %s: %w", root, err)
		}
		if !info.IsDir() {
			if err := add(root, true); err != nil {
				return nil, err
			}
			continue
		}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if path != root && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
				return nil
			}
			return add(path, false)
		})
		if err != nil {
			return nil, err
		}
	}
	return in, nil
}

// formatResult renders a decision: outcome, who decided, approvals, and
// every reason on a line of its own, each line ending in a newline.
func formatResult(r *policies.Result) string {
	var b strings.Builder
	b.WriteString(string(r.Outcome))
	switch {
	case r.Policy != "":
		fmt.Fprintf(&b, " by policy %s", r.Policy)
		if r.Rule != "" {
			fmt.Fprintf(&b, ", rule %s", r.Rule)
		}
	case len(r.Reasons) > 0 && r.Reasons[0].Guard != "":
		fmt.Fprintf(&b, " by guard %s", r.Reasons[0].Guard)
	}
	if r.Outcome == tendv1.OutcomeRequireApproval {
		fmt.Fprintf(&b, " (%s)", formatApprovals(r.RequiredApprovals, r.ApproverGroups))
	}
	b.WriteString("\n")
	for _, rs := range r.Reasons {
		b.WriteString(formatReason(rs) + "\n")
	}
	return b.String()
}

// formatApprovals renders an approval requirement.
func formatApprovals(n int32, groups []string) string {
	n = max(n, 1)
	s := fmt.Sprintf("%d %s", n, plural(int(n), "approval", "approvals"))
	if len(groups) > 0 {
		s += " from a member of " + strings.Join(groups, ", ")
	}
	return s
}

// formatReason renders one reason as "- Code [source]: message".
func formatReason(r tendv1.Reason) string {
	var src []string
	if r.Policy != "" {
		src = append(src, "policy "+r.Policy)
	}
	if r.Rule != "" {
		src = append(src, "rule "+r.Rule)
	}
	if r.Guard != "" {
		src = append(src, "guard "+r.Guard)
	}
	s := "- " + r.Code
	if len(src) > 0 {
		s += " [" + strings.Join(src, ", ") + "]"
	}
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

// indent prefixes every line of s, and ends s in a newline.
func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
