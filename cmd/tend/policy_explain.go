package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

// policyExplainOptions are the options of `tend policy explain`.
type policyExplainOptions struct {
	kube       kubeOptions
	reevaluate bool
}

func newPolicyExplainCommand() *cobra.Command {
	o := &policyExplainOptions{}
	cmd := &cobra.Command{
		Use:   "explain NAME",
		Short: "Explain the gate's decision on a proposal, and what the current policies would decide",
		Long: `Show the decision recorded on a proposal: the outcome, the policy and rule or guard that
decided it, every reason, the approvals required and counted, and whether the spec hash the
decision is bound to still matches the spec.

With --reevaluate (the default), also decide the proposal again here, against the cluster's
current GatePolicies and what your credentials can read of its target and namespace, and
print what the gate would decide now: the way to see the effect of a policy change. The
guards' state (kill switch, circuit breaker, other proposals) is not read; it is taken as
quiet, so the controller may decide more strictly.`,
		Example: `  tend policy explain rollback-web-7f9c -n shop
  tend policy explain rollback-web-7f9c -n shop --reevaluate=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.kube.client()
			if err != nil {
				return err
			}
			ns, err := o.kube.ns()
			if err != nil {
				return err
			}
			return runPolicyExplain(cmd.Context(), cmd.OutOrStdout(), c, client.ObjectKey{Namespace: ns, Name: args[0]}, o.reevaluate, time.Now())
		},
	}
	o.kube.bind(cmd, true)
	cmd.Flags().BoolVar(&o.reevaluate, "reevaluate", true, "decide the proposal again against the cluster's current GatePolicies")
	return cmd
}

// runPolicyExplain explains the decision on the proposal key and, if
// reevaluate, decides it again at now.
func runPolicyExplain(ctx context.Context, out io.Writer, c client.Client, key client.ObjectKey, reevaluate bool, now time.Time) error {
	p := &tendv1.Proposal{}
	if err := c.Get(ctx, key, p); err != nil {
		return fmt.Errorf("failed to get proposal %s: %w", key, err)
	}
	printRecordedDecision(out, p)
	if !reevaluate {
		return nil
	}
	fmt.Fprintln(out)
	if err := reevaluateProposal(ctx, out, c, p, now); err != nil {
		return fmt.Errorf("cannot re-evaluate (--reevaluate=false skips it): %w", err)
	}
	return nil
}

const explainIndent = "             "

func printRecordedDecision(out io.Writer, p *tendv1.Proposal) {
	t := p.Spec.Target
	fmt.Fprintf(out, "Proposal:    %s/%s: %s of %s %s\n", p.Namespace, p.Name, p.Spec.Action, t.Kind, objectKeyString(t.Namespace, t.Name))
	fmt.Fprintf(out, "Phase:       %s\n", orDash(string(p.Status.Phase)))
	d := p.Status.Decision
	if d == nil {
		fmt.Fprintln(out, "Decision:    none yet: the gate has not decided this spec")
		return
	}
	fmt.Fprintf(out, "Decision:    %s at %s\n", d.Outcome, d.DecidedAt.UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "Decided by:  %s\n", decidedByText(d.Policy, d.Rule, d.Reasons))
	fmt.Fprintln(out, "Reasons:     (strongest first)")
	for _, r := range d.Reasons {
		fmt.Fprintf(out, "%s%s\n", explainIndent, formatReason(r))
	}
	if d.Outcome == tendv1.OutcomeRequireApproval {
		fmt.Fprintf(out, "Approvals:   %s required; %d counted\n", formatApprovals(d.RequiredApprovals, d.ApproverGroups), len(p.Status.Approvals))
	} else {
		fmt.Fprintf(out, "Approvals:   none required; %d counted\n", len(p.Status.Approvals))
	}
	for _, a := range p.Status.Approvals {
		line := fmt.Sprintf("- %s by %s at %s", a.Decision, a.Approver, a.Time.UTC().Format(time.RFC3339))
		if a.Reason != "" {
			line += ": " + a.Reason
		}
		fmt.Fprintf(out, "%s%s\n", explainIndent, line)
	}
	current := p.Spec.Hash()
	if d.SpecHash == current {
		fmt.Fprintf(out, "Spec hash:   %.12s, the decision's, matches the current spec\n", current)
	} else {
		fmt.Fprintf(out, "Spec hash:   the decision is bound to %.12s but the current spec hashes to %.12s: the spec changed\n", orDash(d.SpecHash), current)
		fmt.Fprintf(out, "%safter the decision, so its approvals are void and the gate decides again\n", explainIndent)
	}
}

// decidedByText says what decided an outcome.
func decidedByText(policy, rule string, reasons []tendv1.Reason) string {
	switch {
	case policy != "" && rule != "":
		return fmt.Sprintf("policy %s, rule %s", policy, rule)
	case policy != "":
		return "policy " + policy
	case len(reasons) > 0 && reasons[0].Guard != "":
		return fmt.Sprintf("guard %s (%s)", reasons[0].Guard, reasons[0].Code)
	case len(reasons) > 0:
		return fmt.Sprintf("the gate itself (%s)", reasons[0].Code)
	}
	return "-"
}

// reevaluateProposal decides p again against the cluster's current
// GatePolicies and the facts the user can read, and compares the result
// with the decision recorded.
func reevaluateProposal(ctx context.Context, out io.Writer, c client.Client, p *tendv1.Proposal, now time.Time) error {
	var list tendv1.GatePolicyList
	if err := c.List(ctx, &list); err != nil {
		return fmt.Errorf("failed to list GatePolicies: %w", err)
	}
	tf, nf, err := gatherExplainFacts(ctx, c, p)
	if err != nil {
		return err
	}
	// The facts only the controller reads (revision health, disruption)
	// are the ones it recorded when it decided.
	if d := p.Status.Decision; d != nil {
		tf.Facts = d.Facts
	}
	g, err := policies.New(policies.Options{})
	if err != nil {
		return fmt.Errorf("failed to create the gate: %w", err)
	}
	slices.SortFunc(list.Items, func(a, b tendv1.GatePolicy) int { return strings.Compare(a.Name, b.Name) })
	results := g.Load(list.Items)

	fmt.Fprintf(out, "Re-evaluated: at %s, against the cluster's current GatePolicies\n", now.UTC().Format(time.RFC3339))
	if len(results) == 0 {
		fmt.Fprintln(out, "Policies:    none")
	} else {
		fmt.Fprintln(out, "Policies:")
	}
	for _, r := range results {
		if r.Valid {
			fmt.Fprintf(out, "%s- %s (generation %d)\n", explainIndent, r.Name, r.Generation)
			continue
		}
		fmt.Fprintf(out, "%s- %s (generation %d) INVALID, so it denies every action in its scope:\n", explainIndent, r.Name, r.Generation)
		fmt.Fprint(out, indent(r.Err.Error(), explainIndent+"  "))
	}
	t := p.Spec.Target
	fmt.Fprintf(out, "Target:      %s %s: %s\n", t.Kind, objectKeyString(t.Namespace, t.Name), describeTargetFacts(tf))
	if t.Namespace != "" {
		fmt.Fprintf(out, "Namespace:   %s: %s\n", t.Namespace, describeFacts(nf.Exists, nf.Labels))
	}
	fmt.Fprintf(out, "Facts:       %s\n", describeDecisionFacts(tf.Facts))
	fmt.Fprintln(out, "Note:        the kill switch is unknown here and taken as released; the circuit breaker is")
	fmt.Fprintf(out, "%staken as closed, with no other recent or applying proposals and nothing disrupted.\n", explainIndent)
	fmt.Fprintf(out, "%sThe controller sees all of them and may decide more strictly.\n", explainIndent)

	v := *p
	if p.Status.DecidedSpec != nil {
		v.Spec = *p.Status.DecidedSpec
	}
	res := g.DecideState(ctx, policies.NewInput(&v, tf, nf), policies.State{}, now)
	head, reasons, _ := strings.Cut(formatResult(&res), "\n")
	fmt.Fprintf(out, "Would now decide: %s\n", head)
	fmt.Fprint(out, indent(reasons, explainIndent))
	if d := p.Status.Decision; d != nil {
		fmt.Fprintf(out, "Compared:    %s\n", compareDecisions(d, &res))
	}
	return nil
}

// compareDecisions says how res differs from the recorded decision d.
func compareDecisions(d *tendv1.Decision, res *policies.Result) string {
	var diffs []string
	if d.Outcome != res.Outcome {
		diffs = append(diffs, fmt.Sprintf("outcome %s → %s", d.Outcome, res.Outcome))
	}
	if was, now := decidedByText(d.Policy, d.Rule, d.Reasons), decidedByText(res.Policy, res.Rule, res.Reasons); was != now {
		diffs = append(diffs, fmt.Sprintf("decided by %s → %s", was, now))
	}
	if d.Outcome == tendv1.OutcomeRequireApproval && res.Outcome == tendv1.OutcomeRequireApproval {
		if was, now := formatApprovals(d.RequiredApprovals, d.ApproverGroups), formatApprovals(res.RequiredApprovals, res.ApproverGroups); was != now {
			diffs = append(diffs, fmt.Sprintf("%s → %s", was, now))
		}
	}
	if len(diffs) == 0 {
		return "the same decision as recorded"
	}
	return "differs from the recorded decision: " + strings.Join(diffs, "; ")
}

// gatherExplainFacts reads the target and its namespace as the controller's
// gatherer does, with the user's credentials.
func gatherExplainFacts(ctx context.Context, c client.Client, p *tendv1.Proposal) (policies.TargetFacts, policies.NamespaceFacts, error) {
	t := p.Spec.Target
	var tf policies.TargetFacts
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(t.APIVersion)
	u.SetKind(t.Kind)
	switch err := c.Get(ctx, client.ObjectKey{Namespace: t.Namespace, Name: t.Name}, u); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return tf, policies.NamespaceFacts{}, fmt.Errorf("failed to get target %s %s: %w", t.Kind, objectKeyString(t.Namespace, t.Name), err)
	case t.UID != "" && u.GetUID() != t.UID:
		// The object with this name is not the one the proposer saw.
	default:
		tf.Exists = true
		tf.Labels = u.GetLabels()
		if ref := metav1.GetControllerOf(u); ref != nil {
			tf.OwnerKind, tf.OwnerName = ref.Kind, ref.Name
		}
		replicas, found, err := unstructured.NestedInt64(u.Object, "spec", "replicas")
		switch {
		case err != nil:
			return tf, policies.NamespaceFacts{}, fmt.Errorf("failed to read spec.replicas of %s %s: %w", t.Kind, objectKeyString(t.Namespace, t.Name), err)
		case found:
			tf.Replicas = replicas
		case t.Kind == "Deployment":
			tf.Replicas = 1 // the API server's default
		}
	}
	var nf policies.NamespaceFacts
	if t.Namespace == "" {
		return tf, nf, nil
	}
	n := &corev1.Namespace{}
	switch err := c.Get(ctx, client.ObjectKey{Name: t.Namespace}, n); {
	case apierrors.IsNotFound(err):
	case err != nil:
		return tf, nf, fmt.Errorf("failed to get namespace %s: %w", t.Namespace, err)
	default:
		nf = policies.NamespaceFacts{Exists: true, Labels: n.Labels}
	}
	return tf, nf, nil
}

func describeTargetFacts(tf policies.TargetFacts) string {
	if !tf.Exists {
		return "not found (or recreated since the proposal was made)"
	}
	s := describeFacts(true, tf.Labels)
	if tf.Replicas > 0 {
		s += fmt.Sprintf(", %d %s", tf.Replicas, plural(int(tf.Replicas), "replica", "replicas"))
	}
	if tf.OwnerKind != "" {
		s += fmt.Sprintf(", controlled by %s %s", tf.OwnerKind, tf.OwnerName)
	}
	return s
}

// describeDecisionFacts says what the controller recorded it read when it
// decided.
func describeDecisionFacts(f *tendv1.Facts) string {
	if f == nil {
		return "none recorded: the controller gathered none, and nothing is approved automatically without them"
	}
	parts := []string{"as the controller read them when it decided"}
	if !f.TargetExists {
		parts = append(parts, "the target was not found")
	}
	if f.Replicas > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d replicas ready", f.ReadyReplicas, f.Replicas))
	}
	if r := f.Revision; r != nil {
		health := "never seen healthy"
		if r.ToHealthy {
			health = "ran healthy"
		}
		parts = append(parts, fmt.Sprintf("revision %d → %d, which %s (%s)", r.Current, r.To, health, r.Evidence))
	}
	if d := f.Disruption; d != nil {
		parts = append(parts, fmt.Sprintf("takes down %d %s at once (%d%%)", d.PodsAffected, plural(int(d.PodsAffected), "pod", "pods"), d.Percent))
	}
	if r := f.Run; r != nil {
		parts = append(parts, describeRunFacts(r))
	}
	return strings.Join(parts, "; ")
}

// describeRunFacts says what the controller found of the improvement run
// a proposal names.
func describeRunFacts(r *tendv1.RunFacts) string {
	run := objectKeyString(r.Namespace, r.Name)
	switch {
	case !r.Member:
		return fmt.Sprintf("names improvement run %s, which does not list it", run)
	case r.Undo:
		return fmt.Sprintf("the undo of a change of improvement run %s (never held to its window)", run)
	case r.WindowEnd != nil:
		return fmt.Sprintf("a change of improvement run %s, whose window closes at %s", run, r.WindowEnd.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("a change of improvement run %s", run)
}

func describeFacts(exists bool, labels map[string]string) string {
	if !exists {
		return "not found"
	}
	if len(labels) == 0 {
		return "found, no labels"
	}
	kv := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		kv = append(kv, k+"="+labels[k])
	}
	return "found, labels " + strings.Join(kv, ", ")
}

func objectKeyString(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
