package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/policies"
)

// gate decides proposals. *policies.Gate implements it.
type gate interface {
	DecideState(ctx context.Context, in policies.Input, st policies.State, now time.Time) policies.Result
	Limits() policies.Limits
	KillSwitch() bool
}

var _ gate = (*policies.Gate)(nil)

// auditLog receives every proposal transition. *bus.AuditLog implements it.
type auditLog interface {
	Append(ctx context.Context, rec bus.AuditRecord) (bus.AuditRecord, error)
}

var _ auditLog = (*bus.AuditLog)(nil)

// ProposalOptions tune the proposal lifecycle.
type ProposalOptions struct {
	// Cluster names the cluster in audit records.
	Cluster string
	// FieldManager is the field manager of every write to a target.
	FieldManager string
	// DefaultExpiry applies to proposals without spec.expiresAt.
	DefaultExpiry time.Duration
	// VerifyTimeout bounds how long verification may take before the
	// change is rolled back.
	VerifyTimeout time.Duration
	// StableWindow is how long every check must keep passing, with restart
	// counts unchanged, before a change counts as verified.
	StableWindow time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// SystemNamespace holds the gate state ConfigMap; "tend-system" when empty.
	SystemNamespace string
}

func (o *ProposalOptions) defaults() {
	if o.FieldManager == "" {
		o.FieldManager = "tend-proposal-controller"
	}
	if o.DefaultExpiry == 0 {
		o.DefaultExpiry = time.Hour
	}
	if o.VerifyTimeout == 0 {
		o.VerifyTimeout = 3 * time.Minute
	}
	if o.StableWindow == 0 {
		o.StableWindow = 15 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.SystemNamespace == "" {
		o.SystemNamespace = "tend-system"
	}
}

// ProposalReconciler drives Proposals through their lifecycle. It is the
// only writer of workloads in tend.
type ProposalReconciler struct {
	Client   client.Client
	Gate     gate
	Audit    auditLog
	Recorder events.EventRecorder
	Options  ProposalOptions
	// Notifier, if set, is told of every committed transition and sends the
	// ones it was asked for.
	Notifier notifier

	actions map[tendv1.Action]action
}

// approvalProposalIndex indexes Approvals by the proposal they name. The
// proposal and approval controllers share it; either may run without the other.
const approvalProposalIndex = "spec.proposal"

// indexed remembers the managers whose cache has the approval index.
var indexed sync.Map

// indexApprovals registers approvalProposalIndex once per manager.
func indexApprovals(mgr ctrl.Manager) error {
	if _, done := indexed.LoadOrStore(mgr, true); done {
		return nil
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &tendv1.Approval{}, approvalProposalIndex,
		func(o client.Object) []string { return []string{o.(*tendv1.Approval).Spec.Proposal} }); err != nil {
		indexed.Delete(mgr)
		return fmt.Errorf("failed to index approvals: %w", err)
	}
	return nil
}

// SetupWithManager registers the reconciler, watching Proposals and the
// Approvals that name them.
func (r *ProposalReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.Options.defaults()
	r.actions = newActions(actionOptions{Client: r.Client, FieldManager: r.Options.FieldManager, Now: r.Options.Now})
	if err := indexApprovals(mgr); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &tendv1.Proposal{}, proposalTargetIndex,
		func(o client.Object) []string { return []string{targetKey(o.(*tendv1.Proposal))} }); err != nil {
		return fmt.Errorf("failed to index proposals by target: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&tendv1.Proposal{}).
		// A proposal that starts applying may supersede the open ones for
		// the same target.
		Watches(&tendv1.Proposal{}, handler.EnqueueRequestsFromMapFunc(r.sameTarget)).
		Watches(&tendv1.Approval{}, handler.EnqueueRequestsFromMapFunc(
			func(_ context.Context, o client.Object) []reconcile.Request {
				a := o.(*tendv1.Approval)
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: a.Namespace, Name: a.Spec.Proposal}}}
			})).
		Named("proposal").
		Complete(r)
}

// proposalTargetIndex indexes Proposals by targetKey.
const proposalTargetIndex = "spec.target"

// targetKey identifies a proposal's target object.
func targetKey(p *tendv1.Proposal) string {
	t := p.Spec.Target
	return t.APIVersion + "/" + t.Kind + "/" + t.Namespace + "/" + t.Name
}

// sameTarget maps a proposal that has started applying to the other open
// proposals for its target.
func (r *ProposalReconciler) sameTarget(ctx context.Context, o client.Object) []reconcile.Request {
	p := o.(*tendv1.Proposal)
	if p.Status.Apply == nil {
		return nil
	}
	var same tendv1.ProposalList
	if err := r.Client.List(ctx, &same, client.InNamespace(p.Namespace), client.MatchingFields{proposalTargetIndex: targetKey(p)}); err != nil {
		log.FromContext(ctx).Error(err, "Failed to list proposals for the same target", "proposal", klog.KObj(p))
		return nil
	}
	var reqs []reconcile.Request
	for i := range same.Items {
		if q := &same.Items[i]; q.UID != p.UID && !q.Status.Phase.Terminal() {
			reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: q.Namespace, Name: q.Name}})
		}
	}
	return reqs
}

// scope is one reconcile's view of a proposal.
type scope struct {
	p        *tendv1.Proposal
	hash     string
	now      time.Time
	act      action
	result   ctrl.Result
	recorded tendv1.Phase   // phase as last persisted
	entered  []tendv1.Phase // phases entered since, in order
	// conflict is set when a status write lost to a concurrent one: the
	// reconcile worked from a stale copy and must not act on it.
	conflict bool
}

// phaseFunc is one step of the lifecycle; done stops the list.
type phaseFunc func(ctx context.Context, s *scope) (done bool, err error)

// Reconcile runs the lifecycle phases in order over one proposal and writes
// its status once at the end (and once before an apply, so that a crash
// mid-apply is recoverable).
func (r *ProposalReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	p := &tendv1.Proposal{}
	if err := r.Client.Get(ctx, req.NamespacedName, p); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if p.Status.Phase.Terminal() {
		return ctrl.Result{}, nil
	}
	s := &scope{p: p, hash: p.Spec.Hash(), now: r.Options.Now(), act: r.actions[p.Spec.Action], recorded: p.Status.Phase}
	if s.recorded == "" {
		s.recorded = tendv1.PhasePending
	}

	defer func() {
		if err := r.persist(ctx, s); err != nil {
			retErr = errors.Join(retErr, err)
		}
		res = s.result
	}()

	for _, phase := range []phaseFunc{r.validate, r.expire, r.supersede, r.decide, r.awaitApproval, r.apply, r.verify, r.undo} {
		done, err := phase(ctx, s)
		if err != nil {
			return ctrl.Result{}, err
		}
		if done {
			break
		}
	}
	return s.result, nil
}

// setPhase moves the proposal to a new phase with a message; persist records
// the transition.
func (s *scope) setPhase(to tendv1.Phase, msg string) {
	if to != s.p.Status.Phase {
		s.entered = append(s.entered, to)
	}
	s.p.Status.Phase = to
	s.p.Status.Message = msg
}

func (s *scope) condition(t string, st metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&s.p.Status.Conditions, metav1.Condition{
		Type: t, Status: st, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: s.p.Generation,
	})
}

func (s *scope) requeueAfter(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	if s.result.RequeueAfter == 0 || d < s.result.RequeueAfter {
		s.result.RequeueAfter = d
	}
}

// validate checks the spec and notices a spec change since the last decision.
func (r *ProposalReconciler) validate(ctx context.Context, s *scope) (bool, error) {
	p := s.p
	if p.Status.Phase == "" {
		p.Status.Phase, p.Status.Message = tendv1.PhasePending, "Waiting for the gate"
	}
	if p.Status.SpecHash != "" && p.Status.SpecHash != s.hash {
		switch p.Status.Phase {
		case tendv1.PhasePending, tendv1.PhaseAwaitingApproval, tendv1.PhaseApproved:
			// The change is not the one that was decided or approved: start over.
			p.Status.Decision = nil
			p.Status.Approvals = nil
			s.setPhase(tendv1.PhasePending, "Spec changed; deciding again")
			s.condition(ConditionDecided, metav1.ConditionFalse, ReasonSpecChanged, "The spec changed after the decision; every approval is void")
			s.condition(ConditionApproved, metav1.ConditionFalse, ReasonSpecChanged, "The spec changed after the decision; every approval is void")
		default:
			// Already applying what was approved; a later edit changes nothing.
			r.event(p, corev1.EventTypeWarning, ReasonSpecChanged, "Spec edited during %s; the approved change is the one being carried out", p.Status.Phase)
			s.hash = p.Status.SpecHash
		}
	}
	p.Status.SpecHash = s.hash
	if p.Status.Phase != tendv1.PhasePending {
		return false, nil
	}
	if s.act == nil {
		r.deny(s, policies.ReasonUnknownAction, fmt.Sprintf("action %q is not implemented by this controller", p.Spec.Action))
		return true, nil
	}
	if err := s.act.Validate(p); err != nil {
		r.deny(s, ReasonInvalidSpec, err.Error())
		return true, nil
	}
	return false, nil
}

// expire ends proposals nobody acted on in time.
func (r *ProposalReconciler) expire(ctx context.Context, s *scope) (bool, error) {
	switch s.p.Status.Phase {
	case tendv1.PhasePending, tendv1.PhaseAwaitingApproval, tendv1.PhaseApproved:
	default:
		return false, nil
	}
	deadline := s.p.CreationTimestamp.Add(r.Options.DefaultExpiry)
	if s.p.Spec.ExpiresAt != nil {
		deadline = s.p.Spec.ExpiresAt.Time
	}
	if !s.now.Before(deadline) {
		s.setPhase(tendv1.PhaseExpired, fmt.Sprintf("Expired at %s before it was applied", deadline.UTC().Format(time.RFC3339)))
		s.condition(ConditionApproved, metav1.ConditionFalse, ReasonExpired, s.p.Status.Message)
		return true, nil
	}
	s.requeueAfter(deadline.Sub(s.now))
	return false, nil
}

// supersede ends an open proposal once another proposal for the same target
// has started applying since it was made: it was decided or approved against
// a target that is no longer there. (Were the two to race, the apply's
// resourceVersion precondition would still refuse the second write.)
func (r *ProposalReconciler) supersede(ctx context.Context, s *scope) (bool, error) {
	switch s.p.Status.Phase {
	case tendv1.PhasePending, tendv1.PhaseAwaitingApproval, tendv1.PhaseApproved:
	default:
		return false, nil
	}
	var same tendv1.ProposalList
	if err := r.Client.List(ctx, &same, client.InNamespace(s.p.Namespace), client.MatchingFields{proposalTargetIndex: targetKey(s.p)}); err != nil {
		return false, fmt.Errorf("failed to list proposals for the same target: %w", err)
	}
	for i := range same.Items {
		q := &same.Items[i]
		if q.UID == s.p.UID || q.Status.Apply == nil || !q.Status.Apply.StartedAt.After(s.p.CreationTimestamp.Time) {
			continue
		}
		msg := fmt.Sprintf("Superseded by %s, which changed %s %s since this proposal was made", q.Name, s.p.Spec.Target.Kind, s.p.Spec.Target.Name)
		s.p.Status.SupersededBy = q.Name
		s.condition(ConditionApproved, metav1.ConditionFalse, ReasonSuperseded, msg)
		s.setPhase(tendv1.PhaseSuperseded, msg)
		return true, nil
	}
	return false, nil
}

// decide asks the gate about the current spec, once per spec hash.
func (r *ProposalReconciler) decide(ctx context.Context, s *scope) (bool, error) {
	p := s.p
	if p.Status.Phase != tendv1.PhasePending {
		return false, nil
	}
	tf, target, err := r.targetFacts(ctx, s)
	if err != nil {
		return false, err
	}
	st, err := r.gatherState(ctx, s, target)
	if err != nil {
		return false, err
	}
	nf := policies.NamespaceFacts{}
	if ns := p.Spec.Target.Namespace; ns != "" {
		n := &corev1.Namespace{}
		switch err := r.Client.Get(ctx, client.ObjectKey{Name: ns}, n); {
		case err == nil:
			nf = policies.NamespaceFacts{Exists: true, Labels: n.Labels}
		case !apierrors.IsNotFound(err):
			return false, fmt.Errorf("failed to get namespace: %w", err)
		}
	}
	res := r.Gate.DecideState(ctx, policies.NewInput(p, tf, nf), st, s.now)
	if res.TripBreaker != "" {
		if err := r.tripBreaker(ctx, p, res.TripBreaker); err != nil {
			return false, err
		}
	}
	d := &tendv1.Decision{
		Outcome:               res.Outcome,
		Policy:                res.Policy,
		Rule:                  res.Rule,
		Reasons:               res.Reasons,
		RequiredApprovals:     res.RequiredApprovals,
		ApproverGroups:        res.ApproverGroups,
		SpecHash:              s.hash,
		TargetResourceVersion: p.Spec.Target.ResourceVersion,
		DecidedAt:             metav1.NewTime(s.now),
	}
	p.Status.Decision = d
	msg := decisionMessage(d)
	switch d.Outcome {
	case tendv1.OutcomeAutoApprove:
		s.condition(ConditionDecided, metav1.ConditionTrue, ReasonAutoApproved, msg)
		s.condition(ConditionApproved, metav1.ConditionTrue, ReasonAutoApproved, msg)
		s.setPhase(tendv1.PhaseApproved, "Auto-approved: "+msg)
		return false, nil
	case tendv1.OutcomeRequireApproval:
		s.condition(ConditionDecided, metav1.ConditionTrue, ReasonApprovalRequired, msg)
		s.condition(ConditionApproved, metav1.ConditionFalse, ReasonApprovalRequired, msg)
		s.setPhase(tendv1.PhaseAwaitingApproval, fmt.Sprintf("Awaiting %d approval(s): %s", max(d.RequiredApprovals, 1), msg))
		return false, nil
	default:
		s.condition(ConditionDecided, metav1.ConditionTrue, ReasonDenied, msg)
		s.condition(ConditionApproved, metav1.ConditionFalse, ReasonDenied, msg)
		s.setPhase(tendv1.PhaseDenied, "Denied: "+msg)
		return true, nil
	}
}

// targetFacts gathers what the gate needs to know about the target.
func (r *ProposalReconciler) targetFacts(ctx context.Context, s *scope) (policies.TargetFacts, client.Object, error) {
	obj, err := s.act.Target(ctx, s.p)
	if apierrors.IsNotFound(err) {
		return policies.TargetFacts{Exists: false}, nil, nil
	}
	if err != nil {
		return policies.TargetFacts{}, nil, fmt.Errorf("failed to get target: %w", err)
	}
	tf := policies.TargetFacts{Exists: true, Labels: obj.GetLabels()}
	if t := s.p.Spec.Target; t.UID != "" && obj.GetUID() != t.UID {
		// The object with this name is not the one the proposer saw.
		tf.Exists = false
	}
	if ref := metav1.GetControllerOf(obj); ref != nil {
		tf.OwnerKind, tf.OwnerName = ref.Kind, ref.Name
	}
	if d, ok := obj.(*appsv1.Deployment); ok {
		tf.Replicas = int64(ptr.Deref(d.Spec.Replicas, 1))
	}
	return tf, obj, nil
}

// awaitApproval counts the approvals bound to the current spec hash.
func (r *ProposalReconciler) awaitApproval(ctx context.Context, s *scope) (bool, error) {
	p := s.p
	if p.Status.Phase != tendv1.PhaseAwaitingApproval {
		return false, nil
	}
	var list tendv1.ApprovalList
	if err := r.Client.List(ctx, &list, client.InNamespace(p.Namespace), client.MatchingFields{approvalProposalIndex: p.Name}); err != nil {
		return false, fmt.Errorf("failed to list approvals: %w", err)
	}
	// The one rule, shared with the approval controller's report on each
	// Approval: current spec hash, not the proposer, a member of one of the
	// decision's approver groups (when it names any), distinct approvers.
	counted, _ := judgeApprovals(p, s.hash, list.Items)
	p.Status.Approvals = counted
	need := int(max(p.Status.Decision.RequiredApprovals, 1))
	approvers := 0
	for _, a := range counted {
		if a.Decision == tendv1.ApprovalDeny {
			msg := fmt.Sprintf("Denied by %s: %s", a.Approver, a.Reason)
			s.condition(ConditionApproved, metav1.ConditionFalse, ReasonRejected, msg)
			s.setPhase(tendv1.PhaseDenied, msg)
			return true, nil
		}
		approvers++
	}
	if approvers < need {
		s.p.Status.Message = fmt.Sprintf("Awaiting approval: %d of %d", approvers, need)
		return true, nil
	}
	names := make([]string, 0, len(counted))
	for _, a := range counted {
		names = append(names, a.Approver)
	}
	msg := fmt.Sprintf("Approved by %v", names)
	s.condition(ConditionApproved, metav1.ConditionTrue, ReasonApproved, msg)
	s.setPhase(tendv1.PhaseApproved, msg)
	return false, nil
}

// apply writes the approved change, exactly once. The Applying phase and a
// fresh attempt token are persisted before the write; the write stamps the
// token on the target, so a controller restarted mid-apply can tell whether
// the write happened.
func (r *ProposalReconciler) apply(ctx context.Context, s *scope) (bool, error) {
	p := s.p
	switch p.Status.Phase {
	case tendv1.PhaseApproved:
		if r.Gate.KillSwitch() {
			return r.holdForKillSwitch(s)
		}
		// The server-side dry run validates the write and tells what it will
		// change; that is recorded before the real write so that a restart
		// after the write still knows how to undo it.
		dry, err := s.act.Apply(ctx, p, "dry-run", true)
		if err != nil {
			return r.applyFailed(s, err)
		}
		p.Status.Apply = &tendv1.ApplyRecord{
			Attempt: rand.String(10), StartedAt: metav1.NewTime(s.now), FieldManager: r.Options.FieldManager,
			Before: dry.Before, After: dry.After, PreviousRevision: dry.PreviousRevision,
		}
		s.setPhase(tendv1.PhaseApplying, "Applying")
		s.condition(ConditionApplied, metav1.ConditionFalse, ReasonApplying, "Applying the approved change")
		if err := r.persist(ctx, s); err != nil || s.conflict {
			// Not committed (someone else moved first): do not apply.
			return true, err
		}
	case tendv1.PhaseApplying:
		log.FromContext(ctx).Info("Resuming an interrupted apply", "attempt", p.Status.Apply.Attempt)
	default:
		return false, nil
	}
	res, err := s.act.Apply(ctx, p, p.Status.Apply.Attempt, false)
	if err != nil {
		return r.applyFailed(s, err)
	}
	done := metav1.NewTime(r.Options.Now())
	rec := p.Status.Apply
	rec.CompletedAt = &done
	rec.ResultingGeneration, rec.ResultingResourceVersion = res.Generation, res.ResourceVersion
	s.condition(ConditionApplied, metav1.ConditionTrue, ReasonApplied, fmt.Sprintf("%s → %s", rec.Before, rec.After))
	p.Status.Verify = &tendv1.VerifyRecord{StartedAt: done, Deadline: metav1.NewTime(done.Add(r.Options.VerifyTimeout))}
	s.setPhase(tendv1.PhaseVerifying, fmt.Sprintf("Applied (%s → %s); verifying", rec.Before, rec.After))
	s.requeueAfter(time.Second)
	return true, nil
}

// applyFailed sorts an apply error: a stale target sends the proposal back to
// the gate as denied-stale, a bad spec fails it, anything else is retried.
func (r *ProposalReconciler) applyFailed(s *scope, err error) (bool, error) {
	switch {
	case errors.Is(err, ErrStale):
		r.deny(s, ReasonStale, err.Error()+"; propose again against the current state")
		return true, nil
	case errors.Is(err, ErrInvalidParameters), apierrors.IsInvalid(err), apierrors.IsNotFound(err):
		if s.p.Status.Apply != nil {
			s.p.Status.Apply.Error = err.Error()
		}
		s.condition(ConditionApplied, metav1.ConditionFalse, ReasonApplyFailed, err.Error())
		s.setPhase(tendv1.PhaseFailed, "Apply failed: "+err.Error())
		return true, nil
	default:
		return true, fmt.Errorf("failed to apply: %w", err)
	}
}

// verify runs the action's checks until they hold for the stable window or
// the deadline passes.
func (r *ProposalReconciler) verify(ctx context.Context, s *scope) (bool, error) {
	p := s.p
	if p.Status.Phase != tendv1.PhaseVerifying {
		return false, nil
	}
	if rb := p.Status.Rollback; rb != nil && rb.CompletedAt != nil {
		return r.verifyUndo(ctx, s)
	}
	v := p.Status.Verify
	res, err := s.act.Verify(ctx, p)
	if err != nil {
		return true, fmt.Errorf("failed to verify: %w", err)
	}
	v.Checks = res.Checks
	if res.Passed() {
		if v.StableSince == nil || !sameKeys(v.Baseline, res.Restarts) {
			since := metav1.NewTime(s.now)
			v.StableSince, v.Baseline = &since, res.Restarts
		}
		restarted := restartedPods(v.Baseline, res.Restarts)
		if len(restarted) > 0 {
			v.Checks = append(v.Checks, tendv1.Check{Name: "RestartsStable", Message: fmt.Sprintf("pods restarted during the window: %v", restarted)})
			since := metav1.NewTime(s.now)
			v.StableSince, v.Baseline = &since, res.Restarts
		} else {
			stable := s.now.Sub(v.StableSince.Time)
			v.Checks = append(v.Checks, tendv1.Check{Name: "RestartsStable", Passed: stable >= r.Options.StableWindow,
				Message: fmt.Sprintf("no restarts for %s of %s", stable.Round(time.Second), r.Options.StableWindow)})
			if stable >= r.Options.StableWindow {
				now := metav1.NewTime(s.now)
				ok := true
				v.CompletedAt, v.Passed = &now, &ok
				s.condition(ConditionVerified, metav1.ConditionTrue, ReasonVerified, checksMessage(v.Checks))
				s.setPhase(tendv1.PhaseSucceeded, checksMessage(v.Checks))
				return true, nil
			}
		}
	} else {
		v.StableSince, v.Baseline = nil, nil
	}
	if !s.now.Before(v.Deadline.Time) {
		now := metav1.NewTime(s.now)
		failed := false
		v.CompletedAt, v.Passed = &now, &failed
		s.condition(ConditionVerified, metav1.ConditionFalse, ReasonVerifyFailed, checksMessage(v.Checks))
		s.p.Status.Rollback = &tendv1.ApplyRecord{Attempt: rand.String(10), StartedAt: now, FieldManager: r.Options.FieldManager}
		s.p.Status.Message = "Verification failed; rolling back: " + checksMessage(v.Checks)
		r.event(p, corev1.EventTypeWarning, ReasonVerifyFailed, "Verification failed before the deadline; rolling back: %s", checksMessage(v.Checks))
		if err := r.persist(ctx, s); err != nil || s.conflict {
			return true, err
		}
		return false, nil
	}
	s.requeueAfter(2 * time.Second)
	return true, nil
}

// undo reverts a change whose verification failed, exactly once.
func (r *ProposalReconciler) undo(ctx context.Context, s *scope) (bool, error) {
	p := s.p
	if p.Status.Phase != tendv1.PhaseVerifying || p.Status.Rollback == nil || p.Status.Rollback.CompletedAt != nil {
		return false, nil
	}
	rb := p.Status.Rollback
	res, err := s.act.Undo(ctx, p, rb.Attempt)
	now := metav1.NewTime(r.Options.Now())
	if err != nil {
		if !errors.Is(err, ErrStale) && !errors.Is(err, ErrInvalidParameters) && !apierrors.IsNotFound(err) {
			return true, fmt.Errorf("failed to roll back: %w", err)
		}
		rb.Error, rb.CompletedAt = err.Error(), &now
		s.setPhase(tendv1.PhaseFailed, "Verification failed and the rollback could not run: "+err.Error())
		r.event(p, corev1.EventTypeWarning, ReasonRollbackFailed, "%s", err.Error())
		return true, nil
	}
	rb.CompletedAt = &now
	if !res.AlreadyApplied {
		rb.Before, rb.After, rb.PreviousRevision = res.Before, res.After, res.PreviousRevision
	}
	rb.ResultingGeneration, rb.ResultingResourceVersion = res.Generation, res.ResourceVersion
	p.Status.RollbackVerify = &tendv1.VerifyRecord{StartedAt: now, Deadline: metav1.NewTime(now.Add(r.Options.VerifyTimeout))}
	p.Status.Message = fmt.Sprintf("Verification failed; rolled back (%s → %s); verifying the rollback", rb.Before, rb.After)
	s.requeueAfter(time.Second)
	return true, nil
}

// verifyUndo waits until the cluster acted on the undo, then records
// RolledBack; if it does not by the deadline, the proposal Failed.
func (r *ProposalReconciler) verifyUndo(ctx context.Context, s *scope) (bool, error) {
	p := s.p
	v := p.Status.RollbackVerify
	if v == nil {
		now := metav1.NewTime(s.now)
		v = &tendv1.VerifyRecord{StartedAt: now, Deadline: metav1.NewTime(s.now.Add(r.Options.VerifyTimeout))}
		p.Status.RollbackVerify = v
	}
	res, err := s.act.VerifyUndo(ctx, p)
	if err != nil {
		return true, fmt.Errorf("failed to verify the rollback: %w", err)
	}
	v.Checks = res.Checks
	now := metav1.NewTime(s.now)
	rb := p.Status.Rollback
	switch {
	case res.Passed():
		ok := true
		v.CompletedAt, v.Passed = &now, &ok
		s.setPhase(tendv1.PhaseRolledBack, fmt.Sprintf("Verification failed; rolled back (%s → %s): %s", rb.Before, rb.After, checksMessage(v.Checks)))
	case !s.now.Before(v.Deadline.Time):
		failed := false
		v.CompletedAt, v.Passed = &now, &failed
		s.setPhase(tendv1.PhaseFailed, "Verification failed, and the rollback did not take effect: "+checksMessage(v.Checks))
		r.event(p, corev1.EventTypeWarning, ReasonRollbackFailed, "%s", checksMessage(v.Checks))
	default:
		s.requeueAfter(time.Second)
	}
	return true, nil
}

// deny ends the proposal as Denied with a reason of the controller's own.
func (r *ProposalReconciler) deny(s *scope, code, msg string) {
	s.p.Status.Decision = &tendv1.Decision{
		Outcome:   tendv1.OutcomeDeny,
		Reasons:   []tendv1.Reason{{Code: code, Message: msg}},
		SpecHash:  s.hash,
		DecidedAt: metav1.NewTime(s.now),
	}
	s.condition(ConditionDecided, metav1.ConditionTrue, code, msg)
	s.condition(ConditionApproved, metav1.ConditionFalse, code, msg)
	s.setPhase(tendv1.PhaseDenied, "Denied: "+code+": "+msg)
}

// persist writes the status. The write carries the resourceVersion read, so
// of two reconciles working from the same state only one commits; only the
// one that commits records its transitions, each as an audit record and a
// Kubernetes Event, in order.
func (r *ProposalReconciler) persist(ctx context.Context, s *scope) error {
	p := s.p
	p.Status.ObservedGeneration = p.Generation
	if err := r.Client.Status().Update(ctx, p); err != nil {
		s.entered = nil
		if apierrors.IsConflict(err) {
			// Worked from a stale copy; the next reconcile reads the winner's state.
			s.conflict = true
			s.result = ctrl.Result{RequeueAfter: time.Second}
			return nil
		}
		return fmt.Errorf("failed to update proposal status: %w", err)
	}
	var errs []error
	from := s.recorded
	for i, to := range s.entered {
		msg := p.Status.Message
		if i < len(s.entered)-1 {
			msg = ""
		}
		if err := r.record(ctx, p, from, to, msg); err != nil {
			errs = append(errs, err)
		}
		from = to
	}
	s.recorded, s.entered = p.Status.Phase, nil
	return errors.Join(errs...)
}

// record writes one committed transition to the audit log and as an Event.
func (r *ProposalReconciler) record(ctx context.Context, p *tendv1.Proposal, from, to tendv1.Phase, msg string) error {
	reason := phaseReason(p, to)
	log.FromContext(ctx).Info("Proposal transition", "proposal", klog.KObj(p), "from", from, "to", to, "reason", reason)
	typ := corev1.EventTypeNormal
	switch to {
	case tendv1.PhaseDenied, tendv1.PhaseFailed, tendv1.PhaseRolledBack, tendv1.PhaseExpired, tendv1.PhaseSuperseded:
		typ = corev1.EventTypeWarning
	}
	if msg == "" {
		msg = string(to)
	}
	r.event(p, typ, reason, "%s → %s: %s", from, to, msg)
	if r.Notifier != nil {
		r.Notifier.Notify(NewNotification(p, from, to, r.Options.Cluster, r.Options.Now()))
	}
	if r.Audit == nil {
		return nil
	}
	_, err := r.Audit.Append(ctx, bus.AuditRecord{
		Time:    r.Options.Now(),
		Cluster: r.Options.Cluster,
		Object:  bus.ObjectRef{Kind: bus.KindProposal, Namespace: p.Namespace, Name: p.Name, UID: string(p.UID)},
		From:    string(from),
		To:      string(to),
		Reason:  reason,
		Message: truncate(msg, 4096),
		Actor:   r.Options.FieldManager,
	})
	if err != nil {
		r.event(p, corev1.EventTypeWarning, "AuditWriteFailed", "Failed to record %s → %s in the audit log: %v", from, to, err)
		return fmt.Errorf("failed to append audit record: %w", err)
	}
	return nil
}

func (r *ProposalReconciler) event(p *tendv1.Proposal, typ, reason, format string, args ...any) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(p, nil, typ, reason, "Reconcile", format, args...)
}

// phaseReason picks a reason code for entering phase.
func phaseReason(p *tendv1.Proposal, phase tendv1.Phase) string {
	switch phase {
	case tendv1.PhaseApproved:
		if c := meta.FindStatusCondition(p.Status.Conditions, ConditionApproved); c != nil {
			return c.Reason
		}
		return ReasonApproved
	case tendv1.PhaseAwaitingApproval:
		return ReasonApprovalRequired
	case tendv1.PhaseDenied:
		if p.Status.Decision != nil && len(p.Status.Decision.Reasons) > 0 {
			return p.Status.Decision.Reasons[0].Code
		}
		if c := meta.FindStatusCondition(p.Status.Conditions, ConditionApproved); c != nil {
			return c.Reason
		}
		return ReasonDenied
	case tendv1.PhaseApplying:
		return ReasonApplying
	case tendv1.PhaseVerifying:
		return ReasonVerifying
	case tendv1.PhaseSucceeded:
		return ReasonVerified
	case tendv1.PhaseFailed:
		return ReasonApplyFailed
	case tendv1.PhaseRolledBack:
		return ReasonRolledBack
	case tendv1.PhaseExpired:
		return ReasonExpired
	case tendv1.PhaseSuperseded:
		return ReasonSuperseded
	}
	return string(phase)
}

func decisionMessage(d *tendv1.Decision) string {
	msg := string(d.Outcome)
	if d.Policy != "" {
		msg += fmt.Sprintf(" by %s/%s", d.Policy, d.Rule)
	}
	for _, r := range d.Reasons {
		msg += fmt.Sprintf("; %s", r.Code)
		if r.Guard != "" {
			msg += " (guard " + r.Guard + ")"
		}
		if r.Message != "" {
			msg += ": " + r.Message
		}
	}
	return truncate(msg, 1024)
}

func checksMessage(cs []tendv1.Check) string {
	out := ""
	for i, c := range cs {
		if i > 0 {
			out += "; "
		}
		mark := "fail"
		if c.Passed {
			mark = "ok"
		}
		out += fmt.Sprintf("%s %s (%s)", c.Name, mark, c.Message)
	}
	return truncate(out, 1024)
}

func sameKeys(a, b map[string]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

func restartedPods(base, now map[string]int32) []string {
	var out []string
	for k, v := range now {
		if b, ok := base[k]; ok && v > b {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
