package controllers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
	"github.com/tendops/tend/mcp/wire"
)

// RunAnalyzer recommends a run's changes: it runs the named analyzers over
// the workloads at now. *agents.Improver implements it.
type RunAnalyzer interface {
	Recommend(ctx context.Context, analyzers []string, workloads []tendv1.WorkloadRef, params tendv1.RightsizingParams, now time.Time) ([]tendv1.RunItem, error)
}

// RunProposer proposes one recommended change through the MCP server, as
// the improvement agent; the gate decides it like any other proposal.
// *agents.ItemProposer implements it.
type RunProposer interface {
	// A proposal not applied by notAfter expires (zero: the server's
	// default expiry).
	ProposeItem(ctx context.Context, item tendv1.RunItem, fingerprint string, notAfter time.Time) (wire.ProposeResult, error)
}

// SoakUsage reads the CPU usage of a workload's container, in millicores,
// from the samples taken in [from, to]: what a soak judges CPU throttling
// on. *agents.Improver implements it.
type SoakUsage interface {
	CPUUsage(ctx context.Context, w tendv1.WorkloadRef, container string, from, to time.Time) ([]int64, error)
}

// The throttling signal of a soak. The telemetry carries no throttling
// counter (metrics.k8s.io reports usage only), so a container counts as
// throttled when its CPU usage sat at its CPU limit, throttlePercent of it
// or more, in most of at least minThrottleSamples samples taken during the
// soak. A container without a CPU limit has no quota to be throttled by.
const (
	throttlePercent    = 95
	minThrottleSamples = 3
)

// Condition types and reasons of an ImprovementRun.
const (
	// ConditionAnalyzed is True once the analysis is recorded.
	ConditionAnalyzed = "Analyzed"
	// ConditionProgressing is True while the run proposes and verifies.
	ConditionProgressing = "Progressing"

	ReasonAnalysisFailed = "AnalysisFailed"
	ReasonNothingToDo    = "NothingToChange"
	ReasonReportOnly     = "ReportOnly"
	ReasonCanaryFailed   = "CanaryFailed"
	ReasonBatchFailed    = "BatchFailed"
	ReasonWindowClosed   = "WindowClosed"
	ReasonStopRequested  = "StopRequested"
	ReasonRunSucceeded   = "AllBatchesVerified"
	ReasonBatchUnderWay  = "BatchUnderWay"
)

// fingerprintPrefix starts the fingerprint of every proposal of a run.
const fingerprintPrefix = "improve/"

// DefaultRunPoll is how often a run under way looks at its proposals and
// its soak when nothing else wakes it.
const DefaultRunPoll = 5 * time.Second

// Runs: the runs, their proposals, and the workloads' health during a soak.
//
// +kubebuilder:rbac:groups=tend.dev,resources=improvementruns,verbs=get;list;watch
// +kubebuilder:rbac:groups=tend.dev,resources=improvementruns/status,verbs=update;patch
// +kubebuilder:rbac:groups=tend.dev,resources=proposals,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch
//
// In a cluster the run proposes its changes through the MCP server with the
// controller's own token (tend controller --mcp-url): the actions a run
// makes, and only those.
//
// +kubebuilder:rbac:groups=tend.dev,resources=proposals,verbs=propose,resourceNames=SetResources;SetAutoscaler;ScaleWorkload
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch

// ImprovementRunReconciler drives an ImprovementRun: analysis, then the
// canary, then the batches, each verified and soaked before the next, and
// undone on a regression. It never writes a workload: every change is a
// proposal the gate decides and the proposal controller applies.
type ImprovementRunReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Analyzer RunAnalyzer
	Proposer RunProposer
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Poll is DefaultRunPoll when zero.
	Poll time.Duration
	// Usage, if set, is read at the end of each soak for the throttling
	// signal; without it a soak watches restarts, OOM kills and replicas
	// only.
	Usage SoakUsage
	// Notifier, if set, is sent the summary of every run that finishes.
	Notifier notifier
	// Cluster names the cluster in notifications.
	Cluster string
	// ProposerUsername is the username the Proposer's proposals carry (the
	// improvement agent's service account, as the API server and the MCP
	// server authenticated it). A run resuming after a restart adopts a
	// proposal with its item's fingerprint only if that user made it, for
	// the item's action and workload: anyone else's proposal that copies
	// the fingerprint is not taken for the run's. Empty skips the proposer
	// check.
	ProposerUsername string
}

// SetupWithManager registers the reconciler, watching runs and the
// proposals they made.
func (r *ImprovementRunReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&tendv1.ImprovementRun{}).
		Watches(&tendv1.Proposal{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if key, ok := runOfFingerprint(o.(*tendv1.Proposal).Spec.Fingerprint); ok {
				return []reconcile.Request{{NamespacedName: key}}
			}
			return nil
		})).
		Named("improvementrun").
		Complete(r)
}

// itemFingerprint identifies the proposal of a run's item i; undo that of its undo.
func itemFingerprint(run *tendv1.ImprovementRun, i int, undo bool) string {
	fp := fmt.Sprintf("%s%s/%s/%d", fingerprintPrefix, run.Namespace, run.Name, i)
	if undo {
		fp += "/undo"
	}
	return fp
}

func runOfFingerprint(fp string) (types.NamespacedName, bool) {
	rest, ok := strings.CutPrefix(fp, fingerprintPrefix)
	if !ok {
		return types.NamespacedName{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) < 3 {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: parts[0], Name: parts[1]}, true
}

// runScope is one reconcile's view of a run.
type runScope struct {
	run    *tendv1.ImprovementRun
	now    time.Time
	result ctrl.Result
	failed bool
}

func (s *runScope) requeueAfter(d time.Duration) {
	if d <= 0 {
		d = time.Second
	}
	if s.result.RequeueAfter == 0 || d < s.result.RequeueAfter {
		s.result.RequeueAfter = d
	}
}

func (s *runScope) condition(t string, st metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&s.run.Status.Conditions, metav1.Condition{
		Type: t, Status: st, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: s.run.Generation,
	})
}

// Reconcile runs the phases over one run and writes its status once.
func (r *ImprovementRunReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	run := &tendv1.ImprovementRun{}
	if err := r.Client.Get(ctx, req.NamespacedName, run); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if run.Status.Phase.Finished() {
		return ctrl.Result{}, nil
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	s := &runScope{run: run, now: now()}
	before := run.Status.DeepCopy()
	defer func() {
		if retErr == nil && !s.failed {
			run.Status.ObservedGeneration = run.Generation
		}
		if fmt.Sprintf("%v", *before) != fmt.Sprintf("%v", run.Status) {
			err := r.Client.Status().Update(ctx, run)
			switch {
			case apierrors.IsConflict(err):
				// Worked from a stale copy; the next reconcile reads the
				// winner's state (and adopts any proposal made meanwhile by
				// its fingerprint).
				s.result = ctrl.Result{RequeueAfter: time.Second}
			case err != nil:
				retErr = errors.Join(retErr, fmt.Errorf("failed to update run status: %w", err))
			case !before.Phase.Finished() && run.Status.Phase.Finished() && r.Notifier != nil:
				// Once, when the end is recorded.
				r.Notifier.Notify(runNotification(run, r.Cluster))
			}
		}
		res = s.result
	}()
	for _, phase := range []func(context.Context, *runScope) (bool, error){r.halt, r.analyze, r.progress} {
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

// analyze runs the analyzers once and records their recommendations, in
// batches: the canary (batch 0) then BatchSize at a time. The items are
// written before any proposal is made.
func (r *ImprovementRunReconciler) analyze(ctx context.Context, s *runScope) (bool, error) {
	run := s.run
	if run.Status.Phase != "" && run.Status.Phase != tendv1.RunAnalyzing {
		return false, nil
	}
	if run.Status.StartTime == nil {
		run.Status.StartTime = &metav1.Time{Time: s.now}
		run.Status.Phase = tendv1.RunAnalyzing
	}
	workloads, err := ScopeWorkloads(ctx, r.Client, run.Namespace, run.Spec.Scope)
	if err != nil {
		return false, err
	}
	items, err := r.Analyzer.Recommend(ctx, run.Spec.Agents, workloads, run.Spec.Rightsizing, s.now)
	if err != nil {
		// Reading the telemetry or the history failed: tried again with
		// back-off until the window closes (halt then stops the run).
		s.failed = true
		s.condition(ConditionAnalyzed, metav1.ConditionFalse, ReasonAnalysisFailed, err.Error())
		return true, fmt.Errorf("failed to analyse run %s: %w", run.Name, err)
	}
	changes := 0
	for i := range items {
		if items[i].Action != "" && items[i].Outcome == tendv1.ItemPlanned {
			if run.Spec.ReportOnly {
				items[i].Outcome = tendv1.ItemReported
				continue
			}
			changes++
		}
	}
	canary := max(1, (changes*int(run.Spec.CanaryPercent)+99)/100)
	batch := max(1, int(run.Spec.BatchSize))
	n := 0
	for i := range items {
		if items[i].Outcome != tendv1.ItemPlanned {
			continue
		}
		if n < canary {
			items[i].Batch = 0
		} else {
			items[i].Batch = int32(1 + (n-canary)/batch)
		}
		n++
		run.Status.Batches = items[i].Batch + 1
	}
	run.Status.Items = items
	run.Status.Projected = savings(run, func(tendv1.RunItem) bool { return true })
	s.condition(ConditionAnalyzed, metav1.ConditionTrue, "Analyzed", fmt.Sprintf("%d recommendations, %d changes in %d batches", len(items), changes, run.Status.Batches))
	r.event(run, "Normal", "Analyzed", fmt.Sprintf("%d recommendations, %d changes in %d batches", len(items), changes, run.Status.Batches))
	switch {
	case run.Spec.ReportOnly:
		r.finish(s, tendv1.RunSucceeded, ReasonReportOnly, "report only: nothing proposed")
	case changes == 0:
		r.finish(s, tendv1.RunSucceeded, ReasonNothingToDo, "nothing to change")
	default:
		run.Status.Phase, run.Status.Batch = tendv1.RunCanary, 0
		s.condition(ConditionProgressing, metav1.ConditionTrue, ReasonBatchUnderWay, fmt.Sprintf("canary of %d changes", canary))
		// The items are persisted before the first proposal.
		s.requeueAfter(time.Millisecond)
	}
	return true, nil
}

// halt stops a run asked to stop or past its window: the items not yet
// proposed are skipped. Changes already applied stay.
func (r *ImprovementRunReconciler) halt(_ context.Context, s *runScope) (bool, error) {
	run := s.run
	reason, msg := "", ""
	switch {
	case run.Spec.Stop:
		reason, msg = ReasonStopRequested, "stopped on request"
	case !s.now.Before(run.Spec.WindowEnd.Time):
		reason, msg = ReasonWindowClosed, "the run's window closed at "+run.Spec.WindowEnd.UTC().Format(time.RFC3339)
	default:
		return false, nil
	}
	for i := range run.Status.Items {
		if run.Status.Items[i].Outcome == tendv1.ItemPlanned {
			run.Status.Items[i].Outcome = tendv1.ItemSkipped
		}
	}
	r.finish(s, tendv1.RunStopped, reason, msg)
	return true, nil
}

// progress drives the current batch: propose its items, follow their
// proposals, soak what was applied, and move on, stop or undo.
func (r *ImprovementRunReconciler) progress(ctx context.Context, s *runScope) (bool, error) {
	run := s.run
	b := run.Status.Batch
	done, failed := true, ""
	for i := range run.Status.Items {
		it := &run.Status.Items[i]
		if it.Batch != b || it.Action == "" {
			continue
		}
		if err := r.step(ctx, s, i); err != nil {
			return false, err
		}
		switch it.Outcome {
		case tendv1.ItemVerified, tendv1.ItemDenied:
		case tendv1.ItemFailed, tendv1.ItemUndone:
			failed = fmt.Sprintf("%s %s: %s", it.Workload.Name, strings.ToLower(string(it.Outcome)), it.Message)
		default:
			done = false
		}
	}
	if failed != "" {
		// Undo the rest of the failing batch, skip the batches after it.
		// A change still being applied or verified is undone too: once the
		// run has stopped nobody would follow it. One not applied yet is
		// left to the gate, which refuses it now that the run has ended.
		for i := range run.Status.Items {
			it := &run.Status.Items[i]
			if it.Batch == b && it.Outcome == tendv1.ItemProposed {
				started, err := r.applyStarted(ctx, it)
				if err != nil {
					return false, err
				}
				if started {
					it.Outcome = tendv1.ItemApplied
				}
			}
			switch {
			case it.Batch == b && (it.Outcome == tendv1.ItemApplied || it.Outcome == tendv1.ItemVerified):
				if err := r.undo(ctx, s, i, "its batch failed"); err != nil {
					return false, err
				}
			case it.Outcome == tendv1.ItemPlanned:
				it.Outcome = tendv1.ItemSkipped
			}
		}
		reason := ReasonBatchFailed
		if b == 0 {
			reason = ReasonCanaryFailed
		}
		r.finish(s, tendv1.RunStopped, reason, failed)
		return true, nil
	}
	if !done {
		s.requeueAfter(r.poll())
		return true, nil
	}
	if b+1 >= run.Status.Batches {
		r.finish(s, tendv1.RunSucceeded, ReasonRunSucceeded, fmt.Sprintf("%d batches verified", run.Status.Batches))
		return true, nil
	}
	run.Status.Batch, run.Status.Phase = b+1, tendv1.RunRolling
	r.event(run, "Normal", "BatchVerified", fmt.Sprintf("Batch %d verified; starting batch %d", b, b+1))
	s.condition(ConditionProgressing, metav1.ConditionTrue, ReasonBatchUnderWay, fmt.Sprintf("batch %d of %d", b+1, run.Status.Batches-1))
	s.requeueAfter(time.Millisecond)
	return true, nil
}

func (r *ImprovementRunReconciler) poll() time.Duration {
	if r.Poll > 0 {
		return r.Poll
	}
	return DefaultRunPoll
}

// applyStarted reports whether the proposal of an item the run has not
// seen succeed yet has written its change: it is applying or verifying
// (or has just succeeded).
func (r *ImprovementRunReconciler) applyStarted(ctx context.Context, it *tendv1.RunItem) (bool, error) {
	p := &tendv1.Proposal{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: it.Workload.Namespace, Name: it.Proposal}, p); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	switch p.Status.Phase {
	case tendv1.PhaseApplying, tendv1.PhaseVerifying, tendv1.PhaseSucceeded:
		return true, nil
	}
	return false, nil
}

// step moves one item on.
func (r *ImprovementRunReconciler) step(ctx context.Context, s *runScope, i int) error {
	run := s.run
	it := &run.Status.Items[i]
	switch it.Outcome {
	case tendv1.ItemPlanned:
		name, err := r.propose(ctx, run, i, *it, false)
		if err != nil {
			return err
		}
		it.Proposal, it.Outcome = name, tendv1.ItemProposed
		r.event(run, "Normal", "Proposed", fmt.Sprintf("Proposed %s for %s/%s (%s)", it.Action, it.Workload.Namespace, it.Workload.Name, name))
	case tendv1.ItemProposed, tendv1.ItemAwaitingApproval:
		p := &tendv1.Proposal{}
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: it.Workload.Namespace, Name: it.Proposal}, p); err != nil {
			return client.IgnoreNotFound(err)
		}
		switch p.Status.Phase {
		case tendv1.PhaseSucceeded:
			restarts, _, _, err := r.health(ctx, it.Workload)
			if err != nil {
				return err
			}
			it.Outcome, it.AppliedAt, it.Restarts = tendv1.ItemApplied, &metav1.Time{Time: s.now}, restarts
		case tendv1.PhaseAwaitingApproval:
			it.Outcome = tendv1.ItemAwaitingApproval
		case tendv1.PhaseDenied, tendv1.PhaseExpired, tendv1.PhaseSuperseded:
			it.Outcome, it.Message = tendv1.ItemDenied, fmt.Sprintf("proposal %s: %s", p.Status.Phase, p.Status.Message)
		case tendv1.PhaseOvertaken:
			// Applied, then changed by another proposal before it was
			// verified (a maintenance fix of what it broke): never verified,
			// so the batch failed; tend does not undo over the other change.
			it.Outcome, it.Message = tendv1.ItemFailed, "applied, then overtaken before it was verified: "+p.Status.Message
		case tendv1.PhaseRolledBack:
			it.Outcome, it.Message = tendv1.ItemUndone, "verification failed and the proposal controller rolled it back: "+p.Status.Message
		case tendv1.PhaseFailed:
			it.Outcome, it.Message = tendv1.ItemFailed, "proposal failed: "+p.Status.Message
		}
	case tendv1.ItemApplied:
		restarts, oom, unavailable, err := r.health(ctx, it.Workload)
		if err != nil {
			return err
		}
		var why string
		switch {
		case oom && restarts > it.Restarts:
			why = "a container was OOM-killed during the soak"
		case restarts > it.Restarts:
			why = fmt.Sprintf("containers restarted %d times during the soak", restarts-it.Restarts)
		case unavailable > 0:
			why = fmt.Sprintf("%d replicas unavailable during the soak", unavailable)
		}
		if why != "" {
			return r.undo(ctx, s, i, why)
		}
		end := it.AppliedAt.Add(run.Spec.Soak.Duration)
		if s.now.Before(end) {
			s.requeueAfter(min(end.Sub(s.now), r.poll()))
			return nil
		}
		// Throttling is a matter of most of the soak, so it is judged once,
		// at its end.
		why, err = r.throttled(ctx, it, it.AppliedAt.Time, end)
		if err != nil {
			return err
		}
		if why != "" {
			return r.undo(ctx, s, i, why)
		}
		it.Outcome = tendv1.ItemVerified
		run.Status.Achieved = savings(run, func(x tendv1.RunItem) bool { return x.Outcome == tendv1.ItemVerified })
	}
	return nil
}

// throttled says why the item's container counts as CPU-throttled during
// its soak [from, to], or "" when it does not (or nothing tells).
func (r *ImprovementRunReconciler) throttled(ctx context.Context, it *tendv1.RunItem, from, to time.Time) (string, error) {
	if r.Usage == nil || it.Container == "" {
		return "", nil
	}
	limit, err := r.cpuLimit(ctx, it.Workload, it.Container)
	if err != nil || limit == 0 {
		return "", err
	}
	samples, err := r.Usage.CPUUsage(ctx, it.Workload, it.Container, from, to)
	if err != nil {
		return "", fmt.Errorf("failed to read the usage of %s/%s during the soak: %w", it.Workload.Namespace, it.Workload.Name, err)
	}
	at := 0
	for _, v := range samples {
		if v*100 >= limit*throttlePercent {
			at++
		}
	}
	if len(samples) < minThrottleSamples || 2*at <= len(samples) {
		return "", nil
	}
	return fmt.Sprintf("container %s was CPU-throttled during the soak: its usage was at its CPU limit of %dm in %d of %d samples", it.Container, limit, at, len(samples)), nil
}

// cpuLimit is the CPU limit, in millicores, of a workload's container as
// its pod template sets it now; 0 when it sets none or the workload has no
// pod template of its own.
func (r *ImprovementRunReconciler) cpuLimit(ctx context.Context, w tendv1.WorkloadRef, container string) (int64, error) {
	var obj client.Object
	switch w.Kind {
	case "Deployment":
		obj = &appsv1.Deployment{}
	case "StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "DaemonSet":
		obj = &appsv1.DaemonSet{}
	default:
		return 0, nil
	}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: w.Namespace, Name: w.Name}, obj); err != nil {
		return 0, fmt.Errorf("failed to read %s %s/%s: %w", w.Kind, w.Namespace, w.Name, err)
	}
	t, _ := workload.Template(obj)
	for _, c := range t.Spec.Containers {
		if c.Name == container {
			return c.Resources.Limits.Cpu().MilliValue(), nil
		}
	}
	return 0, nil
}

// undo proposes putting item i back as it was, and marks it undone.
func (r *ImprovementRunReconciler) undo(ctx context.Context, s *runScope, i int, why string) error {
	run := s.run
	it := &run.Status.Items[i]
	back := *it
	back.After, back.Message = it.Before, fmt.Sprintf("Undo the improvement run %s's change to %s: %s", run.Name, it.Workload.Name, why)
	name, err := r.propose(ctx, run, i, back, true)
	if err != nil {
		return err
	}
	it.UndoProposal, it.Outcome, it.Message = name, tendv1.ItemUndone, why
	run.Status.Achieved = savings(run, func(x tendv1.RunItem) bool { return x.Outcome == tendv1.ItemVerified })
	r.event(run, "Warning", "Undone", fmt.Sprintf("Undoing %s/%s: %s (%s)", it.Workload.Namespace, it.Workload.Name, why, name))
	return nil
}

// propose makes the proposal of item i, or finds the one made before: a
// run that resumes after a restart adopts its proposals by fingerprint and
// never proposes the same change twice.
func (r *ImprovementRunReconciler) propose(ctx context.Context, run *tendv1.ImprovementRun, i int, it tendv1.RunItem, undo bool) (string, error) {
	fp := itemFingerprint(run, i, undo)
	var ps tendv1.ProposalList
	if err := r.Client.List(ctx, &ps, client.InNamespace(it.Workload.Namespace)); err != nil {
		return "", fmt.Errorf("failed to list proposals: %w", err)
	}
	for _, p := range ps.Items {
		if p.Spec.Fingerprint == fp && r.madeFor(&p, it) {
			return p.Name, nil
		}
	}
	// A change expires unapplied when the run's window closes, whoever
	// approves it; an undo is never held to the window.
	notAfter := run.Spec.WindowEnd.Time
	if undo {
		notAfter = time.Time{}
	}
	res, err := r.Proposer.ProposeItem(ctx, it, fp, notAfter)
	if err != nil {
		return "", fmt.Errorf("failed to propose %s for %s/%s: %w", it.Action, it.Workload.Namespace, it.Workload.Name, err)
	}
	return res.Name, nil
}

// madeFor reports whether p is a proposal the run's Proposer made for
// item it: by its user, for its action and workload.
func (r *ImprovementRunReconciler) madeFor(p *tendv1.Proposal, it tendv1.RunItem) bool {
	t := p.Spec.Target
	return (r.ProposerUsername == "" || p.Spec.Proposer.Username == r.ProposerUsername) &&
		string(p.Spec.Action) == it.Action && t.Kind == it.Workload.Kind && t.Namespace == it.Workload.Namespace && t.Name == it.Workload.Name
}

// health reads a workload's container restarts, whether one was OOM-killed,
// and how many replicas are unavailable.
func (r *ImprovementRunReconciler) health(ctx context.Context, w tendv1.WorkloadRef) (restarts int32, oom bool, unavailable int32, err error) {
	key := types.NamespacedName{Namespace: w.Namespace, Name: w.Name}
	var sel *metav1.LabelSelector
	switch w.Kind {
	case "Deployment":
		d := &appsv1.Deployment{}
		if err := r.Client.Get(ctx, key, d); err != nil {
			return 0, false, 0, fmt.Errorf("failed to read %s: %w", key, err)
		}
		sel = d.Spec.Selector
		if d.Spec.Replicas != nil {
			unavailable = max(0, *d.Spec.Replicas-d.Status.AvailableReplicas)
		}
	case "StatefulSet":
		ss := &appsv1.StatefulSet{}
		if err := r.Client.Get(ctx, key, ss); err != nil {
			return 0, false, 0, fmt.Errorf("failed to read %s: %w", key, err)
		}
		sel = ss.Spec.Selector
		if ss.Spec.Replicas != nil {
			unavailable = max(0, *ss.Spec.Replicas-ss.Status.AvailableReplicas)
		}
	case "DaemonSet":
		ds := &appsv1.DaemonSet{}
		if err := r.Client.Get(ctx, key, ds); err != nil {
			return 0, false, 0, fmt.Errorf("failed to read %s: %w", key, err)
		}
		sel, unavailable = ds.Spec.Selector, ds.Status.NumberUnavailable
	case "HorizontalPodAutoscaler":
		h := &autoscalingv2.HorizontalPodAutoscaler{}
		if err := r.Client.Get(ctx, key, h); err != nil {
			return 0, false, 0, fmt.Errorf("failed to read %s: %w", key, err)
		}
		// An autoscaler's change is judged by its target's health.
		return r.health(ctx, tendv1.WorkloadRef{Kind: h.Spec.ScaleTargetRef.Kind, Namespace: w.Namespace, Name: h.Spec.ScaleTargetRef.Name})
	default:
		return 0, false, 0, fmt.Errorf("unsupported workload kind %q", w.Kind)
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return 0, false, 0, fmt.Errorf("bad selector of %s: %w", key, err)
	}
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(w.Namespace), client.MatchingLabelsSelector{Selector: s}); err != nil {
		return 0, false, 0, fmt.Errorf("failed to list pods of %s: %w", key, err)
	}
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			restarts += cs.RestartCount
			if t := cs.LastTerminationState.Terminated; t != nil && t.Reason == "OOMKilled" {
				oom = true
			}
			if t := cs.State.Terminated; t != nil && t.Reason == "OOMKilled" {
				oom = true
			}
		}
	}
	return restarts, oom, unavailable, nil
}

func (r *ImprovementRunReconciler) finish(s *runScope, phase tendv1.RunPhase, reason, msg string) {
	run := s.run
	run.Status.Phase = phase
	run.Status.CompletionTime = &metav1.Time{Time: s.now}
	s.condition(ConditionProgressing, metav1.ConditionFalse, reason, msg)
	typ := "Normal"
	if phase != tendv1.RunSucceeded {
		typ = "Warning"
	}
	r.event(run, typ, reason, fmt.Sprintf("Run %s: %s", strings.ToLower(string(phase)), msg))
}

func (r *ImprovementRunReconciler) event(obj client.Object, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, typ, reason, reason, "%s", msg)
	}
}

// savings adds up, over the items keep selects, the requests the changes
// free (negative where they add), times the replicas.
func savings(run *tendv1.ImprovementRun, keep func(tendv1.RunItem) bool) tendv1.Savings {
	var out tendv1.Savings
	for _, it := range run.Status.Items {
		if it.Action != "SetResources" || !keep(it) {
			continue
		}
		n := int64(max(it.Before.Replicas, 1))
		if it.Before.CPURequestMillicores > 0 {
			out.CPUMillicores += (it.Before.CPURequestMillicores - it.After.CPURequestMillicores) * n
		}
		if it.Before.MemoryRequestBytes > 0 {
			out.MemoryBytes += (it.Before.MemoryRequestBytes - it.After.MemoryRequestBytes) * n
		}
	}
	out.Monthly = monthly(run.Spec.Pricing, out)
	return out
}

// monthly is the money the savings are worth at the prices, "" without prices.
func monthly(p tendv1.Pricing, s tendv1.Savings) string {
	cpu, errCPU := strconv.ParseFloat(p.CPUCoreMonthly, 64)
	mem, errMem := strconv.ParseFloat(p.MemoryGiBMonthly, 64)
	if errCPU != nil && errMem != nil {
		return ""
	}
	v := float64(s.CPUMillicores)/1000*cpu + float64(s.MemoryBytes)/(1<<30)*mem
	return strings.TrimSpace(fmt.Sprintf("%.2f %s", v, p.Currency))
}

// runNotification is the webhook summary of a finished run.
func runNotification(run *tendv1.ImprovementRun, cluster string) Notification {
	sum := &RunSummary{Schedule: run.Spec.Schedule, Phase: run.Status.Phase, Outcomes: map[tendv1.ItemOutcome]int{},
		SavedCPUMillicores: run.Status.Achieved.CPUMillicores, SavedMemoryBytes: run.Status.Achieved.MemoryBytes, SavedMonthly: run.Status.Achieved.Monthly}
	if c := meta.FindStatusCondition(run.Status.Conditions, ConditionProgressing); c != nil {
		sum.Reason = c.Reason
	}
	for _, it := range run.Status.Items {
		sum.Outcomes[it.Outcome]++
	}
	at := time.Now()
	if run.Status.CompletionTime != nil {
		at = run.Status.CompletionTime.Time
	}
	return Notification{Time: at, Cluster: cluster, Namespace: run.Namespace, Name: run.Name, Run: sum}
}
