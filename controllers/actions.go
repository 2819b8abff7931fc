package controllers

import (
	"context"
	"errors"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// ErrStale means the target changed after the proposal was made, so the
// proposal no longer describes the change it would make.
var ErrStale = errors.New("controllers: target changed since the proposal was made")

// ErrInvalidParameters means a proposal's parameters do not fit its action.
var ErrInvalidParameters = errors.New("controllers: invalid parameters")

// ErrOvertaken means someone changed the target after tend applied the
// proposal, so the live state is no longer the proposal's to judge.
var ErrOvertaken = errors.New("controllers: target changed after the apply")

// applyResult describes a write the action made (or found already made).
type applyResult struct {
	Before, After    string
	PreviousRevision int64
	ResourceVersion  string
	Generation       int64
	// Digest is the action's digest of what the write set, as stored.
	Digest         string
	AlreadyApplied bool
}

// verifyResult is one evaluation of an action's success checks.
type verifyResult struct {
	Checks []tendv1.Check
	// Restarts are per-pod restart counts of the pods the checks looked at,
	// for the stability window.
	Restarts map[string]int32
}

// Passed reports whether every check passed.
func (v verifyResult) Passed() bool {
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

// action is one catalogue action as the proposal controller runs it. Every
// method reads the live target itself, so a restarted controller resumes
// from the world, not from memory.
type action interface {
	// Validate checks the proposal's parameters without I/O.
	Validate(p *tendv1.Proposal) error
	// Target reads the live target; a NotFound error means it does not exist.
	Target(ctx context.Context, p *tendv1.Proposal) (client.Object, error)
	// Facts reads what the gate needs to know about the change from the
	// cluster: the target's state, history and what the change disrupts.
	// A fact it cannot establish stays unset or false. maturing, when
	// positive, is how soon a fact still short of its evidence window
	// would be established if nothing changes: the controller decides
	// then, rather than now without it.
	Facts(ctx context.Context, p *tendv1.Proposal, target client.Object) (facts tendv1.Facts, maturing time.Duration, err error)
	// Digest summarises the part of target the action writes (a
	// workload's pod template, say); verification credits the proposal
	// only while the live target still has the digest its apply produced.
	Digest(target client.Object) (string, error)
	// Apply makes the change exactly once: if the target already carries
	// the attempt's marker it reports AlreadyApplied and writes nothing; if
	// the target changed since the proposal it returns ErrStale. dryRun asks
	// the API server to validate the write without persisting it.
	Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (applyResult, error)
	// Verify evaluates the action's success checks against the live state.
	Verify(ctx context.Context, p *tendv1.Proposal) (verifyResult, error)
	// Undo reverts an applied change, exactly once per attempt.
	Undo(ctx context.Context, p *tendv1.Proposal, attempt string) (applyResult, error)
	// VerifyUndo checks that the cluster acted on the undo. It does not ask
	// for health: the state before the change may have been unhealthy too.
	VerifyUndo(ctx context.Context, p *tendv1.Proposal) (verifyResult, error)
}

// actionOptions carry what actions need from the controller.
type actionOptions struct {
	Client       client.Client
	FieldManager string
	Now          func() time.Time
	// HealthyWindow is how long a revision's pods must all have been ready
	// to count as healthy live.
	HealthyWindow time.Duration
}

// newActions returns the implemented actions keyed by catalogue name. An
// action in the catalogue but not here is denied by the controller.
func newActions(o actionOptions) map[tendv1.Action]action {
	return map[tendv1.Action]action{
		tendv1.ActionRollbackWorkload: &rollbackWorkload{opts: o},
	}
}
