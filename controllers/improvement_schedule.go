package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// Reasons of an ImprovementSchedule's Ready condition.
const (
	ReasonScheduled       = "Scheduled"
	ReasonSuspended       = "Suspended"
	ReasonInvalidSchedule = "InvalidSchedule"
	ReasonInvalidTimeZone = "InvalidTimeZone"
	ReasonUnknownAnalyzer = "UnknownAnalyzer"
	ReasonEmptyScope      = "ScopeMatchesNothing"
	ReasonInvalidCanary   = "CanaryOutOfRange"
)

// cronParser reads the five-field cron syntax.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Schedules: the schedules and their runs, and the workloads a scope covers.
//
// +kubebuilder:rbac:groups=tend.dev,resources=improvementschedules,verbs=get;list;watch
// +kubebuilder:rbac:groups=tend.dev,resources=improvementschedules/status,verbs=update;patch
// +kubebuilder:rbac:groups=tend.dev,resources=improvementruns,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets;daemonsets,verbs=get;list;watch

// ImprovementScheduleReconciler starts an ImprovementSchedule's runs when
// they are due, at most once per scheduled time, and keeps a bounded
// history of them.
type ImprovementScheduleReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	// Analyzers are the names a schedule may use.
	Analyzers []string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (r *ImprovementScheduleReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager registers the reconciler: schedules and the runs they own.
func (r *ImprovementScheduleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&tendv1.ImprovementSchedule{}).
		Owns(&tendv1.ImprovementRun{}).
		Named("improvementschedule").
		Complete(r)
}

// scheduleScope is one reconcile's view of a schedule.
type scheduleScope struct {
	s       *tendv1.ImprovementSchedule
	now     time.Time
	sched   cron.Schedule
	runs    []tendv1.ImprovementRun
	result  ctrl.Result
	invalid bool
}

// Reconcile validates the schedule, starts the run that is due, trims the
// history and writes the status once.
func (r *ImprovementScheduleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, retErr error) {
	s := &tendv1.ImprovementSchedule{}
	if err := r.Client.Get(ctx, req.NamespacedName, s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	sc := &scheduleScope{s: s, now: r.now()}
	before := s.Status.DeepCopy()
	defer func() {
		if retErr == nil && !sc.invalid {
			s.Status.ObservedGeneration = s.Generation
		}
		if !equalStatus(before, &s.Status) {
			if err := r.Client.Status().Update(ctx, s); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("failed to update schedule status: %w", err))
			}
		}
		res = sc.result
	}()
	for _, phase := range []func(context.Context, *scheduleScope) (bool, error){r.validateSchedule, r.listRuns, r.startDue, r.trimHistory} {
		done, err := phase(ctx, sc)
		if err != nil {
			return ctrl.Result{}, err
		}
		if done {
			break
		}
	}
	return sc.result, nil
}

func equalStatus(a, b *tendv1.ImprovementScheduleStatus) bool {
	return fmt.Sprintf("%v", *a) == fmt.Sprintf("%v", *b)
}

func (sc *scheduleScope) ready(st metav1.ConditionStatus, reason, msg string) {
	meta.SetStatusCondition(&sc.s.Status.Conditions, metav1.Condition{
		Type: ConditionReady, Status: st, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: sc.s.Generation,
	})
}

// ParseSchedule reads a cron schedule in a time zone.
func ParseSchedule(schedule, timeZone string) (cron.Schedule, error) {
	if timeZone == "" {
		timeZone = "UTC"
	}
	if strings.Contains(schedule, "TZ=") {
		return nil, errors.New("the time zone goes in spec.timeZone, not in the schedule")
	}
	if _, err := time.LoadLocation(timeZone); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadTimeZone, err)
	}
	return cronParser.Parse("CRON_TZ=" + timeZone + " " + schedule)
}

var errBadTimeZone = errors.New("unknown time zone")

// validateSchedule checks what the API server cannot: the cron syntax, the
// time zone, the analyzers, the canary share and that the scope matches a
// workload. A bad schedule gets a condition and no run.
func (r *ImprovementScheduleReconciler) validateSchedule(ctx context.Context, sc *scheduleScope) (bool, error) {
	s := sc.s
	bad := func(reason, msg string) (bool, error) {
		if c := meta.FindStatusCondition(s.Status.Conditions, ConditionReady); c == nil || c.Reason != reason || c.Status != metav1.ConditionFalse {
			r.event(s, "Warning", reason, msg)
		}
		sc.ready(metav1.ConditionFalse, reason, msg)
		s.Status.NextRunTime = nil
		sc.invalid = true
		return true, nil
	}
	sched, err := ParseSchedule(s.Spec.Schedule, s.Spec.TimeZone)
	switch {
	case errors.Is(err, errBadTimeZone):
		return bad(ReasonInvalidTimeZone, fmt.Sprintf("time zone %q: %v", s.Spec.TimeZone, err))
	case err != nil:
		return bad(ReasonInvalidSchedule, fmt.Sprintf("schedule %q: %v", s.Spec.Schedule, err))
	}
	sc.sched = sched
	for _, a := range s.Spec.Agents {
		if !slices.Contains(r.Analyzers, a) {
			return bad(ReasonUnknownAnalyzer, fmt.Sprintf("unknown analyzer %q; known: %s", a, strings.Join(r.Analyzers, ", ")))
		}
	}
	if p := s.Spec.CanaryPercent; p < 1 || p > 100 {
		return bad(ReasonInvalidCanary, fmt.Sprintf("canaryPercent %d is out of range: a canary is 1 to 100 percent of a run's changes", p))
	}
	ws, err := ScopeWorkloads(ctx, r.Client, s.Namespace, s.Spec.Scope)
	if err != nil {
		if errors.Is(err, errBadSelector) {
			return bad(ReasonEmptyScope, err.Error())
		}
		return false, err
	}
	if len(ws) == 0 {
		// Workloads are not watched: look again later.
		sc.result.RequeueAfter = time.Minute
		return bad(ReasonEmptyScope, "the scope matches no Deployment, StatefulSet or DaemonSet")
	}
	if s.Spec.Suspend {
		sc.ready(metav1.ConditionTrue, ReasonSuspended, "suspended: no new runs")
		s.Status.NextRunTime = nil
		return true, nil
	}
	return false, nil
}

var errBadSelector = errors.New("invalid scope selector")

// ScopeWorkloads lists the workloads a schedule's scope covers: in its
// namespaces (the schedule's own when it names none), matching its selector.
func ScopeWorkloads(ctx context.Context, c client.Reader, own string, scope tendv1.ScheduleScope) ([]tendv1.WorkloadRef, error) {
	sel := labels.Everything()
	if scope.Selector != nil {
		var err error
		if sel, err = metav1.LabelSelectorAsSelector(scope.Selector); err != nil {
			return nil, fmt.Errorf("%w: %w", errBadSelector, err)
		}
	}
	namespaces := scope.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{own}
	}
	var out []tendv1.WorkloadRef
	for _, ns := range namespaces {
		opts := []client.ListOption{client.InNamespace(ns), client.MatchingLabelsSelector{Selector: sel}}
		var ds appsv1.DeploymentList
		if err := c.List(ctx, &ds, opts...); err != nil {
			return nil, fmt.Errorf("failed to list deployments: %w", err)
		}
		for _, d := range ds.Items {
			out = append(out, tendv1.WorkloadRef{Kind: "Deployment", Namespace: ns, Name: d.Name})
		}
		var ss appsv1.StatefulSetList
		if err := c.List(ctx, &ss, opts...); err != nil {
			return nil, fmt.Errorf("failed to list statefulsets: %w", err)
		}
		for _, d := range ss.Items {
			out = append(out, tendv1.WorkloadRef{Kind: "StatefulSet", Namespace: ns, Name: d.Name})
		}
		var dss appsv1.DaemonSetList
		if err := c.List(ctx, &dss, opts...); err != nil {
			return nil, fmt.Errorf("failed to list daemonsets: %w", err)
		}
		for _, d := range dss.Items {
			out = append(out, tendv1.WorkloadRef{Kind: "DaemonSet", Namespace: ns, Name: d.Name})
		}
	}
	return out, nil
}

func (r *ImprovementScheduleReconciler) listRuns(ctx context.Context, sc *scheduleScope) (bool, error) {
	var runs tendv1.ImprovementRunList
	if err := r.Client.List(ctx, &runs, client.InNamespace(sc.s.Namespace), client.MatchingLabels{tendv1.LabelSchedule: sc.s.Name}); err != nil {
		return false, fmt.Errorf("failed to list runs: %w", err)
	}
	sc.runs = runs.Items
	sort.Slice(sc.runs, func(i, j int) bool { return sc.runs[i].Spec.ScheduledTime.After(sc.runs[j].Spec.ScheduledTime.Time) })
	return false, nil
}

// startDue starts the run of the latest scheduled time that has passed, if
// it is still inside the window and has no run yet: a schedule missed while
// the controller was down runs once, and never twice (the run's name is its
// scheduled time).
func (r *ImprovementScheduleReconciler) startDue(ctx context.Context, sc *scheduleScope) (bool, error) {
	s := sc.s
	since := s.CreationTimestamp.Time
	if s.Status.LastRunTime != nil && s.Status.LastRunTime.After(since) {
		since = s.Status.LastRunTime.Time
	}
	// The latest scheduled time in (since, now].
	var due time.Time
	for t := sc.sched.Next(since); !t.After(sc.now); t = sc.sched.Next(t) {
		due = t
	}
	window := windowOf(s)
	if !due.IsZero() {
		s.Status.LastRunTime = &metav1.Time{Time: due}
		if sc.now.Before(due.Add(window)) {
			run := NewRun(s, due, false)
			if err := controllerutil.SetControllerReference(s, run, r.Client.Scheme()); err != nil {
				return false, fmt.Errorf("failed to own run: %w", err)
			}
			err := r.Client.Create(ctx, run)
			switch {
			case apierrors.IsAlreadyExists(err):
			case err != nil:
				return false, fmt.Errorf("failed to create run: %w", err)
			default:
				r.event(s, "Normal", "RunStarted", fmt.Sprintf("Started run %s for %s", run.Name, due.UTC().Format(time.RFC3339)))
				sc.runs = append([]tendv1.ImprovementRun{*run}, sc.runs...)
			}
		} else {
			r.event(s, "Warning", "RunMissed", fmt.Sprintf("Missed the run of %s: its window of %s has passed", due.UTC().Format(time.RFC3339), window))
		}
	}
	next := sc.sched.Next(sc.now)
	s.Status.NextRunTime = &metav1.Time{Time: next}
	sc.ready(metav1.ConditionTrue, ReasonScheduled, "next run at "+next.UTC().Format(time.RFC3339))
	sc.result.RequeueAfter = next.Sub(sc.now)
	return false, nil
}

func windowOf(s *tendv1.ImprovementSchedule) time.Duration {
	if w := s.Spec.Window.Duration; w > 0 {
		return w
	}
	return time.Hour
}

// NewRun is the run of schedule s for the scheduled time at: its settings
// copied from the schedule. A manual run (tend runs start) is named apart
// from the scheduled ones.
func NewRun(s *tendv1.ImprovementSchedule, at time.Time, manual bool) *tendv1.ImprovementRun {
	name := fmt.Sprintf("%s-%d", s.Name, at.Unix()/60)
	if manual {
		name = fmt.Sprintf("%s-manual-%d", s.Name, at.Unix())
	}
	if len(name) > 63 {
		name = name[len(name)-63:]
		name = strings.TrimLeft(name, "-")
	}
	batch := s.Spec.BatchSize
	if batch <= 0 {
		batch = 5
	}
	return &tendv1.ImprovementRun{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: map[string]string{tendv1.LabelSchedule: s.Name}},
		Spec: tendv1.ImprovementRunSpec{
			Schedule: s.Name, ScheduledTime: metav1.Time{Time: at}, WindowEnd: metav1.Time{Time: at.Add(windowOf(s))},
			Agents: s.Spec.Agents, Scope: s.Spec.Scope, CanaryPercent: s.Spec.CanaryPercent, BatchSize: batch,
			Soak: s.Spec.Soak, ReportOnly: s.Spec.ReportOnly, Rightsizing: s.Spec.Rightsizing, Pricing: s.Spec.Pricing,
		},
	}
}

// trimHistory records the newest runs in the status and deletes finished
// runs beyond the history limit.
func (r *ImprovementScheduleReconciler) trimHistory(ctx context.Context, sc *scheduleScope) (bool, error) {
	limit := int(sc.s.Spec.HistoryLimit)
	if limit <= 0 {
		limit = 5
	}
	var refs []tendv1.RunReference
	kept := 0
	for i := range sc.runs {
		run := &sc.runs[i]
		if kept >= limit && run.Status.Phase.Finished() {
			if err := r.Client.Delete(ctx, run); client.IgnoreNotFound(err) != nil {
				return false, fmt.Errorf("failed to delete run %s: %w", run.Name, err)
			}
			log.FromContext(ctx).V(1).Info("Deleted an old run", "run", klog.KObj(run))
			continue
		}
		kept++
		refs = append(refs, tendv1.RunReference{Name: run.Name, ScheduledTime: run.Spec.ScheduledTime, Phase: run.Status.Phase})
	}
	sc.s.Status.Runs = refs
	return false, nil
}

func (r *ImprovementScheduleReconciler) event(obj client.Object, typ, reason, msg string) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, typ, reason, reason, "%s", msg)
	}
}
