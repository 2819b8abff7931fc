package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// Reasons an approval counts or does not, used in Events on the Approval.
const (
	ReasonApprovalCounted     = "Counted"
	ReasonProposalNotFound    = "ProposalNotFound"
	ReasonStaleSpecHash       = "StaleSpecHash"
	ReasonApproverIsProposer  = "ApproverIsProposer"
	ReasonApproverNotInGroups = "ApproverNotInGroups"
	ReasonDuplicateApprover   = "DuplicateApprover"
	ReasonProposalNotAwaiting = "ProposalNotAwaitingApproval"
	ReasonProposalClosed      = "ProposalAlreadyDecided"
)

// +kubebuilder:rbac:groups=tend.dev,resources=approvals,verbs=get;list;watch
// +kubebuilder:rbac:groups=tend.dev,resources=approvals/status,verbs=update;patch

// ApprovalReconciler reports on every Approval whether it counts for its
// proposal and, when it does not, why. It judges by the rule the proposal
// controller counts by (judgeApprovals); it never changes a proposal.
type ApprovalReconciler struct {
	Client client.Client
	// Recorder, when set, receives an Event each time an approval's
	// verdict changes.
	Recorder events.EventRecorder
}

// SetupWithManager registers the reconciler, watching Approvals, the
// Proposals they name, and the other Approvals of the same proposal (an
// earlier approval by the same person decides whether a later one counts).
func (r *ApprovalReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := indexApprovals(mgr); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&tendv1.Approval{}).
		Watches(&tendv1.Proposal{}, handler.EnqueueRequestsFromMapFunc(
			func(ctx context.Context, o client.Object) []reconcile.Request {
				return r.approvalsOf(ctx, o.GetNamespace(), o.GetName())
			})).
		Watches(&tendv1.Approval{}, handler.EnqueueRequestsFromMapFunc(
			func(ctx context.Context, o client.Object) []reconcile.Request {
				return r.approvalsOf(ctx, o.GetNamespace(), o.(*tendv1.Approval).Spec.Proposal)
			})).
		Named("approval").
		Complete(r)
}

// approvalsOf lists the approvals that name a proposal, from the cache.
func (r *ApprovalReconciler) approvalsOf(ctx context.Context, namespace, proposal string) []reconcile.Request {
	var list tendv1.ApprovalList
	if err := r.Client.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{approvalProposalIndex: proposal}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list the approvals of a proposal", "namespace", namespace, "proposal", proposal)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, a := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: a.Namespace, Name: a.Name}})
	}
	return reqs
}

// Reconcile reads the approval, its proposal and the proposal's other
// approvals, judges the approval and writes the verdict to its status.
func (r *ApprovalReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	a := &tendv1.Approval{}
	if err := r.Client.Get(ctx, req.NamespacedName, a); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	v, err := r.judge(ctx, a)
	if err != nil {
		return ctrl.Result{}, err
	}
	if a.Status.Counted == v.counted && a.Status.Message == v.message {
		return ctrl.Result{}, nil
	}
	a.Status.Counted, a.Status.Message = v.counted, v.message
	if err := r.Client.Status().Update(ctx, a); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// Worked from a stale copy, or the approval is gone; a newer
			// version is on its way through the watch.
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("failed to update approval status: %w", err)
	}
	if r.Recorder != nil {
		typ := corev1.EventTypeNormal
		if !v.counted {
			typ = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(a, nil, typ, v.reason, "Judge", "%s", v.message)
	}
	return ctrl.Result{}, nil
}

// judge decides whether a counts for the proposal it names.
func (r *ApprovalReconciler) judge(ctx context.Context, a *tendv1.Approval) (approvalVerdict, error) {
	p := &tendv1.Proposal{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: a.Namespace, Name: a.Spec.Proposal}, p); err != nil {
		if apierrors.IsNotFound(err) {
			return approvalVerdict{reason: ReasonProposalNotFound,
				message: fmt.Sprintf("Proposal %s does not exist in namespace %s", a.Spec.Proposal, a.Namespace)}, nil
		}
		return approvalVerdict{}, fmt.Errorf("failed to get proposal: %w", err)
	}
	var list tendv1.ApprovalList
	if err := r.Client.List(ctx, &list, client.InNamespace(a.Namespace), client.MatchingFields{approvalProposalIndex: p.Name}); err != nil {
		return approvalVerdict{}, fmt.Errorf("failed to list approvals: %w", err)
	}
	if !slices.ContainsFunc(list.Items, func(o tendv1.Approval) bool { return o.Name == a.Name }) {
		list.Items = append(list.Items, *a)
	}
	return verdictFor(p, list.Items, a.Name), nil
}

// approvalVerdict is whether one approval counts for its proposal, and why.
type approvalVerdict struct {
	counted bool
	reason  string
	message string
}

// verdictFor judges the approval named name among approvals, the approvals
// of p, by judgeApprovals' rule. While p is undecided or awaits approval the
// rule applies to its current spec. Once p moved on, what counted is what the
// proposal controller recorded in p.Status.Approvals; any other approval
// keeps the reason the rule gives against the decided spec, or, when the
// rule would have counted it, came too late. (When the controller itself
// denied the proposal after its approval, as for a target changed since,
// its decision replaced the gate's and the approver groups with it; an
// approval from outside those groups then reads as too late. It never
// counts either way.)
func verdictFor(p *tendv1.Proposal, approvals []tendv1.Approval, name string) approvalVerdict {
	open := false
	switch p.Status.Phase {
	case "", tendv1.PhasePending, tendv1.PhaseAwaitingApproval:
		open = true
	}
	hash := decidedSpec(p).Hash()
	if !open && p.Status.SpecHash != "" {
		// A spec edited after the approval changes nothing any more.
		hash = p.Status.SpecHash
	}
	_, verdicts := judgeApprovals(p, hash, approvals)
	v := verdicts[name]
	switch {
	case open && v.counted && p.Status.Phase != tendv1.PhaseAwaitingApproval:
		return approvalVerdict{reason: ReasonProposalNotAwaiting,
			message: fmt.Sprintf("Proposal %s is not awaiting approval yet (phase %s)", p.Name, orPending(p.Status.Phase))}
	case open:
		return v
	case slices.ContainsFunc(p.Status.Approvals, func(rec tendv1.ApprovalRecord) bool { return rec.Approval == name }):
		return counts(p)
	case v.counted:
		return approvalVerdict{reason: ReasonProposalClosed,
			message: fmt.Sprintf("Proposal %s was already decided (phase %s); approvals no longer count", p.Name, p.Status.Phase)}
	default:
		return v
	}
}

// judgeApprovals is the rule by which approvals count, for the proposal
// controller (which counts them) and the approval controller (which reports
// on each) alike. It orders the approvals of p oldest first and counts each
// that is bound to the spec hash hash, comes from someone other than the
// proposer and, when the decision names approver groups, from a member of
// one of them, and is its approver's first such verdict. It returns the
// approvals that count, in order, and a verdict for every approval by name.
func judgeApprovals(p *tendv1.Proposal, hash string, approvals []tendv1.Approval) ([]tendv1.ApprovalRecord, map[string]approvalVerdict) {
	// Creation times have one-second resolution, so ties are broken by
	// approver, then by name, for a stable record.
	slices.SortFunc(approvals, func(a, b tendv1.Approval) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		if c := strings.Compare(a.Spec.Approver, b.Spec.Approver); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	var groups []string
	if p.Status.Decision != nil {
		groups = p.Status.Decision.ApproverGroups
	}
	var counted []tendv1.ApprovalRecord
	verdicts := make(map[string]approvalVerdict, len(approvals))
	first := map[string]string{} // approver → the approval of theirs that counts
	for _, a := range approvals {
		switch {
		case a.Spec.SpecHash != hash:
			verdicts[a.Name] = stale(hash)
		case a.Spec.Approver == decidedSpec(p).Proposer.Username:
			verdicts[a.Name] = approvalVerdict{reason: ReasonApproverIsProposer,
				message: fmt.Sprintf("The approver is the proposer (%s); a proposal needs someone else's approval", decidedSpec(p).Proposer.Username)}
		case len(groups) > 0 && !slices.ContainsFunc(a.Spec.ApproverGroups, func(g string) bool { return slices.Contains(groups, g) }):
			verdicts[a.Name] = notInGroups(a, groups)
		case first[a.Spec.Approver] != "":
			verdicts[a.Name] = approvalVerdict{reason: ReasonDuplicateApprover,
				message: fmt.Sprintf("Duplicate approver: %s already decided in approval %s", a.Spec.Approver, first[a.Spec.Approver])}
		default:
			first[a.Spec.Approver] = a.Name
			verdicts[a.Name] = counts(p)
			counted = append(counted, tendv1.ApprovalRecord{
				Approval: a.Name, Approver: a.Spec.Approver, Decision: a.Spec.Decision, Reason: a.Spec.Reason, Time: a.CreationTimestamp,
			})
		}
	}
	return counted, verdicts
}

func counts(p *tendv1.Proposal) approvalVerdict {
	return approvalVerdict{counted: true, reason: ReasonApprovalCounted, message: "Counts for proposal " + p.Name}
}

func notInGroups(a tendv1.Approval, groups []string) approvalVerdict {
	has := "the approval records no groups; `tend proposals approve` records them"
	if len(a.Spec.ApproverGroups) > 0 {
		has = "the approval's groups: " + strings.Join(a.Spec.ApproverGroups, ", ")
	}
	return approvalVerdict{reason: ReasonApproverNotInGroups,
		message: fmt.Sprintf("Approver %s is not in the required groups (%s); %s", a.Spec.Approver, strings.Join(groups, ", "), has)}
}

func stale(current string) approvalVerdict {
	return approvalVerdict{reason: ReasonStaleSpecHash,
		message: fmt.Sprintf("Spec hash is stale: the proposal's current hash is %s", current)}
}

func orPending(ph tendv1.Phase) tendv1.Phase {
	if ph == "" {
		return tendv1.PhasePending
	}
	return ph
}
