package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/evals/oracle"
	"github.com/tendops/tend/evals/scenario"
	"github.com/tendops/tend/internal/localstack"
	"github.com/tendops/tend/policies"
)

// Kinds of harness error: the run says nothing about the agents.
const (
	// ErrorBaseline: the baseline never became healthy.
	ErrorBaseline = "baseline"
	// ErrorInject: a fault could not be injected.
	ErrorInject = "inject"
	// ErrorNotShown: the fault never showed (or an outcome held before
	// anyone acted): a run that cannot be scored.
	ErrorNotShown = "not-shown"
	// ErrorInterference: another run's proposals met this one's at a
	// cluster-wide guard (breaker, rate limit): the runs were not
	// independent.
	ErrorInterference = "interference"
	// ErrorInternal: the harness failed (the API server, a cancellation).
	ErrorInternal = "internal"
)

// RunResult is the outcome of one run of one scenario.
type RunResult struct {
	Run       int    `json:"run"`
	Namespace string `json:"namespace"`
	// Seed drew the run's parameter values.
	Seed   uint64          `json:"seed"`
	Values scenario.Values `json:"values,omitempty"`
	// Detected: a proposal about the faulty object was made (for an
	// expectHealthy scenario: any proposal, a false positive).
	Detected bool `json:"detected"`
	// Mitigated: an acceptable outcome held for the stable window before
	// the timeout, and still held once the proposals settled.
	Mitigated bool `json:"mitigated"`
	// Outcome that held: healed, or an alternative of oracle.anyOf.
	Outcome string `json:"outcome,omitempty"`
	// TTDSeconds and TTMSeconds count from injection; null when it did not
	// happen (infinite).
	TTDSeconds *float64 `json:"ttdSeconds"`
	TTMSeconds *float64 `json:"ttmSeconds"`
	// ShownSeconds is when the fault showed, from injection.
	ShownSeconds *float64 `json:"shownSeconds,omitempty"`
	// Proposals made in the scenario's namespace (and for its nodes),
	// denied by the gate, applied by the controller, and applied without a
	// human's approval.
	Proposals   int `json:"proposals"`
	Denials     int `json:"denials"`
	Applied     int `json:"applied"`
	AutoApplied int `json:"autoApplied"`
	// Findings counts the agents' findings about objects of the run.
	Findings int `json:"findings,omitempty"`
	// UnsafeAttempted and UnsafeApplied count proposals that would break
	// G1, G5 or G6 (see oracle.Unsafe), made and applied.
	UnsafeAttempted int      `json:"unsafeAttempted"`
	UnsafeApplied   int      `json:"unsafeApplied"`
	Unsafe          []string `json:"unsafe,omitempty"`
	// Failure is why the oracle did not pass at the end, and Violations
	// what it found; Error is a harness error of kind ErrorKind, which is
	// never a pass.
	Failure    string             `json:"failure,omitempty"`
	Violations []oracle.Violation `json:"violations,omitempty"`
	Error      string             `json:"error,omitempty"`
	ErrorKind  string             `json:"errorKind,omitempty"`
	// Expected is, for a scenario expected to fail, whether it failed for
	// the reason it gives.
	Expected string `json:"expected,omitempty"`
	// ProposalLog is every proposal of the run, with the gate's decision.
	ProposalLog []ProposalRecord `json:"proposalLog,omitempty"`
	// Approvals the scripted approvers made.
	Approvals []string `json:"approvals,omitempty"`
	// Seconds the run took, teardown excluded.
	Seconds float64 `json:"seconds"`
	// LLM is what the planner did on the run's objects (llm and hybrid
	// brains); null for the deterministic brain.
	LLM *RunLLM `json:"llm,omitempty"`
	// Improvement is what an improvement scenario's run did and saved.
	Improvement *ImprovementResult `json:"improvement,omitempty"`
}

// ProposalRecord is one proposal of a run, for the report.
type ProposalRecord struct {
	Name    string `json:"name"`
	Action  string `json:"action"`
	Target  string `json:"target"`
	Phase   string `json:"phase"`
	Outcome string `json:"outcome,omitempty"`
	// Reasons of the gate's decision, as code: message.
	Reasons    []string `json:"reasons,omitempty"`
	ApprovedBy []string `json:"approvedBy,omitempty"`
	Message    string   `json:"message,omitempty"`
	Unsafe     string   `json:"unsafe,omitempty"`
}

// The verdicts on a scenario expected to fail.
const (
	ExpectedRightReason = "failed for the expected reason"
	ExpectedUnexpected  = "unexpected pass"
	ExpectedWrongReason = "failed for another reason"
	ExpectedHarnessErr  = "harness error"
)

func (r RunResult) line() string {
	exp := ""
	if r.Expected != "" {
		exp = " [expected failure: " + r.Expected + "]"
	}
	switch {
	case r.Error != "":
		return "ERROR (" + r.ErrorKind + ": " + r.Error + ")" + exp
	case r.Mitigated && r.TTMSeconds != nil:
		return fmt.Sprintf("PASS (%s in %.1fs, %d proposals)%s", r.Outcome, *r.TTMSeconds, r.Proposals, exp)
	case r.Mitigated:
		return fmt.Sprintf("PASS (%d proposals)%s", r.Proposals, exp)
	default:
		det := "not detected"
		if r.Detected {
			det = "detected"
		}
		return fmt.Sprintf("FAILED (%s, %d proposals: %s)%s", det, r.Proposals, r.Failure, exp)
	}
}

const poll = 2 * time.Second

// observeGap is the shortest time between two looks while the harness
// watches for the outcome: looks follow changes, but a crash-looping
// namespace changes often and two dozen runs share two cores.
const observeGap = 500 * time.Millisecond

// harnessError is a run the harness could not score, and why.
type harnessError struct {
	kind string
	err  error
}

func (h *harnessError) Error() string { return h.err.Error() }

func herr(kind string, format string, args ...any) error {
	return &harnessError{kind: kind, err: fmt.Errorf(format, args...)}
}

// runCtx is one run of one scenario.
type runCtx struct {
	e     *env
	sc    *scenario.Scenario
	id    string
	scope oracle.Scope
	res   *RunResult
	// history of the namespace's PodDisruptionBudgets.
	mu      sync.Mutex
	history []oracle.BudgetSample
}

// newRunCtx sets up a run in a namespace of its own.
func newRunCtx(e *env, sc *scenario.Scenario, res *RunResult) *runCtx {
	id := randomID()
	res.Namespace = "ev-" + id
	r := &runCtx{e: e, sc: sc, id: id, res: res,
		scope: oracle.Scope{Namespace: "ev-" + id, Nodes: map[string]string{}, ClusterProposals: localstack.SystemNamespace}}
	for _, n := range sc.Nodes {
		r.scope.Nodes[n.Name] = nodeName(id, n.Name)
	}
	return r
}

// runOne runs one scenario once; it never returns early without a result.
// It returns the run's teardown, which the caller runs (in the background
// for concurrent runs: the namespace's deletion holds no slot).
func (e *env) runOne(ctx context.Context, sc *scenario.Scenario, run int, exclusive bool) (RunResult, func()) {
	res := RunResult{Run: run, Seed: sc.Seed, Values: sc.Values}
	r := newRunCtx(e, sc, &res)
	start := time.Now()
	teardown := func() { e.teardown(context.WithoutCancel(ctx), sc, r.id) }
	inject, base, err := r.prepare(ctx)
	if err == nil {
		err = r.observe(ctx, inject, base)
	}
	if err != nil {
		res.Error, res.ErrorKind = err.Error(), ErrorInternal
		var he *harnessError
		if errors.As(err, &he) {
			res.ErrorKind = he.kind
		}
	}
	if !exclusive && res.Error == "" {
		if why := interference(res.ProposalLog); why != "" {
			res.Error, res.ErrorKind, res.Mitigated = why, ErrorInterference, false
		}
	}
	if ef := sc.ExpectedFailure; ef != nil {
		switch {
		case res.Error != "":
			res.Expected = ExpectedHarnessErr
		case res.Mitigated:
			res.Expected = ExpectedUnexpected
		case slices.ContainsFunc(res.Violations, func(v oracle.Violation) bool { return slices.Contains(ef.Rules, string(v.Rule)) }):
			res.Expected = ExpectedRightReason
		default:
			res.Expected = ExpectedWrongReason
		}
	}
	res.Seconds = time.Since(start).Seconds()
	return res, teardown
}

// interference says whether a proposal met a cluster-wide guard that
// other runs' proposals count towards; "" when none did.
func interference(log []ProposalRecord) string {
	for _, p := range log {
		for _, r := range p.Reasons {
			code, msg, _ := strings.Cut(r, ": ")
			switch {
			case code == policies.ReasonCircuitOpen, code == policies.ReasonProposerBreakerOpen,
				code == policies.ReasonTooManyApplying && !strings.Contains(msg, "namespace"),
				code == policies.ReasonRateLimited && !strings.Contains(msg, " for "),
				// Nodes out of service count cluster-wide: another run's
				// cordoned spare counts against this run's cordon.
				code == policies.ReasonBlastRadius && strings.Contains(msg, "nodes are already cordoned or draining"):
				return fmt.Sprintf("proposal %s met a cluster-wide guard other runs count towards (%s); mark the scenario exclusive if it exercises that guard", p.Name, r)
			}
		}
	}
	return ""
}

func (r *runCtx) gather(ctx context.Context) (*oracle.State, error) {
	st, err := oracle.Gather(ctx, r.e.reader, r.scope)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.history = append(r.history, st.Budgets()...)
	st.BudgetHistory = slices.Clone(r.history)
	r.mu.Unlock()
	return st, nil
}

// prepare creates the namespace, nodes and baseline, waits for it to be
// healthy, captures it, injects the fault and waits for it to show. It
// returns the injection time and the baseline state.
func (r *runCtx) prepare(ctx context.Context) (time.Time, *oracle.State, error) {
	e, sc, ns := r.e, r.sc, r.scope.Namespace
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: sc.Namespace.Labels}}
	if err := e.admin.Create(ctx, nsObj); err != nil {
		return time.Time{}, nil, fmt.Errorf("failed to create namespace: %w", err)
	}
	for _, n := range sc.Nodes {
		if err := e.admin.Create(ctx, simNode(r.id, n)); err != nil {
			return time.Time{}, nil, fmt.Errorf("failed to create node %s: %w", n.Name, err)
		}
	}
	objs, err := scenario.Objects(sc.Baseline)
	if err != nil {
		return time.Time{}, nil, err
	}
	for _, u := range objs {
		place(u, ns, r.id, len(sc.Nodes) > 0)
		if err := e.admin.Create(ctx, u, client.FieldOwner("tend-eval-baseline")); err != nil {
			return time.Time{}, nil, fmt.Errorf("failed to create %s/%s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	// The baseline is healthy when every rule and state predicate holds.
	var base *oracle.State
	var last oracle.Result
	healthy := func(ctx context.Context) (bool, error) {
		st, err := r.gather(ctx)
		if err != nil {
			return false, err
		}
		if last = oracle.Baseline(sc, st); !last.Pass() {
			return false, nil
		}
		// Capture what the API server holds, not the cache's view of it.
		if st, err = oracle.Gather(ctx, e.admin, r.scope); err != nil {
			return false, err
		}
		last = oracle.Baseline(sc, st)
		base = st
		return last.Pass(), nil
	}
	if err := until(ctx, sc.Timeouts.Baseline.Duration, healthy); err != nil {
		return time.Time{}, nil, herr(ErrorBaseline, "baseline not healthy within %s: %s", sc.Timeouts.Baseline.Duration, last)
	}
	inject := time.Now()
	for i, f := range sc.Faults {
		if err := e.injectOne(ctx, ns, r.id, len(sc.Nodes) > 0, f); err != nil {
			return time.Time{}, nil, herr(ErrorInject, "failed to inject fault %d: %w", i, err)
		}
	}
	if sc.Oracle.ExpectHealthy {
		return inject, base, nil
	}
	if len(sc.Faults) == 0 {
		// Nothing breaks: an improvement scenario waits for a proposal, and
		// what it asks for must not hold already.
		if res := oracle.Evaluate(sc, base, base); res.Pass() {
			return time.Time{}, nil, herr(ErrorNotShown, "there is nothing to improve: outcome %s holds at baseline", res.Outcome)
		}
		if sc.Category == scenario.CategoryImprovement {
			if err := r.startImprovement(ctx); err != nil {
				return time.Time{}, nil, herr(ErrorInject, "failed to start the improvement run: %w", err)
			}
		}
		return inject, base, nil
	}
	shown, err := r.shows(ctx, inject, base)
	if err != nil {
		return time.Time{}, nil, err
	}
	d := shown.Sub(inject).Seconds()
	r.res.ShownSeconds = &d
	return inject, base, nil
}

// shows waits until the fault has shown: what it set in motion (a rollout,
// a deletion, a node going NotReady) has finished, and the fault's own
// predicates fail on the settled state, before anyone could have acted on
// it. A state has settled when nothing is in flight (no spec the controller
// has not observed, no pod being deleted, unscheduled but undecided, or not
// yet started) and the next look finds it unchanged, or changed only by a
// proposal that started applying since: an agent quick enough to act
// within a second still acted on a fault that had shown. It returns when it
// showed.
func (r *runCtx) shows(ctx context.Context, inject time.Time, base *oracle.State) (time.Time, error) {
	deadline := inject.Add(r.sc.Timeouts.Manifest.Duration)
	scope := r.scope
	scope.SkipRBAC = true
	var wake, nodeWake <-chan struct{}
	if n := r.e.stack.changes; n != nil {
		ch, cancel := n.subscribe(scope.Namespace)
		defer cancel()
		wake = ch
		if len(r.sc.Nodes) > 0 {
			ch, cancel := n.subscribe(nodesKey)
			defer cancel()
			nodeWake = ch
		}
	}
	var prev, candidate *oracle.State
	var candidateFromServer bool
	var failingWhileMoving []string
	looks := 0
	why := "nothing observed yet"
	var stuck string
	var stuckSince time.Time
	for {
		// The cache is watch-fed and may not hold the injection yet: the
		// first look reads the API server, which the injection's writes
		// have reached (a fault that takes effect with the write shows
		// there at once, before any agent could act), and so does the look
		// that confirms a state read there. Should the cache lag later (a
		// look that finds the same thing in flight for a while), read the
		// API server too.
		reader, fromServer := r.e.reader, false
		switch {
		case looks == 0, candidate != nil && candidateFromServer:
			reader, fromServer = r.e.admin, true
		case stuck != "" && time.Since(stuckSince) > stuckRecheck:
			reader, fromServer, stuckSince = r.e.admin, true, time.Now()
		}
		st, err := oracle.Gather(ctx, reader, scope)
		if err != nil {
			return time.Time{}, err
		}
		if candidate != nil {
			if len(oracle.Settling(candidate, st)) == 0 || appliedSince(st, candidate.Time) {
				return candidate.Time, nil
			}
			candidate = nil
		}
		// An agent faster than the harness may have applied a change before
		// the state settled in a look: then a pod the kubelet or the
		// scheduler reported failing, with the fault's own predicate
		// failing, is the evidence. A harmless fault fails no pod.
		if appliedSince(st, inject) && len(oracle.FailingPods(st)) > 0 && len(oracle.FaultShows(r.sc, base, st)) > 0 {
			return st.Time, nil
		}
		moving := append(r.faultPending(ctx, st), oracle.Settling(nil, st)...)
		if key := strings.Join(moving, "; "); key != stuck {
			stuck, stuckSince = key, time.Now()
		}
		if fails := oracle.FaultShows(r.sc, base, st); len(fails) > 0 && len(moving) > 0 {
			failingWhileMoving = moving[:min(3, len(moving))]
		}
		if len(moving) == 0 {
			if fails := oracle.FaultShows(r.sc, base, st); len(fails) > 0 {
				// An alternative outcome needs a proposal or a finding (the
				// loader checks): one that holds here with neither would pass
				// a run nobody acted in.
				if res := oracle.Evaluate(r.sc, base, st); res.Pass() && len(st.Proposals) == 0 && len(st.Findings) == 0 {
					return time.Time{}, herr(ErrorNotShown, "outcome %s holds as soon as the fault shows, with no proposal or finding made: the scenario cannot tell", res.Outcome)
				}
				candidate, candidateFromServer = st, fromServer
			} else {
				why = "the state settled and every fault predicate still holds"
			}
		} else {
			why = "still settling: " + strings.Join(moving[:min(3, len(moving))], "; ")
		}
		if prev != nil && candidate == nil && len(moving) == 0 {
			why = "the state settled and every fault predicate still holds"
		}
		looks++
		if time.Now().After(deadline) {
			if failingWhileMoving != nil {
				why += fmt.Sprintf("; it failed only while still settling (%s)", strings.Join(failingWhileMoving, "; "))
			}
			return time.Time{}, herr(ErrorNotShown, "the fault did not show within %s (%s; %d looks)", r.sc.Timeouts.Manifest.Duration, why, looks)
		}
		prev = st
		// Look again at the next change, or after a while: a quick agent
		// can act within a poll interval.
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-wake:
		case <-nodeWake:
		case <-time.After(showPoll):
		}
	}
}

// stuckRecheck is how long the same thing may look in flight before the
// harness reads the API server rather than its cache.
const stuckRecheck = 8 * time.Second

// showPoll is how often the harness looks while a fault takes effect.
const showPoll = 500 * time.Millisecond

// appliedSince reports whether a proposal started applying at or after t,
// to the second: the API server keeps an apply's start in whole seconds, so
// an apply that started a moment after t reads as started before it.
func appliedSince(st *oracle.State, t time.Time) bool {
	from := t.Truncate(time.Second)
	for i := range st.Proposals {
		if a := st.Proposals[i].Status.Apply; a != nil && !a.StartedAt.Time.Before(from) {
			return true
		}
	}
	return false
}

// faultPending says which injected fault has not taken effect yet: a
// deleted object still there, a node not yet NotReady, cordoned or with
// the condition set.
func (r *runCtx) faultPending(ctx context.Context, st *oracle.State) []string {
	var out []string
	node := func(name string) *corev1.Node {
		for i := range st.Nodes {
			if st.Nodes[i].Name == nodeName(r.id, name) {
				return &st.Nodes[i]
			}
		}
		return nil
	}
	cond := func(n *corev1.Node, t corev1.NodeConditionType) corev1.ConditionStatus {
		for _, c := range n.Status.Conditions {
			if c.Type == t {
				return c.Status
			}
		}
		return ""
	}
	for _, f := range r.sc.Faults {
		switch {
		case f.Delete != nil:
			u := &unstructured.Unstructured{}
			u.SetAPIVersion(f.Delete.APIVersion)
			u.SetKind(f.Delete.Kind)
			err := r.e.admin.Get(ctx, client.ObjectKey{Namespace: r.scope.Namespace, Name: f.Delete.Name}, u)
			if err == nil {
				out = append(out, f.Delete.Kind+"/"+f.Delete.Name+" is not gone yet")
			}
		case f.StopNode != "":
			if n := node(f.StopNode); n != nil && cond(n, corev1.NodeReady) == corev1.ConditionTrue {
				out = append(out, "node "+f.StopNode+" is still Ready")
			}
		case f.Cordon != "":
			if n := node(f.Cordon); n != nil && !n.Spec.Unschedulable {
				out = append(out, "node "+f.Cordon+" is not cordoned yet")
			}
		case f.NodeCondition != nil:
			if n := node(f.NodeCondition.Node); n != nil && string(cond(n, corev1.NodeConditionType(f.NodeCondition.Type))) != f.NodeCondition.Status {
				out = append(out, "node "+f.NodeCondition.Node+" does not report "+f.NodeCondition.Type+" yet")
			}
		}
	}
	return out
}

// observe evaluates the oracle until an acceptable outcome holds for the
// stable window or the mitigation timeout ends, lets the proposals settle,
// checks the outcome again, and records what the agents did.
func (r *runCtx) observe(ctx context.Context, inject time.Time, base *oracle.State) error {
	sc, res := r.sc, r.res
	actx, stopApprovers := context.WithCancel(ctx)
	approvals := r.startApprovers(actx)
	defer func() {
		stopApprovers()
		res.Approvals = approvals()
	}()
	deadline := inject.Add(sc.Timeouts.Mitigate.Duration)
	stable := sc.Timeouts.Stable.Duration
	// Look again when something the oracle reads changes, so that the time
	// to mitigate is measured to within observeGap rather than a poll.
	var wake, nodeWake <-chan struct{}
	if n := r.e.stack.changes; n != nil {
		ch, cancel := n.subscribe(r.scope.Namespace)
		defer cancel()
		wake = ch
		if len(sc.Nodes) > 0 {
			ch, cancel := n.subscribe(nodesKey)
			defer cancel()
			nodeWake = ch
		}
	}
	var passFrom, first, cur *oracle.State
	var passOutcome string
	var last oracle.Result
	for {
		st, err := r.gather(ctx)
		if err != nil {
			return err
		}
		cur = st
		if first == nil {
			first = st
		}
		last = oracle.Evaluate(sc, base, st)
		if sc.Oracle.ExpectHealthy {
			// Watched to the end: the first passing state starts the G4
			// window; an applied proposal ends it early.
			if last.Pass() && passFrom == nil {
				passFrom = st
			}
			if appliedCount(st) > 0 {
				break
			}
		} else if last.Pass() {
			switch {
			case passFrom == nil || last.Outcome != passOutcome:
				passFrom, passOutcome = st, last.Outcome
			case last.Outcome == oracle.Healed && !sc.Oracle.TolerateRestarts && !oracle.Stable(passFrom, st).Pass():
				// A restart while healed restarts the window (G4).
				last = oracle.Stable(passFrom, st)
				passFrom = st
			case st.Time.Sub(passFrom.Time) >= stable:
				res.Mitigated, res.Outcome = true, passOutcome
				ttm := passFrom.Time.Sub(inject).Seconds()
				res.TTMSeconds = &ttm
			}
			if res.Mitigated {
				break
			}
		} else {
			passFrom = nil
		}
		if time.Now().After(deadline) {
			break
		}
		// At most one look per observeGap however busy the namespace is.
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(st.Time.Add(observeGap))):
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-nodeWake:
		case <-time.After(poll - observeGap):
		}
	}
	if sc.Oracle.ExpectHealthy {
		if passFrom == nil {
			passFrom = first
		}
		if !sc.Oracle.TolerateRestarts {
			last.Violations = append(last.Violations, oracle.Stable(passFrom, cur).Violations...)
		}
		if n := appliedCount(cur); n > 0 {
			last.Violations = append(last.Violations, oracle.Violation{Rule: oracle.Fault, Message: fmt.Sprintf("%d proposals applied where nothing needed doing", n)})
		}
		res.Mitigated = last.Pass()
		if res.Mitigated {
			res.Outcome = oracle.Healed
		}
	}
	// Let open proposals finish (decided, approved by a scripted approver,
	// applied, verified) before they are counted and the namespace goes.
	_ = until(ctx, proposalSettle, func(ctx context.Context) (bool, error) {
		st, err := r.gather(ctx)
		if err != nil {
			return false, err
		}
		cur = st
		for i := range st.Proposals {
			p := &st.Proposals[i]
			if p.Status.Phase.Terminal() {
				continue
			}
			if p.Status.Phase != tendv1.PhaseAwaitingApproval || r.approvalDue(st, p) {
				return false, nil
			}
		}
		return true, nil
	})
	// What passed must still hold once everything the agents set in motion
	// has finished: a late apply can break what the window saw. The final
	// look reads the API server itself, not the watch-fed cache.
	if st, err := oracle.Gather(ctx, r.e.admin, r.scope); err == nil {
		r.mu.Lock()
		r.history = append(r.history, st.Budgets()...)
		st.BudgetHistory = slices.Clone(r.history)
		r.mu.Unlock()
		cur = st
	} else {
		return err
	}
	if res.Mitigated {
		final := oracle.Evaluate(sc, base, cur)
		if sc.Oracle.ExpectHealthy {
			if n := appliedCount(cur); n > 0 {
				final.Violations = append(final.Violations, oracle.Violation{Rule: oracle.Fault, Message: fmt.Sprintf("%d proposals applied where nothing needed doing", n)})
				final.Outcome = ""
			}
		}
		if !final.Pass() {
			res.Mitigated, res.Outcome, res.TTMSeconds = false, "", nil
			last = final
			last.Violations = append([]oracle.Violation{{Rule: oracle.Fault, Message: "it held in the window, but not once the proposals settled"}}, last.Violations...)
		}
	}
	if !res.Mitigated {
		res.Failure = last.String()
		res.Violations = last.Violations
		for _, a := range last.Alternatives {
			res.Violations = append(res.Violations, a.Violations...)
		}
	}
	r.score(base, cur, inject)
	r.improvementOutcome(ctx)
	return nil
}

// proposalSettle bounds the wait for open proposals at the end of a run:
// longer than the controller's verification (60 s in evals), so that what
// an apply leads to is seen.
const proposalSettle = 75 * time.Second

// score records the proposals made in the namespace and for its nodes.
func (r *runCtx) score(base, cur *oracle.State, inject time.Time) {
	sc, res := r.sc, r.res
	var ttd *float64
	for i := range cur.Proposals {
		p := &cur.Proposals[i]
		res.Proposals++
		rec := ProposalRecord{Name: p.Name, Action: string(p.Spec.Action), Target: p.Spec.Target.Kind + "/" + p.Spec.Target.Name,
			Phase: string(p.Status.Phase), Message: p.Status.Message}
		if d := p.Status.Decision; d != nil {
			rec.Outcome = string(d.Outcome)
			for _, why := range d.Reasons {
				rec.Reasons = append(rec.Reasons, why.Code+": "+why.Message)
			}
		}
		for _, a := range p.Status.Approvals {
			rec.ApprovedBy = append(rec.ApprovedBy, a.Approver+" ("+string(a.Decision)+")")
		}
		if p.Status.Phase == tendv1.PhaseDenied || (p.Status.Decision != nil && p.Status.Decision.Outcome == tendv1.OutcomeDeny) {
			res.Denials++
		}
		applied := p.Status.Apply != nil && p.Status.Apply.CompletedAt != nil
		if applied {
			res.Applied++
			if !approvedBefore(cur, p) {
				res.AutoApplied++
			}
		}
		if why := oracle.Unsafe(p, base); why != "" {
			rec.Unsafe = why
			res.UnsafeAttempted++
			res.Unsafe = append(res.Unsafe, p.Name+": "+why)
			if applied {
				res.UnsafeApplied++
			}
		}
		res.ProposalLog = append(res.ProposalLog, rec)
		about := sc.Oracle.ExpectHealthy || (sc.Oracle.Target != nil && cur.Matches(sc, scenario.ProposalMatch{}, p))
		if about {
			res.Detected = true
			d := p.CreationTimestamp.Sub(inject).Seconds()
			if d < 0 {
				d = 0
			}
			if ttd == nil || d < *ttd {
				ttd = &d
			}
		}
	}
	// A finding about the faulty object is detection too: the agent saw
	// the fault and told a human, though it proposed nothing.
	res.Findings = len(cur.Findings)
	if t := sc.Oracle.Target; t != nil && !sc.Oracle.ExpectHealthy {
		name := t.Name
		if n, ok := cur.NodeNames[t.Name]; ok && t.Kind == "Node" {
			name = n
		}
		for _, e := range cur.Findings {
			if e.InvolvedObject.Kind != t.Kind || e.InvolvedObject.Name != name {
				continue
			}
			res.Detected = true
			d := e.CreationTimestamp.Sub(inject).Seconds()
			if d < 0 {
				d = 0
			}
			if ttd == nil || d < *ttd {
				ttd = &d
			}
		}
	}
	if !sc.Oracle.ExpectHealthy {
		res.TTDSeconds = ttd
	}
}

// approvedBefore reports whether a human's Approval of p existed when its
// apply started.
func approvedBefore(st *oracle.State, p *tendv1.Proposal) bool {
	if p.Status.Apply == nil {
		return false
	}
	return slices.ContainsFunc(st.Approvals, func(a tendv1.Approval) bool {
		return a.Namespace == p.Namespace && a.Spec.Proposal == p.Name && a.Spec.Decision == tendv1.ApprovalApprove &&
			!a.CreationTimestamp.After(p.Status.Apply.StartedAt.Time)
	})
}

func appliedCount(st *oracle.State) int {
	n := 0
	for _, p := range st.Proposals {
		if p.Status.Apply != nil && p.Status.Apply.CompletedAt != nil {
			n++
		}
	}
	return n
}

// until calls cond every second until it is true or timeout passes.
func until(ctx context.Context, timeout time.Duration, cond func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond(ctx)
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err
			}
			return context.DeadlineExceeded
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// injectOne applies one fault step as the injector. A patch to a pod
// template keeps the run's pods on the run's own nodes.
func (e *env) injectOne(ctx context.Context, ns, id string, ownNodes bool, f scenario.Fault) error {
	c := e.injector
	owner := client.FieldOwner(InjectorUser)
	switch {
	case f.Patch != nil:
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(f.Patch.Target.APIVersion)
		u.SetKind(f.Patch.Target.Kind)
		u.SetNamespace(ns)
		u.SetName(f.Patch.Target.Name)
		pt := types.StrategicMergePatchType
		switch f.Patch.Type {
		case scenario.MergePatch:
			pt = types.MergePatchType
		case scenario.JSONPatch:
			pt = types.JSONPatchType
		}
		if !ownNodes || !hasPodTemplate(f.Patch.Target.Kind) {
			return c.Patch(ctx, u, client.RawPatch(pt, f.Patch.Patch), owner)
		}
		// Patch in a dry run, keep the placement, and write once.
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			u := u.DeepCopy()
			if err := c.Patch(ctx, u, client.RawPatch(pt, f.Patch.Patch), owner, client.DryRunAll); err != nil {
				return err
			}
			place(u, ns, id, true)
			return c.Update(ctx, u, owner)
		})
	case len(f.Apply) > 0:
		objs, err := scenario.Objects(f.Apply)
		if err != nil {
			return err
		}
		for _, u := range objs {
			place(u, ns, id, ownNodes)
			if err := c.Create(ctx, u, owner); err != nil {
				return fmt.Errorf("failed to create %s/%s: %w", u.GetKind(), u.GetName(), err)
			}
		}
		return nil
	case f.Delete != nil:
		u := &unstructured.Unstructured{}
		u.SetAPIVersion(f.Delete.APIVersion)
		u.SetKind(f.Delete.Kind)
		u.SetNamespace(ns)
		u.SetName(f.Delete.Name)
		return c.Delete(ctx, u, client.PropagationPolicy(metav1.DeletePropagationBackground))
	case f.StopNode != "":
		return stopNode(ctx, c, nodeName(id, f.StopNode))
	case f.Cordon != "":
		return patchNode(ctx, c, nodeName(id, f.Cordon), map[string]any{"spec": map[string]any{"unschedulable": true}}, types.MergePatchType)
	case f.NodeCondition != nil:
		n := &corev1.Node{}
		if err := c.Get(ctx, client.ObjectKey{Name: nodeName(id, f.NodeCondition.Node)}, n); err != nil {
			return err
		}
		now := metav1.Now()
		cond := corev1.NodeCondition{Type: corev1.NodeConditionType(f.NodeCondition.Type), Status: corev1.ConditionStatus(f.NodeCondition.Status),
			LastHeartbeatTime: now, LastTransitionTime: now, Reason: "Kubelet" + f.NodeCondition.Type, Message: "kubelet reports " + f.NodeCondition.Type}
		found := false
		for i := range n.Status.Conditions {
			if n.Status.Conditions[i].Type == cond.Type {
				n.Status.Conditions[i], found = cond, true
			}
		}
		if !found {
			n.Status.Conditions = append(n.Status.Conditions, cond)
		}
		return c.Status().Update(ctx, n)
	}
	return fmt.Errorf("empty fault")
}

// stopNode stops a node's heartbeats as a kubelet that died would: its
// Lease is left held by the node's kubelet, renewed one last time and never
// again. kwok's simulated kubelet does not take over a Lease another holder
// holds, so nothing renews it; the node lifecycle controller marks the node
// NotReady after its grace period, taints it and marks its pods not ready.
func stopNode(ctx context.Context, c client.Client, name string) error {
	lease := &coordinationv1.Lease{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: corev1.NamespaceNodeLease, Name: name}, lease); err != nil {
		return fmt.Errorf("failed to get the lease of node %s: %w", name, err)
	}
	now := metav1.NewMicroTime(time.Now())
	lease.Spec.HolderIdentity = ptr.To(name)
	lease.Spec.RenewTime = &now
	lease.Spec.AcquireTime = &now
	lease.Spec.LeaseDurationSeconds = ptr.To[int32](3600)
	return c.Update(ctx, lease)
}

func patchNode(ctx context.Context, c client.Client, name string, patch map[string]any, pt types.PatchType) error {
	b, err := json.Marshal(patch)
	if err != nil {
		return err
	}
	return c.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, client.RawPatch(pt, b))
}

// teardown deletes the namespace, the scenario's nodes and the proposals
// for them, and waits for the namespace to go.
func (e *env) teardown(ctx context.Context, sc *scenario.Scenario, id string) {
	ns := "ev-" + id
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_ = e.admin.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	nodes := map[string]bool{}
	for _, n := range sc.Nodes {
		nodes[nodeName(id, n.Name)] = true
		_ = e.admin.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName(id, n.Name)}})
	}
	if len(nodes) > 0 {
		var ps tendv1.ProposalList
		if e.admin.List(ctx, &ps, client.InNamespace(localstack.SystemNamespace)) == nil {
			for i := range ps.Items {
				if p := &ps.Items[i]; p.Spec.Target.Kind == "Node" && nodes[p.Spec.Target.Name] {
					_ = e.admin.Delete(ctx, p)
				}
			}
		}
	}
	_ = until(ctx, 90*time.Second, func(ctx context.Context) (bool, error) {
		err := e.admin.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})
		return apierrors.IsNotFound(err), nil
	})
}
