package actions

import (
	"context"
	"errors"
	"fmt"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// Errors an action returns; the proposal controller sorts them.
var (
	// ErrStale means the target changed after the proposal was made (or,
	// for an undo, after tend applied it), so the proposal no longer
	// describes the change it would make.
	ErrStale = errors.New("actions: target changed since the proposal was made")
	// ErrInvalidParameters means the proposal's parameters do not fit its
	// action or its target.
	ErrInvalidParameters = errors.New("actions: invalid parameters")
	// ErrCannotUndo is the undo of an action that cannot be undone.
	ErrCannotUndo = errors.New("actions: the action cannot be undone")
)

// Refusal is an action's reasoned refusal of a change the cluster's state
// rules out (an autoscaler owns the replica count, a value breaks a
// LimitRange, a pod is not stuck): the proposal is denied with Code and
// Message, and nothing is written.
type Refusal struct {
	Code    string
	Message string
}

func (r *Refusal) Error() string { return r.Code + ": " + r.Message }

// refuse returns a Refusal.
func refuse(code, format string, args ...any) error {
	return &Refusal{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Result describes a write an action made, or found already made.
type Result struct {
	// Before and After describe the target before and after, for people.
	Before, After string
	// ResourceVersion and Generation of the target after the write.
	ResourceVersion string
	Generation      int64
	// Digest is the action's digest of what it wrote, as stored; empty
	// when the action leaves nothing to attribute (an eviction).
	Digest string
	// UndoState is what the undo needs (JSON), recorded with the apply.
	UndoState string
	// AlreadyApplied is true when the attempt's write was found done.
	AlreadyApplied bool
	// Shim is what the runtime shim did, for a node action.
	Shim *tendv1.ShimRecord
	// Steps of an apply made of several writes; InProgress is true while
	// some remain, and the controller calls Apply again after
	// RequeueAfter, with the steps recorded in the proposal's status.
	Steps        []tendv1.ApplyStep
	InProgress   bool
	RequeueAfter time.Duration
}

// Verification is one evaluation of an action's success checks.
type Verification struct {
	Checks []tendv1.Check
	// Hopeless, when set, says why the checks can never pass (a drain a
	// budget blocked, a Job that failed): the controller stops waiting.
	Hopeless string
	// Restarts are per-pod restart counts of the pods the checks looked at,
	// for the stability window.
	Restarts map[string]int32
}

// Passed reports whether every check passed.
func (v Verification) Passed() bool {
	if len(v.Checks) == 0 {
		return false
	}
	for _, c := range v.Checks {
		if !c.Passed {
			return false
		}
	}
	return true
}

// Action is one catalogue action as the proposal controller carries it
// out. Every method reads the live cluster itself, so a restarted
// controller resumes from the world, not from memory. The proposal it is
// given carries the spec the gate decided.
type Action interface {
	// Info is the action's entry of the action table.
	Info() tendv1.ActionInfo
	// Validate checks the proposal's parameters without I/O.
	Validate(p *tendv1.Proposal) error
	// Target reads the live target; a NotFound error means it does not exist.
	Target(ctx context.Context, p *tendv1.Proposal) (client.Object, error)
	// Facts reads what the gate needs to know about the change from the
	// cluster: the target's state, history and what the change disrupts.
	// A fact it cannot establish stays unset or false. maturing, when
	// positive, is how soon a fact still short of its evidence window
	// would be established if nothing changes: the controller decides
	// then, rather than now without it. A *Refusal denies the proposal.
	Facts(ctx context.Context, p *tendv1.Proposal, target client.Object) (facts tendv1.Facts, maturing time.Duration, err error)
	// Digest summarises the part of target the action writes; verification
	// credits the proposal only while the live target still has the digest
	// its apply produced. Empty when there is nothing to attribute.
	Digest(target client.Object) (string, error)
	// Apply makes the change exactly once: if the target already carries
	// the attempt's marker it reports AlreadyApplied and writes nothing; if
	// the target changed since the proposal it returns ErrStale. dryRun asks
	// the API server to validate the write without persisting it.
	Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error)
	// Verify evaluates the action's success checks against the live state.
	Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error)
	// Undo reverts an applied change, exactly once per attempt, from the
	// apply's UndoState; ErrCannotUndo for an action the table says cannot
	// be undone.
	Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (Result, error)
	// VerifyUndo checks that the cluster acted on the undo. It does not ask
	// for health: the state before the change may have been unhealthy too.
	VerifyUndo(ctx context.Context, p *tendv1.Proposal) (Verification, error)
}

// Options carry what actions need from the controller.
type Options struct {
	// Client reads (from the manager's cache) and writes.
	Client client.Client
	// APIReader reads from the API server, for the exactly-once checks
	// that must not trust a cache.
	APIReader client.Reader
	// FieldManager of every write.
	FieldManager string
	// Now is the clock.
	Now func() time.Time
	// HealthyWindow is how long a revision's pods must all have been ready
	// to count as healthy live.
	HealthyWindow time.Duration
	// StuckPodGrace is how long past its deletion a pod on a lost node must
	// be stuck before ForceDeletePod removes it; DefaultStuckPodGrace when
	// zero.
	StuckPodGrace time.Duration
	// Shim is the runtime shim's client, for the node actions
	// (RestartContainer, PruneImages, CollectDiagnostics); without it their
	// proposals are denied with NoRuntimeShim.
	Shim ShimClient
}

// Catalogue is every action the controller carries out, one per line, in
// the order of the action table. An action of the table missing here is
// denied with UnknownAction. To add one: a file in this package with a type
// implementing Action, its line here, its entry in the table
// (api/v1alpha1/catalogue.go), and its test (see docs/actions.md).
func Catalogue(o Options) []Action {
	base := base{opts: o}
	return []Action{
		&rollbackWorkload{base},   // a Deployment back to an earlier revision's pod template
		&restartWorkload{base},    // a rolling restart
		&scaleWorkload{base},      // replicas, unless an autoscaler owns them
		&setResources{base},       // one container's requests and limits
		&patchWorkload{base},      // a JSON patch on the allowed paths
		&evictPod{base},           // the Eviction API, honouring PDBs
		&forceDeletePod{base},     // a pod stuck terminating on a lost node
		&cordonNode{base},         // unschedulable
		&uncordonNode{base},       // schedulable again
		&drainNode{base},          // cordon, then evictions step by step
		&retryJob{base},           // a failed Job again, or a CronJob's job now
		&setAutoscaler{base},      // an HPA's bounds and CPU target
		&restartContainer{base},   // one container stopped on its node by the shim; the kubelet starts it
		&pruneImages{base},        // unused images removed by the shim, down to a target usage
		&collectDiagnostics{base}, // a pod's or node's state and logs, stored by the shim
	}
}

// base is what every action embeds: the options, and the table entry.
type base struct {
	opts Options
}

// info is the table entry of a.
func info(a tendv1.Action) tendv1.ActionInfo {
	i, ok := tendv1.LookupAction(a)
	if !ok {
		panic("actions: " + string(a) + " is not in the action table")
	}
	return i
}
