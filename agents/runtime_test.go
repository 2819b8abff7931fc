package agents

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tendops/tend/bus"
)

// windowRunbook finds a fault once since has lasted window.
type windowRunbook struct {
	since  time.Time
	window time.Duration
}

func (r *windowRunbook) Name() string { return "window" }

func (r *windowRunbook) Evaluate(m *Model, now time.Time) []Intent {
	if !m.lasted(r.since, r.window, now) {
		return nil
	}
	return []Intent{{Finding: &Finding{Kind: KindDeployment, Namespace: "shop", Name: "api", Fault: "waited out",
		Advice: "none", Fingerprint: "window/shop/api"}}}
}

type findingsTo chan Finding

func (c findingsTo) RecordFinding(_ context.Context, f Finding) error {
	c <- f
	return nil
}

// TestJudgesWhenAWindowEnds: a runbook's window that has not ended at a
// judgement brings the next judgement forward to its end, rather than
// leaving it to the tick (here an hour away).
func TestJudgesWhenAWindowEnds(t *testing.T) {
	found := make(findingsTo, 1)
	rb := &windowRunbook{since: time.Now(), window: 300 * time.Millisecond}
	a := &Agent{Name: "maintenance", Runbooks: []Runbook{rb}, Tools: &countingProposer{}, Findings: found, Interval: time.Hour}
	ctx, stop := startAgent(t, a)
	defer stop()
	// One message: its judgement finds the window still open.
	if err := a.Handle(ctx, podOf(1, "shop", "api-1", KindDeployment, "api", bus.PodState{Phase: "Running"})); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-found:
		if f.Fingerprint != "window/shop/api" {
			t.Errorf("found %+v", f)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no judgement when the window ended; the next tick is an hour away")
	}
}

// TestLastedRemembersTheEarliestEnd: the model's pending judgement is the
// earliest end of the windows that have not ended.
func TestLastedRemembersTheEarliestEnd(t *testing.T) {
	m := NewModel()
	now := at(10)
	if !m.lasted(at(1), 5*time.Second, now) {
		t.Error("a window that ended did not count")
	}
	if !m.judgeAt.IsZero() {
		t.Errorf("an ended window is pending at %s", m.judgeAt)
	}
	m.lasted(at(8), 10*time.Second, now)
	m.lasted(at(9), 3*time.Second, now)
	m.lasted(at(9), 20*time.Second, now)
	if want := at(9).Add(3 * time.Second); !m.judgeAt.Equal(want) {
		t.Errorf("pending at %s, want %s", m.judgeAt, want)
	}
}

// countingRunbook counts its evaluations and the pods the last one saw.
type countingRunbook struct {
	mu          sync.Mutex
	evaluations int
	pods        int
}

func (r *countingRunbook) Name() string { return "counting" }

func (r *countingRunbook) Evaluate(m *Model, _ time.Time) []Intent {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evaluations++
	r.pods = len(m.Pods)
	return nil
}

// TestBurstIsJudgedTogether: a running agent that gets a burst of messages
// does not judge the whole model once per message; a judgement after the
// burst sees every message of it.
func TestBurstIsJudgedTogether(t *testing.T) {
	rb := &countingRunbook{}
	a := &Agent{Name: "maintenance", Runbooks: []Runbook{rb}, Tools: &countingProposer{}, Interval: time.Hour}
	ctx, stop := startAgent(t, a)
	defer stop()
	const burst = 500
	for i := range burst {
		name := fmt.Sprintf("api-%d", i)
		if err := a.Handle(ctx, podOf(uint64(i+1), "shop", name, KindDeployment, "api", bus.PodState{Phase: "Running"})); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		rb.mu.Lock()
		n, pods := rb.evaluations, rb.pods
		rb.mu.Unlock()
		if pods == burst {
			if n > burst/2 {
				t.Errorf("%d messages judged %d times", burst, n)
			}
			t.Logf("%d messages judged %d times", burst, n)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no judgement saw the whole burst: the last saw %d of %d pods", pods, burst)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startAgent runs a.Start until stop, which returns once Start has and
// fails the test on its error; it returns when the agent runs.
func startAgent(t *testing.T, a *Agent) (ctx context.Context, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Start(ctx) }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		a.mu.Lock()
		up := a.runCtx != nil
		a.mu.Unlock()
		if up {
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("the agent did not start")
		}
	}
	return ctx, func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// blockedFindings holds every finding until released, as an MCP server or
// bus that does not answer would.
type blockedFindings struct {
	entered chan struct{}
	release chan struct{}
}

func (b *blockedFindings) RecordFinding(ctx context.Context, _ Finding) error {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestHandleDoesNotWaitForActing: a running agent's Handle folds telemetry
// into the model and returns, even while a judgement is stuck acting on the
// MCP server, so that the one stream of telemetry it consumes never waits
// behind a proposal.
func TestHandleDoesNotWaitForActing(t *testing.T) {
	rb := &windowRunbook{since: time.Now().Add(-time.Hour), window: time.Second}
	findings := &blockedFindings{entered: make(chan struct{}, 1), release: make(chan struct{})}
	a := &Agent{Name: "maintenance", Runbooks: []Runbook{rb}, Tools: &countingProposer{}, Findings: findings, Interval: time.Hour}
	ctx, stop := startAgent(t, a)
	defer stop()
	defer close(findings.release)
	handled := make(chan error, 1)
	handle := func(seq uint64) {
		go func() {
			handled <- a.Handle(ctx, podOf(seq, "shop", fmt.Sprintf("api-%d", seq), KindDeployment, "api", bus.PodState{Phase: "Running"}))
		}()
		select {
		case err := <-handled:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("Handle of message %d did not return while a judgement was acting", seq)
		}
	}
	handle(1)
	select {
	case <-findings.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("no judgement after the first message")
	}
	// The judgement is stuck recording its finding; telemetry goes on.
	for seq := uint64(2); seq <= 50; seq++ {
		handle(seq)
	}
	a.mu.Lock()
	pods := len(a.modelLocked().Pods)
	a.mu.Unlock()
	if pods != 50 {
		t.Errorf("the model holds %d pods, want the 50 handled", pods)
	}
}
