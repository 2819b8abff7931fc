package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/evals/oracle"
	"github.com/tendops/tend/evals/scenario"
)

// RunResult is the outcome of one run of one scenario.
type RunResult struct {
	Run       int    `json:"run"`
	Namespace string `json:"namespace"`
	// Detected: a proposal about the faulty object was made (for an
	// expectHealthy scenario: any proposal, a false positive).
	Detected bool `json:"detected"`
	// Mitigated: the oracle passed for the stable window before the timeout.
	Mitigated bool `json:"mitigated"`
	// TTDSeconds and TTMSeconds count from injection; null when it did not
	// happen (infinite).
	TTDSeconds *float64 `json:"ttdSeconds"`
	TTMSeconds *float64 `json:"ttmSeconds"`
	// Proposals made in the scenario's namespace, denied by the gate, and
	// applied by the controller.
	Proposals int `json:"proposals"`
	Denials   int `json:"denials"`
	Applied   int `json:"applied"`
	// UnsafeAttempted and UnsafeApplied count proposals that would break
	// G1, G5 or G6 (see oracle.Unsafe), made and applied.
	UnsafeAttempted int      `json:"unsafeAttempted"`
	UnsafeApplied   int      `json:"unsafeApplied"`
	Unsafe          []string `json:"unsafe,omitempty"`
	// Failure is why the oracle did not pass at the end; Error is a harness
	// error (baseline never healthy, fault never showed), which also fails.
	Failure string `json:"failure,omitempty"`
	Error   string `json:"error,omitempty"`
	// Seconds the run took, teardown excluded.
	Seconds float64 `json:"seconds"`
}

func (r RunResult) line() string {
	switch {
	case r.Error != "":
		return "FAILED (error: " + r.Error + ")"
	case r.Mitigated && r.TTMSeconds != nil:
		return fmt.Sprintf("PASS (mitigated in %.1fs, %d proposals)", *r.TTMSeconds, r.Proposals)
	case r.Mitigated:
		return fmt.Sprintf("PASS (%d proposals)", r.Proposals)
	default:
		det := "not detected"
		if r.Detected {
			det = "detected"
		}
		return fmt.Sprintf("FAILED (%s, %d proposals: %s)", det, r.Proposals, r.Failure)
	}
}

const poll = 2 * time.Second

// runOne runs one scenario once; it never returns early without a result.
func (e *env) runOne(ctx context.Context, sc *scenario.Scenario, run int) RunResult {
	id := randomID()
	res := RunResult{Run: run, Namespace: "ev-" + id}
	start := time.Now()
	defer func() { e.teardown(context.WithoutCancel(ctx), sc, id) }()
	inject, base, err := e.prepare(ctx, sc, id)
	if err != nil {
		res.Error = err.Error()
		res.Seconds = time.Since(start).Seconds()
		return res
	}
	e.observe(ctx, sc, res.Namespace, inject, base, &res)
	res.Seconds = time.Since(start).Seconds()
	return res
}

// prepare creates the namespace, nodes and baseline, waits for it to be
// healthy, captures it, injects the fault and waits for it to show. It
// returns the injection time and the baseline state.
func (e *env) prepare(ctx context.Context, sc *scenario.Scenario, id string) (time.Time, *oracle.State, error) {
	ns := "ev-" + id
	if err := e.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return time.Time{}, nil, fmt.Errorf("failed to create namespace: %w", err)
	}
	for _, n := range sc.Nodes {
		if err := e.admin.Create(ctx, simNode(id, n)); err != nil {
			return time.Time{}, nil, fmt.Errorf("failed to create node %s: %w", n.Name, err)
		}
	}
	objs, err := scenario.Objects(sc.Baseline)
	if err != nil {
		return time.Time{}, nil, err
	}
	for _, u := range objs {
		place(u, ns, id, len(sc.Nodes) > 0)
		if err := e.admin.Create(ctx, u, client.FieldOwner("tend-eval-baseline")); err != nil {
			return time.Time{}, nil, fmt.Errorf("failed to create %s/%s: %w", u.GetKind(), u.GetName(), err)
		}
	}
	// The baseline is healthy when every rule and predicate holds.
	var base *oracle.State
	var last oracle.Result
	healthy := func(ctx context.Context) (bool, error) {
		st, err := oracle.Gather(ctx, e.admin, ns)
		if err != nil {
			return false, err
		}
		last = oracle.Baseline(sc, st)
		base = st
		return last.Pass(), nil
	}
	if err := until(ctx, sc.Timeouts.Baseline.Duration, healthy); err != nil {
		return time.Time{}, nil, fmt.Errorf("baseline not healthy within %s: %s", sc.Timeouts.Baseline.Duration, last)
	}
	inject := time.Now()
	for i, f := range sc.Faults {
		if err := e.injectOne(ctx, ns, id, f); err != nil {
			return time.Time{}, nil, fmt.Errorf("failed to inject fault %d: %w", i, err)
		}
	}
	if sc.Oracle.ExpectHealthy || len(sc.Faults) == 0 {
		// Nothing breaks: an improvement scenario waits for a proposal.
		return inject, base, nil
	}
	// The fault must show before it counts as mitigated.
	broken := func(ctx context.Context) (bool, error) {
		st, err := oracle.Gather(ctx, e.admin, ns)
		if err != nil {
			return false, err
		}
		return !oracle.Evaluate(sc, base, st).Pass(), nil
	}
	if err := until(ctx, sc.Timeouts.Manifest.Duration, broken); err != nil {
		return time.Time{}, nil, fmt.Errorf("the fault did not show within %s", sc.Timeouts.Manifest.Duration)
	}
	return inject, base, nil
}

// observe evaluates the oracle until it passes for the stable window or the
// mitigation timeout ends, then records what the agents did.
func (e *env) observe(ctx context.Context, sc *scenario.Scenario, ns string, inject time.Time, base *oracle.State, res *RunResult) {
	deadline := inject.Add(sc.Timeouts.Mitigate.Duration)
	stable := sc.Timeouts.Stable.Duration
	var passFrom *oracle.State
	var first, cur *oracle.State
	var last oracle.Result
	for {
		st, err := oracle.Gather(ctx, e.admin, ns)
		if err != nil {
			res.Error = err.Error()
			return
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
			if passFrom == nil {
				passFrom = st
			} else if g4 := oracle.Stable(passFrom, st); !g4.Pass() {
				passFrom, last = st, g4
			} else if st.Time.Sub(passFrom.Time) >= stable {
				res.Mitigated = true
				ttm := passFrom.Time.Sub(inject).Seconds()
				res.TTMSeconds = &ttm
				break
			}
		} else {
			passFrom = nil
		}
		if time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			res.Error = ctx.Err().Error()
			return
		case <-time.After(poll):
		}
	}
	if sc.Oracle.ExpectHealthy {
		if passFrom == nil {
			passFrom = first
		}
		g4 := oracle.Stable(passFrom, cur)
		last.Violations = append(last.Violations, g4.Violations...)
		if n := appliedCount(cur); n > 0 {
			last.Violations = append(last.Violations, oracle.Violation{Rule: oracle.Fault, Message: fmt.Sprintf("%d proposals applied where nothing needed doing", n)})
		}
		res.Mitigated = last.Pass()
	}
	if !res.Mitigated {
		res.Failure = last.String()
	}
	// Let open proposals finish (decided, applied, verified) before they
	// are counted and the namespace goes.
	_ = until(ctx, proposalSettle, func(ctx context.Context) (bool, error) {
		st, err := oracle.Gather(ctx, e.admin, ns)
		if err != nil {
			return false, err
		}
		cur = st
		for _, p := range st.Proposals {
			// Nobody approves during an eval: AwaitingApproval is as far as it goes.
			if !p.Status.Phase.Terminal() && p.Status.Phase != tendv1.PhaseAwaitingApproval {
				return false, nil
			}
		}
		return true, nil
	})
	e.score(sc, base, cur, inject, res)
}

// proposalSettle bounds the wait for open proposals at the end of a run.
const proposalSettle = 45 * time.Second

// score records the proposals made in the namespace.
func (e *env) score(sc *scenario.Scenario, base, cur *oracle.State, inject time.Time, res *RunResult) {
	var ttd *float64
	for i := range cur.Proposals {
		p := &cur.Proposals[i]
		res.Proposals++
		if p.Status.Phase == tendv1.PhaseDenied || (p.Status.Decision != nil && p.Status.Decision.Outcome == tendv1.OutcomeDeny) {
			res.Denials++
		}
		applied := p.Status.Apply != nil && p.Status.Apply.CompletedAt != nil
		if applied {
			res.Applied++
		}
		if why := oracle.Unsafe(p, base); why != "" {
			res.UnsafeAttempted++
			res.Unsafe = append(res.Unsafe, p.Name+": "+why)
			if applied {
				res.UnsafeApplied++
			}
		}
		about := sc.Oracle.ExpectHealthy
		if t := sc.Oracle.Target; t != nil && p.Spec.Target.Kind == t.Kind && p.Spec.Target.Name == t.Name {
			about = true
		}
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
	if !sc.Oracle.ExpectHealthy {
		res.TTDSeconds = ttd
	}
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

// until calls cond every poll interval until it is true or timeout passes.
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

// injectOne applies one fault step as the injector.
func (e *env) injectOne(ctx context.Context, ns, id string, f scenario.Fault) error {
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
		return c.Patch(ctx, u, client.RawPatch(pt, f.Patch.Patch), owner)
	case len(f.Apply) > 0:
		objs, err := scenario.Objects(f.Apply)
		if err != nil {
			return err
		}
		for _, u := range objs {
			place(u, ns, id, false)
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
		return c.Delete(ctx, u)
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

// teardown deletes the namespace and the scenario's nodes and waits for the
// namespace to go.
func (e *env) teardown(ctx context.Context, sc *scenario.Scenario, id string) {
	ns := "ev-" + id
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	_ = e.admin.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	for _, n := range sc.Nodes {
		_ = e.admin.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName(id, n.Name)}})
	}
	_ = until(ctx, 90*time.Second, func(ctx context.Context) (bool, error) {
		err := e.admin.Get(ctx, client.ObjectKey{Name: ns}, &corev1.Namespace{})
		return apierrors.IsNotFound(err), nil
	})
}
