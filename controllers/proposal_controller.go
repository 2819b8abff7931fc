package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/actions"
	"github.com/tendops/tend/controllers/workload"
	"github.com/tendops/tend/policies"
)

// gate decides proposals. *policies.Gate implements it.
type gate interface {
	DecideState(ctx context.Context, in policies.Input, st policies.State, now time.Time) policies.Result
	Limits() policies.Limits
	KillSwitch() bool
}

var _ gate = (*policies.Gate)(nil)

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
	// SystemNamespace holds the gate state ConfigMap and the proposals for
	// cluster-scoped targets; tendv1.DefaultSystemNamespace when empty.
	SystemNamespace string
	// HealthyWindow is how long every pod of a revision must have been
	// ready, with no restart, for the revision to count as healthy;
	// DefaultHealthyWindow when zero.
	HealthyWindow time.Duration
	// StuckPodGrace is how long past its deletion a pod on a lost node must
	// be stuck before ForceDeletePod may remove it; 30s when zero.
	StuckPodGrace time.Duration
	// RunMembershipGrace is how long a proposal that names an improvement
	// run waits for the run to list it before it is decided as not the
	// run's; DefaultRunMembershipGrace when zero.
	RunMembershipGrace time.Duration
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
		o.SystemNamespace = tendv1.DefaultSystemNamespace
	}
	if o.HealthyWindow == 0 {
		o.HealthyWindow = workload.DefaultHealthyWindow
	}
	if o.RunMembershipGrace == 0 {
		o.RunMembershipGrace = DefaultRunMembershipGrace
	}
}

// The proposal lifecycle: proposals and their status, the approvals counted
// for them, the target's namespace for the gate, and Events on proposals.
//
// +kubebuilder:rbac:groups=tend.dev,resources=proposals,verbs=get;list;watch
// +kubebuilder:rbac:groups=tend.dev,resources=proposals/status,verbs=update;patch
// +kubebuilder:rbac:groups=tend.dev,resources=approvals,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=tend.dev,resources=improvementruns,verbs=get;list;watch
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch;update

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
	// Shim, if set, is the runtime shim's client: the node actions
	// (RestartContainer, PruneImages, CollectDiagnostics) run through it.
	// Without it their proposals are denied with NoRuntimeShim.
	Shim actions.ShimClient

	actions map[tendv1.Action]actions.Action
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
	r.actions = map[tendv1.Action]actions.Action{}
	for _, a := range actions.Catalogue(actions.Options{
		Client: r.Client, APIReader: mgr.GetAPIReader(), FieldManager: r.Options.FieldManager,
		Now: r.Options.Now, HealthyWindow: r.Options.HealthyWindow, StuckPodGrace: r.Options.StuckPodGrace,
		Shim: r.Shim,
	}) {
		r.actions[a.Info().Action] = a
	}
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
		// A run's proposal is decided once its run lists it.
		Watches(&tendv1.ImprovementRun{}, handler.EnqueueRequestsFromMapFunc(runProposals)).
		Named("proposal").
		Complete(r)
}

// proposalTargetIndex indexes Proposals by targetKey.
const proposalTargetIndex = "spec.target"

// targetKey identifies a proposal's target object.
func targetKey(p *tendv1.Proposal) string {
	t := decidedSpec(p).Target
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
	p *tendv1.Proposal
	// spec is the spec the reconcile acts on: the decided one once the gate
	// decided, the live one before; hash is its hash.
	spec     *tendv1.ProposalSpec
	hash     string
	now      time.Time
	act      actions.Action
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
		// Nothing more happens to it but the audit records it still owes.
		s := &scope{p: p, now: r.Options.Now()}
		err := r.flushAudit(ctx, s)
		return s.result, err
	}
	s := &scope{p: p, now: r.Options.Now(), recorded: p.Status.Phase}
	s.use(&p.Spec)
	if d := p.Status.DecidedSpec; d != nil {
		s.use(d)
	}
	s.act = r.actions[s.spec.Action]
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

// decidedSpec is the spec a proposal acts on: the decided one once the gate
// decided, the live one before.
func decidedSpec(p *tendv1.Proposal) *tendv1.ProposalSpec {
	if p.Status.DecidedSpec != nil {
		return p.Status.DecidedSpec
	}
	return &p.Spec
}

// use makes spec the one the reconcile acts on.
func (s *scope) use(spec *tendv1.ProposalSpec) {
	s.spec, s.hash = spec, spec.Hash()
}

// view is the proposal as the actions see it: with the spec the reconcile
// acts on (the decided one), whatever the live spec says.
func (s *scope) view() *tendv1.Proposal {
	v := *s.p
	v.Spec = *s.spec
	return &v
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

// validate notices a live spec that differs from the decided one, and
// checks an undecided spec: an implemented action with valid parameters, a
// pinned target, and a target in the proposal's own namespace (or, for a
// cluster-scoped target, a proposal in the system namespace).
func (r *ProposalReconciler) validate(ctx context.Context, s *scope) (bool, error) {
	p := s.p
	if p.Status.Phase == "" {
		p.Status.Phase, p.Status.Message = tendv1.PhasePending, "Waiting for the gate"
	}
	if p.Status.DecidedSpec != nil && p.Spec.Hash() != s.hash {
		switch p.Status.Phase {
		case tendv1.PhasePending, tendv1.PhaseAwaitingApproval, tendv1.PhaseApproved:
			// The change is not the one that was decided or approved: the
			// proposal is stale; decide the live spec again.
			p.Status.Decision, p.Status.Approvals, p.Status.DecidedSpec = nil, nil, nil
			s.use(&p.Spec)
			s.act = r.actions[s.spec.Action]
			s.setPhase(tendv1.PhasePending, "Spec changed; deciding again")
			s.condition(ConditionDecided, metav1.ConditionFalse, ReasonSpecChanged, "The spec changed after the decision; every approval is void")
			s.condition(ConditionApproved, metav1.ConditionFalse, ReasonSpecChanged, "The spec changed after the decision; every approval is void")
		default:
			// Already applying what was decided: that is what is carried
			// out, verified and undone; the edit changes nothing.
			r.event(p, corev1.EventTypeWarning, ReasonSpecChanged, "Spec edited during %s; the decided change is the one being carried out", p.Status.Phase)
		}
	}
	p.Status.SpecHash = s.hash
	if p.Status.Phase != tendv1.PhasePending {
		return false, nil
	}
	if s.act == nil {
		r.deny(s, policies.ReasonUnknownAction, fmt.Sprintf("action %q is not implemented by this controller", s.spec.Action))
		return true, nil
	}
	if err := s.act.Validate(s.view()); err != nil {
		code := ReasonInvalidSpec
		if refusal, ok := errors.AsType[*actions.Refusal](err); ok {
			code = refusal.Code
		}
		r.deny(s, code, err.Error())
		return true, nil
	}
	if code, msg := r.checkTarget(p, s.spec); code != "" {
		r.deny(s, code, msg)
		return true, nil
	}
	return false, nil
}

// checkTarget enforces where a proposal may point: at an object pinned by
// UID, in the proposal's own namespace, or, for a cluster-scoped object,
// from the system namespace. Who may create a proposal in a namespace is
// RBAC's (and the admission policy's) to say; this keeps that right from
// reaching into another namespace.
func (r *ProposalReconciler) checkTarget(p *tendv1.Proposal, spec *tendv1.ProposalSpec) (code, msg string) {
	t := spec.Target
	switch {
	case t.UID == "":
		return ReasonTargetNotPinned, "the target is not pinned by UID; propose against an object that exists"
	case t.Namespace == "" && p.Namespace != r.Options.SystemNamespace:
		return ReasonTargetOutsideNamespace, fmt.Sprintf("a proposal for the cluster-scoped %s %s must be made in namespace %s, not %s", t.Kind, t.Name, r.Options.SystemNamespace, p.Namespace)
	case t.Namespace != "" && t.Namespace != p.Namespace:
		return ReasonTargetOutsideNamespace, fmt.Sprintf("the target is in namespace %s, but the proposal is in %s; a proposal may only act on its own namespace", t.Namespace, p.Namespace)
	}
	return "", ""
}

// expire ends proposals nobody acted on in time.
func (r *ProposalReconciler) expire(ctx context.Context, s *scope) (bool, error) {
	switch s.p.Status.Phase {
	case tendv1.PhasePending, tendv1.PhaseAwaitingApproval, tendv1.PhaseApproved:
	default:
		return false, nil
	}
	deadline := s.p.CreationTimestamp.Add(r.Options.DefaultExpiry)
	if s.spec.ExpiresAt != nil {
		deadline = s.spec.ExpiresAt.Time
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
		msg := fmt.Sprintf("Superseded by %s, which changed %s %s since this proposal was made", q.Name, s.spec.Target.Kind, s.spec.Target.Name)
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
	tf, stale, maturing, err := r.targetFacts(ctx, s)
	if refusal, ok := errors.AsType[*actions.Refusal](err); ok {
		r.deny(s, refusal.Code, refusal.Message)
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if stale != "" {
		r.deny(s, ReasonStale, stale+"; propose again against the current state")
		return true, nil
	}
	run, waitRun, err := r.runFacts(ctx, s, r.Options.RunMembershipGrace)
	if err != nil {
		return false, err
	}
	if waitRun > 0 {
		p.Status.Message = fmt.Sprintf("Waiting for improvement run %s/%s to list this proposal", run.Namespace, run.Name)
		s.requeueAfter(waitRun)
		return true, nil
	}
	if tf.Facts != nil {
		tf.Facts.Run = run
	}
	if maturing > 0 {
		// A fact is a few seconds short of its evidence window (a revision's
		// pods all ready, not yet for long enough): decide once it is
		// established, or once it is not, rather than now without it.
		p.Status.Message = fmt.Sprintf("Waiting %s for the evidence a decision needs: %s", maturing.Round(time.Second), factsEvidence(tf.Facts))
		s.requeueAfter(maturing)
		return true, nil
	}
	st, err := r.gatherState(ctx, s)
	if err != nil {
		return false, err
	}
	nf := policies.NamespaceFacts{}
	if ns := s.spec.Target.Namespace; ns != "" {
		n := &corev1.Namespace{}
		switch err := r.Client.Get(ctx, client.ObjectKey{Name: ns}, n); {
		case err == nil:
			nf = policies.NamespaceFacts{Exists: true, Labels: n.Labels}
		case !apierrors.IsNotFound(err):
			return false, fmt.Errorf("failed to get namespace: %w", err)
		}
	}
	res := r.Gate.DecideState(ctx, policies.NewInput(s.view(), tf, nf), st, s.now)
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
		TargetResourceVersion: s.spec.Target.ResourceVersion,
		DecidedAt:             metav1.NewTime(s.now),
		Facts:                 tf.Facts,
	}
	p.Status.Decision = d
	// From here on the decided spec is the one acted on.
	p.Status.DecidedSpec = s.spec.DeepCopy()
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

// targetFacts gathers what the gate needs to know about the target: that
// it is the object the proposal pinned, unchanged since, and the action's
// facts about it. stale, when not empty, says why the proposal no longer
// describes the target.
func (r *ProposalReconciler) targetFacts(ctx context.Context, s *scope) (tf policies.TargetFacts, stale string, maturing time.Duration, err error) {
	v := s.view()
	obj, err := s.act.Target(ctx, v)
	if apierrors.IsNotFound(err) {
		return policies.TargetFacts{Exists: false, Facts: &tendv1.Facts{}}, "", 0, nil
	}
	if err != nil {
		return tf, "", 0, fmt.Errorf("failed to get target: %w", err)
	}
	t := s.spec.Target
	switch {
	case obj.GetUID() != t.UID:
		return tf, fmt.Sprintf("%s %s was recreated (uid %s, proposal pinned %s)", t.Kind, t.Name, obj.GetUID(), t.UID), 0, nil
	case t.Generation != 0 && obj.GetGeneration() != t.Generation:
		return tf, fmt.Sprintf("%s %s changed since the proposal (generation %d, proposal pinned %d)", t.Kind, t.Name, obj.GetGeneration(), t.Generation), 0, nil
	}
	tf = policies.TargetFacts{Exists: true, Labels: obj.GetLabels()}
	if ref := metav1.GetControllerOf(obj); ref != nil {
		tf.OwnerKind, tf.OwnerName = ref.Kind, ref.Name
	}
	facts, maturing, err := s.act.Facts(ctx, v, obj)
	if _, ok := errors.AsType[*actions.Refusal](err); ok {
		return tf, "", 0, err
	}
	if err != nil {
		return tf, "", 0, fmt.Errorf("failed to read facts: %w", err)
	}
	tf.Facts = &facts
	tf.Replicas = int64(facts.Replicas)
	return tf, "", maturing, nil
}

// factsEvidence is the evidence the facts record, for a message.
func factsEvidence(f *tendv1.Facts) string {
	if f != nil && f.Revision != nil && f.Revision.Evidence != "" {
		return f.Revision.Evidence
	}
	return "facts still being established"
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
	counted, _ := judgeApprovals(s.view(), s.hash, list.Items)
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
		if denied, err := r.checkRunWindow(ctx, s); err != nil || denied {
			return true, err
		}
		if r.Gate.KillSwitch() {
			return r.holdForKillSwitch(s)
		}
		// The server-side dry run validates the write and tells what it will
		// change; that is recorded before the real write so that a restart
		// after the write still knows how to undo it.
		dry, err := s.act.Apply(ctx, s.view(), "dry-run", true)
		if err != nil {
			return r.applyFailed(s, err)
		}
		p.Status.Apply = &tendv1.ApplyRecord{
			Attempt: rand.String(10), StartedAt: metav1.NewTime(s.now), FieldManager: r.Options.FieldManager,
			Before: dry.Before, After: dry.After, UndoState: dry.UndoState,
		}
		s.setPhase(tendv1.PhaseApplying, "Applying")
		s.condition(ConditionApplied, metav1.ConditionFalse, ReasonApplying, "Applying the approved change")
		if err := r.persist(ctx, s); err != nil || s.conflict {
			// Not committed (someone else moved first): do not apply.
			return true, err
		}
	case tendv1.PhaseApplying:
		log.FromContext(ctx).V(1).Info("Applying", "attempt", p.Status.Apply.Attempt, "steps", len(p.Status.Apply.Steps))
	default:
		return false, nil
	}
	res, err := s.act.Apply(ctx, s.view(), p.Status.Apply.Attempt, false)
	if err != nil {
		return r.applyFailed(s, err)
	}
	rec := p.Status.Apply
	if res.Steps != nil {
		rec.Steps = res.Steps
	}
	if res.UndoState != "" {
		rec.UndoState = res.UndoState
	}
	if res.Shim != nil {
		rec.Shim = res.Shim
	}
	if res.InProgress {
		// One step of several done; the status records it before the next.
		rec.Before, rec.After = res.Before, res.After
		s.p.Status.Message = fmt.Sprintf("Applying (%s → %s)", res.Before, res.After)
		s.requeueAfter(res.RequeueAfter)
		return true, nil
	}
	done := metav1.NewTime(r.Options.Now())
	rec.CompletedAt = &done
	if !res.AlreadyApplied && res.Before != "" {
		rec.Before, rec.After = res.Before, res.After
	}
	rec.ResultingGeneration, rec.ResultingResourceVersion = res.Generation, res.ResourceVersion
	rec.ResultDigest = res.Digest
	s.condition(ConditionApplied, metav1.ConditionTrue, ReasonApplied, fmt.Sprintf("%s → %s", rec.Before, rec.After))
	p.Status.Verify = &tendv1.VerifyRecord{StartedAt: done, Deadline: metav1.NewTime(done.Add(r.Options.VerifyTimeout))}
	s.setPhase(tendv1.PhaseVerifying, fmt.Sprintf("Applied (%s → %s); verifying", rec.Before, rec.After))
	s.requeueAfter(time.Second)
	return true, nil
}

// applyFailed sorts an apply error: a stale target, or a refusal the
// cluster's state now makes (a budget that allows no eviction), sends the
// proposal back to the gate's record as denied with the reason, nothing
// written; a bad spec fails it; anything else is retried.
func (r *ProposalReconciler) applyFailed(s *scope, err error) (bool, error) {
	refusal, refused := errors.AsType[*actions.Refusal](err)
	switch {
	case errors.Is(err, actions.ErrStale):
		r.deny(s, ReasonStale, err.Error()+"; propose again against the current state")
		return true, nil
	case refused:
		r.deny(s, refusal.Code, refusal.Message)
		return true, nil
	case errors.Is(err, actions.ErrInvalidParameters), errors.Is(err, actions.ErrRejected), apierrors.IsInvalid(err), apierrors.IsNotFound(err):
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
	if overtaken, err := r.overtaken(ctx, s); err != nil || overtaken != "" {
		if err != nil {
			return true, err
		}
		now := metav1.NewTime(s.now)
		v.CompletedAt = &now
		msg := "Applied, then overtaken: " + overtaken + "; the outcome is not this proposal's to claim, and tend does not undo over it"
		s.condition(ConditionVerified, metav1.ConditionFalse, ReasonOvertaken, msg)
		s.setPhase(tendv1.PhaseOvertaken, msg)
		return true, nil
	}
	res, err := s.act.Verify(ctx, s.view())
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
				// The message names when the window ends, not how much of it
				// has passed, so a poll that sees nothing new writes nothing.
				Message: fmt.Sprintf("no restarts since %s; the %s window ends at %s", v.StableSince.UTC().Format(time.RFC3339), r.Options.StableWindow, v.StableSince.Add(r.Options.StableWindow).UTC().Format(time.RFC3339))})
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
	if res.Hopeless != "" || !s.now.Before(v.Deadline.Time) {
		now := metav1.NewTime(s.now)
		failed := false
		v.CompletedAt, v.Passed = &now, &failed
		why := checksMessage(v.Checks)
		if res.Hopeless != "" {
			why = res.Hopeless + "; " + why
		}
		s.condition(ConditionVerified, metav1.ConditionFalse, ReasonVerifyFailed, why)
		if !s.act.Info().Undoable {
			msg := "Verification failed, and " + string(s.spec.Action) + " cannot be undone: " + why
			r.event(p, corev1.EventTypeWarning, ReasonVerifyFailed, "%s", msg)
			s.setPhase(tendv1.PhaseFailed, msg)
			return true, nil
		}
		s.p.Status.Rollback = &tendv1.ApplyRecord{Attempt: rand.String(10), StartedAt: now, FieldManager: r.Options.FieldManager}
		s.p.Status.Message = "Verification failed; rolling back: " + why
		r.event(p, corev1.EventTypeWarning, ReasonVerifyFailed, "Verification failed; rolling back: %s", why)
		if err := r.persist(ctx, s); err != nil || s.conflict {
			return true, err
		}
		return false, nil
	}
	s.requeueAfter(2 * time.Second)
	return true, nil
}

// overtaken says, when the live target is no longer what the proposal's
// apply produced, what changed: the object was recreated, another apply
// (of tend's) stamped it since, or its digest (the part the action wrote)
// differs. Verification judges only the proposal's own change.
func (r *ProposalReconciler) overtaken(ctx context.Context, s *scope) (string, error) {
	rec := s.p.Status.Apply
	if rec == nil || rec.ResultDigest == "" {
		return "", nil
	}
	t := s.spec.Target
	obj, err := s.act.Target(ctx, s.view())
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("%s %s was deleted", t.Kind, t.Name), nil
	case err != nil:
		return "", fmt.Errorf("failed to read the target: %w", err)
	case obj.GetUID() != t.UID:
		return fmt.Sprintf("%s %s was recreated", t.Kind, t.Name), nil
	case obj.GetAnnotations()[actions.AnnotationApplied] != actions.Marker(s.p, rec.Attempt):
		return fmt.Sprintf("%s %s was changed by another proposal (%s)", t.Kind, t.Name, obj.GetAnnotations()[actions.AnnotationApplied]), nil
	}
	digest, err := s.act.Digest(obj)
	if err != nil {
		return "", err
	}
	if digest != rec.ResultDigest {
		return fmt.Sprintf("%s %s was changed by someone else after the apply", t.Kind, t.Name), nil
	}
	return "", nil
}

// undo reverts a change whose verification failed, exactly once.
func (r *ProposalReconciler) undo(ctx context.Context, s *scope) (bool, error) {
	p := s.p
	if p.Status.Phase != tendv1.PhaseVerifying || p.Status.Rollback == nil || p.Status.Rollback.CompletedAt != nil {
		return false, nil
	}
	rb := p.Status.Rollback
	res, err := s.act.Undo(ctx, s.view(), rb.Attempt)
	now := metav1.NewTime(r.Options.Now())
	if err != nil {
		if !errors.Is(err, actions.ErrStale) && !errors.Is(err, actions.ErrInvalidParameters) && !errors.Is(err, actions.ErrCannotUndo) && !apierrors.IsNotFound(err) {
			return true, fmt.Errorf("failed to roll back: %w", err)
		}
		rb.Error, rb.CompletedAt = err.Error(), &now
		s.setPhase(tendv1.PhaseFailed, "Verification failed and the rollback could not run: "+err.Error())
		r.event(p, corev1.EventTypeWarning, ReasonRollbackFailed, "%s", err.Error())
		return true, nil
	}
	rb.CompletedAt = &now
	if !res.AlreadyApplied {
		rb.Before, rb.After = res.Before, res.After
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
	res, err := s.act.VerifyUndo(ctx, s.view())
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
	outbox, seq := p.Status.AuditOutbox, p.Status.AuditSequence
	r.stageAudit(s)
	if err := r.Client.Status().Update(ctx, p); err != nil {
		s.entered = nil
		p.Status.AuditOutbox, p.Status.AuditSequence = outbox, seq
		if apierrors.IsConflict(err) {
			// Worked from a stale copy; the next reconcile reads the winner's state.
			s.conflict = true
			s.result = ctrl.Result{RequeueAfter: time.Second}
			return nil
		}
		return fmt.Errorf("failed to update proposal status: %w", err)
	}
	from := s.recorded
	for i, to := range s.entered {
		msg := p.Status.Message
		if i < len(s.entered)-1 {
			msg = ""
		}
		r.record(ctx, p, from, to, msg)
		from = to
	}
	s.recorded, s.entered = p.Status.Phase, nil
	return r.flushAudit(ctx, s)
}

// record tells of one committed transition: a log line, an Event and, when
// configured, a notification. The audit record is in the proposal's outbox.
func (r *ProposalReconciler) record(ctx context.Context, p *tendv1.Proposal, from, to tendv1.Phase, msg string) {
	reason := phaseReason(p, to)
	log.FromContext(ctx).Info("Proposal transition", "proposal", klog.KObj(p), "from", from, "to", to, "reason", reason)
	typ := corev1.EventTypeNormal
	switch to {
	case tendv1.PhaseDenied, tendv1.PhaseFailed, tendv1.PhaseRolledBack, tendv1.PhaseExpired, tendv1.PhaseSuperseded, tendv1.PhaseOvertaken:
		typ = corev1.EventTypeWarning
	}
	if msg == "" {
		msg = string(to)
	}
	r.event(p, typ, reason, "%s → %s: %s", from, to, msg)
	observeTransition(p, from, to, r.Options.Now())
	if r.Notifier != nil {
		r.Notifier.Notify(NewNotification(p, from, to, r.Options.Cluster, r.Options.Now()))
	}
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
	case tendv1.PhaseOvertaken:
		return ReasonOvertaken
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
