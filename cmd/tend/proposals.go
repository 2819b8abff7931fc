package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

func newProposalsCommand() *cobra.Command {
	o := &kubeOptions{}
	cmd := &cobra.Command{
		Use:     "proposals",
		Aliases: []string{"proposal", "prop"},
		Short:   "List, show, approve and deny proposals",
		Long: `Work with the proposals agents made. Works with any kubeconfig and auth mode:
approving creates an Approval object, and the API server itself checks that you hold
the RBAC verb 'approve' on the proposal and records you as the approver.`,
	}
	o.bind(cmd, true)
	cmd.AddCommand(newProposalsListCommand(o), newProposalsShowCommand(o),
		newProposalsDecideCommand(o, tendv1.ApprovalApprove), newProposalsDecideCommand(o, tendv1.ApprovalDeny))
	return cmd
}

func newProposalsListCommand(o *kubeOptions) *cobra.Command {
	var all bool
	out := &outputOptions{name: true}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List proposals with their phase and the gate's decision",
		Long: `List proposals, newest first, with their phase and the gate's decision.

-o json and -o yaml print a tend.dev/v1alpha1 ProposalList exactly as the API server
stores it (managed fields left out): a stable format for scripts, versioned with the
API. -o name prints proposal.tend.dev/NAME lines; -o wide adds the risk, the agent
and the rule that decided.`,
		Example: `  tend proposals list -n payments
  tend proposals list -A -o wide
  tend proposals list -o jsonpath='{range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}'`,
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return out.validate() },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			opts := []client.ListOption{}
			if !all {
				ns, err := o.ns()
				if err != nil {
					return err
				}
				opts = append(opts, client.InNamespace(ns))
			}
			var list tendv1.ProposalList
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return fmt.Errorf("failed to list proposals: %w", err)
			}
			sortProposals(list.Items)
			if !out.table() {
				if out.format == "name" {
					for _, p := range list.Items {
						fmt.Fprintf(cmd.OutOrStdout(), "proposal.%s/%s\n", tendv1.GroupVersion.Group, p.Name)
					}
					return nil
				}
				return out.print(cmd.OutOrStdout(), proposalList(list.Items))
			}
			printProposals(cmd.OutOrStdout(), list.Items, time.Now(), out.wide())
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list proposals in every namespace")
	out.bind(cmd)
	return cmd
}

// sortProposals orders proposals newest first, then by namespace and name,
// so that every output lists them in one order.
func sortProposals(items []tendv1.Proposal) {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := items[i], items[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.After(b.CreationTimestamp.Time)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
}

func printProposals(out io.Writer, items []tendv1.Proposal, now time.Time, wide bool) {
	if len(items) == 0 {
		fmt.Fprintln(out, "No proposals found.")
		return
	}
	sortProposals(items)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	header := "NAMESPACE\tNAME\tACTION\tTARGET\tPHASE\tDECISION\tPROPOSER\tAGE"
	if wide {
		header += "\tRISK\tAGENT\tRULE"
	}
	fmt.Fprintln(w, header)
	for _, p := range items {
		dec, rule := "-", "-"
		if d := p.Status.Decision; d != nil {
			dec = string(d.Outcome)
			if d.Rule != "" {
				rule = d.Policy + "/" + d.Rule
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\t%s", p.Namespace, p.Name, p.Spec.Action,
			strings.ToLower(p.Spec.Target.Kind), p.Spec.Target.Name, orDash(string(p.Status.Phase)), dec,
			p.Spec.Proposer.Username, duration.HumanDuration(now.Sub(p.CreationTimestamp.Time)))
		if wide {
			fmt.Fprintf(w, "\t%s\t%s\t%s", orDash(string(p.Spec.Risk)), orDash(p.Spec.Proposer.Agent), rule)
		}
		fmt.Fprintln(w)
	}
	_ = w.Flush()
}

func newProposalsShowCommand(o *kubeOptions) *cobra.Command {
	out := &outputOptions{name: true}
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a proposal: the change, the evidence, the decision and its reasons, approvals, apply and verification",
		Long: `Show a proposal: the change, the evidence, the decision and its reasons, approvals, the
apply and the verification. -o json|yaml|jsonpath prints the Proposal object itself.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeProposals(o),
		PreRunE:           func(*cobra.Command, []string) error { return out.validate() },
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.clientInNamespace()
			if err != nil {
				return err
			}
			p := &tendv1.Proposal{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, p); err != nil {
				return fmt.Errorf("failed to get proposal %s/%s: %w", ns, args[0], err)
			}
			if !out.table() {
				if out.format == "name" {
					fmt.Fprintf(cmd.OutOrStdout(), "proposal.%s/%s\n", tendv1.GroupVersion.Group, p.Name)
					return nil
				}
				item := forOutput([]tendv1.Proposal{*p})[0]
				return out.print(cmd.OutOrStdout(), &item)
			}
			printProposal(cmd.OutOrStdout(), p)
			return nil
		},
	}
	out.bind(cmd)
	return cmd
}

// completeProposals completes the names of the proposals in the command's
// namespace, for shell completion.
func completeProposals(o *kubeOptions) func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return func(cmd *cobra.Command, args []string, prefix string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, ns, err := o.clientInNamespace()
		if err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var list tendv1.ProposalList
		if err := c.List(cmd.Context(), &list, client.InNamespace(ns)); err != nil {
			return nil, cobra.ShellCompDirectiveError
		}
		var names []string
		for _, p := range list.Items {
			if strings.HasPrefix(p.Name, prefix) {
				names = append(names, p.Name+"\t"+string(p.Spec.Action)+" "+orDash(string(p.Status.Phase)))
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

func printProposal(out io.Writer, p *tendv1.Proposal) {
	s := p.Spec
	fmt.Fprintf(out, "Name:       %s/%s\n", p.Namespace, p.Name)
	fmt.Fprintf(out, "Action:     %s\n", s.Action)
	fmt.Fprintf(out, "Target:     %s %s/%s (uid %s, generation %d, resourceVersion %s)\n", s.Target.Kind, s.Target.Namespace, s.Target.Name, orDash(string(s.Target.UID)), s.Target.Generation, orDash(s.Target.ResourceVersion))
	if r := s.Parameters.Rollback; r != nil {
		fmt.Fprintf(out, "Change:     roll back from revision %d to revision %d\n", r.FromRevision, r.ToRevision)
	}
	fmt.Fprintf(out, "Proposer:   %s (agent %s)\n", s.Proposer.Username, orDash(s.Proposer.Agent))
	if id := incidentOf(s.Proposer.Agent); id != "" {
		fmt.Fprintf(out, "Transcript: tend transcripts show %s   (why the planner proposed it)\n", id)
	}
	fmt.Fprintf(out, "Risk:       %s\n", s.Risk)
	fmt.Fprintf(out, "Evidence:   %s\n", orDash(s.Evidence.Summary))
	for _, t := range s.Evidence.Telemetry {
		fmt.Fprintf(out, "            - %s #%d\n", t.Subject, t.Sequence)
	}
	fmt.Fprintf(out, "Rationale:  %s\n", orDash(s.Rationale))
	fmt.Fprintf(out, "Spec hash:  %s\n", orDash(p.Status.SpecHash))
	fmt.Fprintf(out, "Phase:      %s\n", orDash(string(p.Status.Phase)))
	fmt.Fprintf(out, "Message:    %s\n", orDash(p.Status.Message))
	if p.Status.Repeats > 0 {
		last := "-"
		if p.Status.LastRepeat != nil {
			last = p.Status.LastRepeat.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(out, "Repeats:    %d (proposed again while open; last at %s)\n", p.Status.Repeats, last)
	}
	if p.Status.SupersededBy != "" {
		fmt.Fprintf(out, "Superseded: by %s/%s\n", p.Namespace, p.Status.SupersededBy)
	}
	if d := p.Status.Decision; d != nil {
		fmt.Fprintf(out, "Decision:   %s", d.Outcome)
		if d.Policy != "" {
			fmt.Fprintf(out, " by policy %s, rule %s", d.Policy, d.Rule)
		}
		if d.Outcome == tendv1.OutcomeRequireApproval {
			fmt.Fprintf(out, " (%d approver(s)", max(d.RequiredApprovals, 1))
			if len(d.ApproverGroups) > 0 {
				fmt.Fprintf(out, " from %s", strings.Join(d.ApproverGroups, ", "))
			}
			fmt.Fprint(out, ")")
		}
		fmt.Fprintf(out, " at %s\n", d.DecidedAt.UTC().Format(time.RFC3339))
		for _, r := range d.Reasons {
			where := strings.Trim(strings.Join([]string{r.Policy, r.Rule, r.Guard}, "/"), "/")
			fmt.Fprintf(out, "            - %s: %s", r.Code, r.Message)
			if where != "" {
				fmt.Fprintf(out, " [%s]", where)
			}
			fmt.Fprintln(out)
		}
	}
	for _, a := range p.Status.Approvals {
		fmt.Fprintf(out, "Approval:   %s by %s at %s %s\n", a.Decision, a.Approver, a.Time.UTC().Format(time.RFC3339), a.Reason)
	}
	printApply(out, "Applied:", p.Status.Apply)
	if v := p.Status.Verify; v != nil {
		result := "in progress"
		if v.Passed != nil {
			result = map[bool]string{true: "passed", false: "failed"}[*v.Passed]
		}
		fmt.Fprintf(out, "Verify:     %s (deadline %s)\n", result, v.Deadline.UTC().Format(time.RFC3339))
		for _, c := range v.Checks {
			mark := "✗"
			if c.Passed {
				mark = "✓"
			}
			fmt.Fprintf(out, "            %s %s: %s\n", mark, c.Name, c.Message)
		}
	}
	printApply(out, "Rollback:", p.Status.Rollback)
}

func printApply(out io.Writer, label string, a *tendv1.ApplyRecord) {
	if a == nil {
		return
	}
	state := "in progress"
	if a.CompletedAt != nil {
		state = "done at " + a.CompletedAt.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(out, "%-11s %s → %s (attempt %s, %s)", label, orDash(a.Before), orDash(a.After), a.Attempt, state)
	if a.Error != "" {
		fmt.Fprintf(out, " error: %s", a.Error)
	}
	fmt.Fprintln(out)
	if sh := a.Shim; sh != nil {
		fmt.Fprintf(out, "%-11s node %s, attempt %s\n", "Shim:", sh.Node, sh.AttemptID)
		if d := sh.Diagnostics; d != nil {
			fmt.Fprintf(out, "%-11s %s/%s (%d bytes, %d containers, %s)\n", "Bundle:", d.Bucket, d.Object, d.Size, d.Containers, d.Digest)
		}
	}
}

func newProposalsDecideCommand(o *kubeOptions, decision tendv1.ApprovalDecision) *cobra.Command {
	var reason string
	verb := strings.ToLower(string(decision))
	cmd := &cobra.Command{
		Use:   verb + " NAME",
		Short: map[tendv1.ApprovalDecision]string{tendv1.ApprovalApprove: "Approve a proposal as yourself", tendv1.ApprovalDeny: "Deny a proposal as yourself"}[decision],
		Long: `Create an Approval bound to the proposal's current spec hash. The API server checks
that you may approve (RBAC verb 'approve' on proposals.tend.dev) and that the approver
and groups recorded are yours. An approval is void if the proposal's spec changes afterwards.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeProposals(o),
		PreRunE: func(*cobra.Command, []string) error {
			if decision == tendv1.ApprovalDeny && strings.TrimSpace(reason) == "" {
				return errors.New("--reason is required to deny, so the agent can revise")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.clientInNamespace()
			if err != nil {
				return err
			}
			a, err := decide(cmd.Context(), c, ns, args[0], decision, reason)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s proposal %s/%s as %s (approval %s, spec hash %.12s)\n",
				map[tendv1.ApprovalDecision]string{tendv1.ApprovalApprove: "Approved", tendv1.ApprovalDeny: "Denied"}[decision],
				ns, args[0], a.Spec.Approver, a.Name, a.Spec.SpecHash)
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why; required to deny")
	return cmd
}

// decide records an approval or denial of the proposal's current spec by
// the authenticated user, with the groups the API server authenticated (a
// rule that names approver groups counts only approvals that carry them).
func decide(ctx context.Context, c client.Client, ns, name string, decision tendv1.ApprovalDecision, reason string) (*tendv1.Approval, error) {
	p := &tendv1.Proposal{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
		return nil, fmt.Errorf("failed to get proposal %s/%s: %w", ns, name, err)
	}
	if p.Status.Phase != tendv1.PhaseAwaitingApproval {
		return nil, fmt.Errorf("proposal %s/%s is %s, not AwaitingApproval", ns, name, orDash(string(p.Status.Phase)))
	}
	if p.Status.SpecHash == "" {
		return nil, fmt.Errorf("proposal %s/%s has no spec hash yet; try again in a moment", ns, name)
	}
	ssr := &authnv1.SelfSubjectReview{}
	if err := c.Create(ctx, ssr); err != nil {
		return nil, fmt.Errorf("failed to find out who you are (SelfSubjectReview): %w", err)
	}
	a := &tendv1.Approval{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: shortName(name, 50) + "-"},
		Spec: tendv1.ApprovalSpec{
			Proposal: name, SpecHash: p.Status.SpecHash, Decision: decision,
			Approver: ssr.Status.UserInfo.Username, ApproverGroups: ssr.Status.UserInfo.Groups, Reason: reason,
		},
	}
	if err := c.Create(ctx, a); err != nil {
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
			return nil, fmt.Errorf("the API server refused your approval: %w", err)
		}
		return nil, fmt.Errorf("failed to create approval: %w", err)
	}
	return a, nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortName(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
