package harness

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/evals/oracle"
	"github.com/tendops/tend/evals/scenario"
)

// startApprovers runs the scenario's scripted approvers until ctx ends:
// each decides every proposal it matches once the proposal has awaited
// approval for its review time, as a human in the approvers group would
// with `tend proposals approve`: an Approval the API server authenticates
// and authorizes. It returns a function that lists the decisions made.
func (r *runCtx) startApprovers(ctx context.Context) func() []string {
	var mu sync.Mutex
	var made []string
	if len(r.sc.Approvals) == 0 {
		return func() []string { return nil }
	}
	done := make(chan struct{})
	decided := map[string]bool{}
	go func() {
		defer close(done)
		for {
			if st, err := oracle.Gather(ctx, r.e.reader, r.scope); err == nil {
				for i := range st.Proposals {
					p := &st.Proposals[i]
					for j, a := range r.sc.Approvals {
						key := fmt.Sprintf("%d/%s/%s", j, p.Namespace, p.Name)
						if decided[key] || !r.due(st, a, p) {
							continue
						}
						msg, err := r.decide(ctx, a, p)
						if err != nil {
							msg = fmt.Sprintf("%s could not %s %s: %v", a.User, decisionOf(a), p.Name, err)
						} else {
							decided[key] = true
						}
						mu.Lock()
						made = append(made, msg)
						mu.Unlock()
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return func() []string {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(made)
	}
}

func decisionOf(a scenario.Approval) tendv1.ApprovalDecision {
	if a.Decision == string(tendv1.ApprovalDeny) {
		return tendv1.ApprovalDeny
	}
	return tendv1.ApprovalApprove
}

// due reports whether an approver should decide p now: it matches, awaits
// approval, and has waited the approver's review time.
func (r *runCtx) due(st *oracle.State, a scenario.Approval, p *tendv1.Proposal) bool {
	if p.Status.Phase != tendv1.PhaseAwaitingApproval || p.Status.SpecHash == "" || !st.Matches(r.sc, a.Proposal, p) {
		return false
	}
	since := p.CreationTimestamp.Time
	if d := p.Status.Decision; d != nil {
		since = d.DecidedAt.Time
	}
	return time.Since(since) >= time.Duration(a.AfterSeconds)*time.Second
}

// approvalDue reports whether a scripted approver is still to decide p.
func (r *runCtx) approvalDue(st *oracle.State, p *tendv1.Proposal) bool {
	for _, a := range r.sc.Approvals {
		if st.Matches(r.sc, a.Proposal, p) {
			return true
		}
	}
	return false
}

// decide creates the approver's Approval of p, bound to its spec hash.
func (r *runCtx) decide(ctx context.Context, a scenario.Approval, p *tendv1.Proposal) (string, error) {
	c, err := r.e.approver(a.User)
	if err != nil {
		return "", err
	}
	ssr := &authnv1.SelfSubjectReview{}
	if err := c.Create(ctx, ssr); err != nil {
		return "", fmt.Errorf("failed to find out who the approver is (SelfSubjectReview): %w", err)
	}
	reason := a.Reason
	if reason == "" {
		reason = "reviewed by the eval's scripted approver"
	}
	ap := &tendv1.Approval{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, GenerateName: "eval-" + a.User + "-"},
		Spec: tendv1.ApprovalSpec{Proposal: p.Name, SpecHash: p.Status.SpecHash, Decision: decisionOf(a),
			Approver: ssr.Status.UserInfo.Username, ApproverGroups: ssr.Status.UserInfo.Groups, Reason: reason},
	}
	if err := c.Create(ctx, ap, client.FieldOwner("tend-eval-approver")); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s: %s %s (%s) at %s", a.User, decisionOf(a), p.Name, p.Spec.Action, ap.CreationTimestamp.UTC().Format(time.TimeOnly)), nil
}
