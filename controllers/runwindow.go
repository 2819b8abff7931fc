package controllers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

// DefaultRunMembershipGrace is how long a proposal that names an
// improvement run waits for the run to list it before the gate decides it
// as a stranger to the run.
const DefaultRunMembershipGrace = 30 * time.Second

// runItemOfFingerprint parses a run proposal's fingerprint,
// improve/<namespace>/<run>/<item>[/undo].
func runItemOfFingerprint(fp string) (key types.NamespacedName, item int, undo bool, ok bool) {
	rest, found := strings.CutPrefix(fp, fingerprintPrefix)
	if !found {
		return key, 0, false, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) == 4 && parts[3] == "undo" {
		undo, parts = true, parts[:3]
	}
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" {
		return key, 0, false, false
	}
	i, err := strconv.Atoi(parts[2])
	if err != nil || i < 0 {
		return key, 0, false, false
	}
	return types.NamespacedName{Namespace: parts[0], Name: parts[1]}, i, undo, true
}

// runFacts reads the improvement run the proposal's fingerprint names: nil
// when it names none. The fingerprint only says where to look; whether the
// proposal belongs to the run, whether it is an undo, and when the run's
// window closes are the run object's to say. The run lists a proposal right
// after making it, so one it does not list yet is waited for (wait > 0)
// until grace has passed since the proposal was made; after that, it is
// not a member.
func (r *ProposalReconciler) runFacts(ctx context.Context, s *scope, grace time.Duration) (facts *tendv1.RunFacts, wait time.Duration, err error) {
	fp := s.spec.Fingerprint
	if !strings.HasPrefix(fp, fingerprintPrefix) {
		return nil, 0, nil
	}
	key, item, undo, ok := runItemOfFingerprint(fp)
	if !ok {
		// Names a run, in a form no run writes.
		return &tendv1.RunFacts{Name: strings.TrimPrefix(fp, fingerprintPrefix)}, 0, nil
	}
	facts = &tendv1.RunFacts{Namespace: key.Namespace, Name: key.Name}
	run := &tendv1.ImprovementRun{}
	switch err := r.Client.Get(ctx, key, run); {
	case apierrors.IsNotFound(err):
		run = nil
	case err != nil:
		return nil, 0, fmt.Errorf("failed to read improvement run %s: %w", key, err)
	}
	if run != nil && item < len(run.Status.Items) {
		it := &run.Status.Items[item]
		listed := it.Proposal
		if undo {
			listed = it.UndoProposal
		}
		t := s.spec.Target
		if listed == s.p.Name && it.Workload.Namespace == s.p.Namespace && it.Workload.Kind == t.Kind && it.Workload.Name == t.Name && it.Action == string(s.spec.Action) {
			facts.Member, facts.Undo, facts.WindowEnd = true, undo, windowEnd(run)
			return facts, 0, nil
		}
	}
	if left := s.p.CreationTimestamp.Add(grace).Sub(s.now); left > 0 {
		return facts, min(left, time.Second), nil
	}
	return facts, 0, nil
}

// windowEnd is when a run's window closes: the end of its window, or when
// the run ended (stopped on request, at a failed canary or batch), if that
// was earlier. What a run left unapplied when it ended is not applied
// after it: the run no longer follows it, and could not undo it.
func windowEnd(run *tendv1.ImprovementRun) *metav1.Time {
	end := run.Spec.WindowEnd
	if done := run.Status.CompletionTime; run.Status.Phase.Finished() && done != nil && done.Before(&end) {
		end = *done
	}
	return &end
}

// checkRunWindow runs right before an approved change is applied: a change
// of an improvement run is applied only inside the run's window, as the
// run object says now, however late its approval came. An undo is never
// held to the window. It reports whether it denied the proposal.
func (r *ProposalReconciler) checkRunWindow(ctx context.Context, s *scope) (bool, error) {
	if d := s.p.Status.Decision; d != nil && d.Facts != nil && d.Facts.Run != nil && d.Facts.Run.Member && d.Facts.Run.Undo {
		// Decided as the undo its run listed: it applies even if the run
		// has since been deleted with the schedule's old runs.
		return false, nil
	}
	facts, _, err := r.runFacts(ctx, s, 0)
	if err != nil || facts == nil {
		return false, err
	}
	name := facts.Namespace + "/" + facts.Name
	var code, msg string
	switch {
	case !facts.Member:
		code, msg = policies.ReasonNotInRun, fmt.Sprintf("the proposal names improvement run %s, which does not list it (any more)", name)
	case facts.Undo:
		return false, nil
	case !s.now.Before(facts.WindowEnd.Time):
		code, msg = policies.ReasonOutsideRunWindow, fmt.Sprintf("approved, but the window of improvement run %s closed at %s before the change was applied; nothing of the run is applied outside it", name, facts.WindowEnd.UTC().Format(time.RFC3339))
	default:
		return false, nil
	}
	var decided *tendv1.Facts
	if d := s.p.Status.Decision; d != nil && d.Facts != nil {
		decided = d.Facts.DeepCopy()
		decided.Run = facts
	}
	r.deny(s, code, msg)
	s.p.Status.Decision.Facts = decided
	return true, nil
}

// runProposals maps a run to the proposals it lists, so that a proposal
// waiting to be listed is decided as soon as it is.
func runProposals(_ context.Context, o client.Object) []reconcile.Request {
	run := o.(*tendv1.ImprovementRun)
	var reqs []reconcile.Request
	for _, it := range run.Status.Items {
		for _, name := range []string{it.Proposal, it.UndoProposal} {
			if name != "" {
				reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: it.Workload.Namespace, Name: name}})
			}
		}
	}
	return reqs
}
