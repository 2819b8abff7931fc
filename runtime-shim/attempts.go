package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/tendops/tend/bus"
)

// The attempt ledger. Before an action has any effect, the shim records its
// plan under the attempt's key in the ShimLedgerBucket (state "started"),
// and once it is done, its reply (state "done"). A request for an attempt:
//   - that is done gets the recorded reply again (Replayed), and nothing is
//     done again;
//   - that was started by a shim that died (or by this one before a
//     retryable failure) resumes the recorded plan: each step of a plan
//     checks the state it acts on, so a step already carried out is not
//     carried out twice (a stopped container is not stopped again, its
//     successor is never touched; a removed image is not looked for again);
//   - that is in flight in this process gets a busy reply;
//   - that was recorded with other parameters is refused.
// Key-value Create and Update (compare-and-set on the revision) make two
// shims racing for one attempt agree on which one carries it out.

// Ledger states.
const (
	stateStarted = "started"
	stateDone    = "done"
)

var (
	// errStore is wrapped by errors of the NATS stores (ledger, object store).
	errStore = errors.New("shim: NATS store unavailable")
	// errLostRace: another shim wrote the attempt first.
	errLostRace = errors.New("shim: the attempt changed in the ledger")
)

// ledgerEntry is one attempt in the ledger.
type ledgerEntry struct {
	AttemptID string         `json:"attemptID"`
	Proposal  string         `json:"proposal,omitempty"`
	Verb      string         `json:"verb"`
	Params    string         `json:"params"`
	State     string         `json:"state"`
	Instance  string         `json:"instance"`
	Plan      *attemptPlan   `json:"plan,omitempty"`
	Reply     *bus.ShimReply `json:"reply,omitempty"`
}

// attemptPlan is what an attempt does, fixed before it does anything.
type attemptPlan struct {
	// RestartContainer: the container to stop.
	ContainerID  string `json:"containerID,omitempty"`
	RestartCount int32  `json:"restartCount,omitempty"`
	// PruneImages: the images to remove, in order, and the figures the
	// plan was made from.
	Images          []bus.PrunedImage `json:"images,omitempty"`
	UsedBytesBefore int64             `json:"usedBytesBefore,omitempty"`
	TargetUsedBytes int64             `json:"targetUsedBytes,omitempty"`
	All             bool              `json:"all,omitempty"`
	KeptRunning     int               `json:"keptRunning,omitempty"`
	KeptInUse       int               `json:"keptInUse,omitempty"`
	KeptPinned      int               `json:"keptPinned,omitempty"`
	KeptAllowListed int               `json:"keptAllowListed,omitempty"`
	// CollectDiagnostics: the object to write.
	Object string `json:"object,omitempty"`
}

// action is one verb with an effect.
type action interface {
	// plan decides what a new attempt does, without doing anything. An
	// error means nothing was recorded and nothing was done.
	plan(ctx context.Context) (*attemptPlan, *bus.ShimError)
	// execute carries the plan out; resumed is true when an earlier try
	// recorded it. It returns the reply to record, or an error: then the
	// attempt stays open and a retry resumes it.
	execute(ctx context.Context, p *attemptPlan, resumed bool) (*bus.ShimReply, error)
}

// runAttempt carries out an attempt at most once, through the ledger.
func (s *Shim) runAttempt(ctx context.Context, req *bus.ShimRequest, claims bus.AttemptClaims, a action) *bus.ShimReply {
	log := logr.FromContextOrDiscard(ctx)
	s.mu.Lock()
	if s.inflight[claims.ID] {
		s.mu.Unlock()
		return errorReply("", "", "", bus.ShimBusy, "attempt %s is in progress; retry", claims.ID)
	}
	s.inflight[claims.ID] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, claims.ID)
		s.mu.Unlock()
	}()

	kv, err := s.ledger(ctx)
	if err != nil {
		return &bus.ShimReply{Error: failure(err)}
	}
	key := bus.ShimLedgerKey(s.opts.Cluster, s.opts.Node, claims.ID)
	entry, rev, err := getEntry(ctx, kv, key)
	if err != nil {
		return &bus.ShimReply{Error: failure(err)}
	}
	resumed := entry != nil
	switch {
	case entry != nil && (entry.Verb != req.Verb || entry.Params != claims.Params):
		return errorReply("", "", "", bus.ShimConflict, "attempt %s was used before for %s with other parameters", claims.ID, entry.Verb)
	case entry != nil && entry.State == stateDone && entry.Reply != nil:
		reply := *entry.Reply
		reply.Replayed = true
		return &reply
	case entry != nil:
		// Started by a shim that died, or failed before: take it over.
		entry.Instance = s.instance
		if rev, err = putEntry(ctx, kv, key, entry, rev); err != nil {
			if errors.Is(err, errLostRace) {
				return errorReply("", "", "", bus.ShimBusy, "attempt %s is in progress elsewhere; retry", claims.ID)
			}
			return &bus.ShimReply{Error: failure(err)}
		}
		log.Info("Resuming an attempt a previous try started", "plan", entry.Plan)
	default:
		plan, serr := a.plan(ctx)
		if serr != nil {
			return &bus.ShimReply{Error: serr}
		}
		entry = &ledgerEntry{
			AttemptID: claims.ID, Proposal: claims.Proposal, Verb: req.Verb, Params: claims.Params,
			State: stateStarted, Instance: s.instance, Plan: plan,
		}
		if rev, err = putEntry(ctx, kv, key, entry, 0); err != nil {
			if errors.Is(err, errLostRace) {
				return errorReply("", "", "", bus.ShimBusy, "attempt %s was just started elsewhere; retry", claims.ID)
			}
			return &bus.ShimReply{Error: failure(err)}
		}
	}
	if err := s.step("recorded"); err != nil {
		return nil
	}
	reply, err := a.execute(ctx, entry.Plan, resumed)
	switch {
	case errors.Is(err, errStopped):
		return nil
	case err != nil:
		return &bus.ShimReply{Error: failure(err)}
	}
	reply.Verb, reply.Node, reply.AttemptID = req.Verb, s.opts.Node, claims.ID
	entry.State, entry.Reply = stateDone, reply
	if _, err := putEntry(ctx, kv, key, entry, rev); err != nil {
		// The effect is done; a retry resumes the plan, whose steps find
		// it done, and records the reply then.
		log.Error(err, "Failed to record a finished attempt")
	}
	return reply
}

// ledger binds the ledger bucket.
func (s *Shim) ledger(ctx context.Context) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv != nil {
		return s.kv, nil
	}
	kv, err := s.opts.JS.KeyValue(ctx, bus.ShimLedgerBucket)
	if err != nil {
		return nil, fmt.Errorf("%w: failed to open the attempt ledger %s: %w", errStore, bus.ShimLedgerBucket, err)
	}
	s.kv = kv
	return kv, nil
}

// objectStore binds the diagnostics object store.
func (s *Shim) objectStore(ctx context.Context) (jetstream.ObjectStore, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.obs != nil {
		return s.obs, nil
	}
	obs, err := s.opts.JS.ObjectStore(ctx, bus.DiagnosticsBucket)
	if err != nil {
		return nil, fmt.Errorf("%w: failed to open the object store %s: %w", errStore, bus.DiagnosticsBucket, err)
	}
	s.obs = obs
	return obs, nil
}

// getEntry reads an attempt; nil when the ledger has none.
func getEntry(ctx context.Context, kv jetstream.KeyValue, key string) (*ledgerEntry, uint64, error) {
	kve, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("%w: failed to read the attempt ledger: %w", errStore, err)
	}
	var e ledgerEntry
	if err := json.Unmarshal(kve.Value(), &e); err != nil {
		return nil, 0, fmt.Errorf("failed to decode ledger entry %s: %w", key, err)
	}
	return &e, kve.Revision(), nil
}

// putEntry creates an attempt (rev 0) or updates it if it is still at rev.
// A lost race wraps errLostRace.
func putEntry(ctx context.Context, kv jetstream.KeyValue, key string, e *ledgerEntry, rev uint64) (uint64, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return 0, fmt.Errorf("failed to encode ledger entry: %w", err)
	}
	if rev == 0 {
		rev, err = kv.Create(ctx, key, data)
	} else {
		rev, err = kv.Update(ctx, key, data, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("%w: %w", errLostRace, err)
	}
	if err != nil {
		return 0, fmt.Errorf("%w: failed to write the attempt ledger: %w", errStore, err)
	}
	return rev, nil
}
