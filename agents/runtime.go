package agents

import (
	"context"
	"fmt"
	"sync"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// Intent is a proposal a runbook wants made.
type Intent struct {
	// Runbook that produced the intent.
	Runbook string
	// Rollback, when set, is a propose_rollback call.
	Rollback *wire.ProposeRollbackArgs
}

// fingerprint identifies the intent across repeats.
func (i Intent) fingerprint() string {
	if i.Rollback != nil {
		return i.Rollback.Fingerprint
	}
	return ""
}

// Runbook recognises a problem in the telemetry stream. Observe folds one
// delivery into the runbook's model and returns the proposals it now wants.
// Observe must be idempotent: seeing the same delivery twice (at-least-once
// delivery) yields the same model.
type Runbook interface {
	Name() string
	Observe(d bus.Delivery) []Intent
}

// proposer makes proposals. *ToolClient implements it.
type proposer interface {
	ProposeRollback(ctx context.Context, args wire.ProposeRollbackArgs) (wire.ProposeResult, error)
}

var _ proposer = (*ToolClient)(nil)

// maxRemembered bounds the fingerprints an agent remembers.
const maxRemembered = 4096

// Outcome reports one proposal the agent made, for whoever watches the agent.
type Outcome struct {
	Intent Intent
	Result wire.ProposeResult
}

// Agent is a maintenance agent: a set of runbooks over the telemetry stream,
// proposing through MCP.
type Agent struct {
	Name     string
	Runbooks []Runbook
	Tools    proposer
	// OnProposal, if set, is told of every proposal made.
	OnProposal func(Outcome)

	mu       sync.Mutex
	proposed map[string]wire.ProposeResult
}

// Handle is the agent's bus.Handler.
func (a *Agent) Handle(ctx context.Context, d bus.Delivery) error {
	logger := log.FromContext(ctx).WithValues("agent", a.Name)
	a.mu.Lock()
	var intents []Intent
	for _, rb := range a.Runbooks {
		for _, in := range rb.Observe(d) {
			in.Runbook = rb.Name()
			intents = append(intents, in)
		}
	}
	a.mu.Unlock()
	for _, in := range intents {
		if err := a.propose(ctx, logger, in); err != nil {
			// Redelivered after a backoff; the runbook sees the same state and
			// asks again.
			return err
		}
	}
	return nil
}

func (a *Agent) propose(ctx context.Context, logger logr.Logger, in Intent) error {
	fp := in.fingerprint()
	a.mu.Lock()
	_, done := a.proposed[fp]
	a.mu.Unlock()
	if done || in.Rollback == nil {
		return nil
	}
	logger.Info("Proposing rollback", "runbook", in.Runbook, "namespace", in.Rollback.Namespace,
		"deployment", in.Rollback.Name, "from", in.Rollback.FromRevision, "to", in.Rollback.ToRevision)
	res, err := a.Tools.ProposeRollback(ctx, *in.Rollback)
	if err != nil {
		return fmt.Errorf("failed to propose rollback of %s/%s: %w", in.Rollback.Namespace, in.Rollback.Name, err)
	}
	a.mu.Lock()
	if a.proposed == nil || len(a.proposed) >= maxRemembered {
		// Forgetting is safe: the MCP server returns an open proposal with
		// the same fingerprint instead of making a second one.
		a.proposed = map[string]wire.ProposeResult{}
	}
	a.proposed[fp] = res
	a.mu.Unlock()
	logger.Info("Gate answered", "proposal", res.Namespace+"/"+res.Name, "outcome", res.Outcome, "phase", res.Phase, "duplicate", res.Duplicate)
	if a.OnProposal != nil {
		a.OnProposal(Outcome{Intent: in, Result: res})
	}
	return nil
}
