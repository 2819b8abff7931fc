package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/evals/scenario"
	"github.com/tendops/tend/evals/sim"
	"github.com/tendops/tend/internal/localstack"
)

// BrainDeterministic is the runbook brain, the only one that runs without
// an LLM.
const BrainDeterministic = "deterministic"

// ErrNoScenarios is returned when there is nothing to run.
var ErrNoScenarios = errors.New("harness: no scenarios")

// Options configure a run of the suite.
type Options struct {
	// Scenarios to run.
	Scenarios []*scenario.Scenario
	// Runs per scenario (n of pass@1).
	Runs int
	// Concurrency is how many scenario runs go at once.
	Concurrency int
	// Out is where summary.json, report.md and chart.svg go.
	Out string
	// BinDir holds the control-plane binaries.
	BinDir string
	// WorkDir holds the stack's cluster and NATS store.
	WorkDir string
	// Stack, if set, is reused instead of starting one; its simulator must
	// know the scenarios' app profiles.
	Stack *localstack.Stack
	// Brain of the agents; BrainDeterministic.
	Brain string
	// Progress receives one line per step; may be nil.
	Progress io.Writer
	// Logger for the stack's components.
	Logger logr.Logger
}

// Validate checks the options.
func (o *Options) Validate() error {
	if len(o.Scenarios) == 0 {
		return ErrNoScenarios
	}
	if o.Runs < 1 || o.Runs > 100 {
		return fmt.Errorf("runs must be between 1 and 100, not %d", o.Runs)
	}
	if o.Concurrency < 1 {
		return fmt.Errorf("concurrency must be at least 1, not %d", o.Concurrency)
	}
	if o.Brain == "" {
		o.Brain = BrainDeterministic
	}
	if o.Brain != BrainDeterministic {
		return fmt.Errorf("brain %q is not available: only %q runs without an LLM endpoint", o.Brain, BrainDeterministic)
	}
	if o.Out == "" {
		return errors.New("an output directory is required")
	}
	return nil
}

// Profiles gathers the app profiles of scenarios, for the simulator.
func Profiles(scs []*scenario.Scenario) []sim.Profile {
	var ps []sim.Profile
	for _, s := range scs {
		ps = append(ps, s.Profiles...)
	}
	return ps
}

// StartStack starts the local stack with a simulator that knows every
// scenario's app profiles, and proposal verification tuned for evals.
func StartStack(ctx context.Context, scs []*scenario.Scenario, binDir, workDir string, logger logr.Logger, progress func(string, ...any)) (*localstack.Stack, error) {
	sfs, err := sim.Faults(Profiles(scs))
	if err != nil {
		return nil, err
	}
	faults := make([]localstack.Fault, 0, len(sfs))
	for _, f := range sfs {
		faults = append(faults, localstack.Fault{Name: f.Name, When: f.When, Kind: localstack.FaultKind(f.Kind), Reason: f.Reason,
			ExitCode: f.ExitCode, EventReason: f.EventReason, Message: f.Message})
	}
	return localstack.Start(ctx, localstack.Options{
		BinDir:      binDir,
		WorkDir:     workDir,
		ClusterName: "evals",
		Nodes:       4,
		Faults:      faults,
		// Node faults stop heartbeats: the node must go NotReady within a
		// scenario's timeouts.
		RealisticHeartbeats: true,
		Proposal:            controllers.ProposalOptions{StableWindow: 10 * time.Second, VerifyTimeout: 60 * time.Second},
		Progress:            progress,
		Logger:              logger,
	})
}

// Run runs every scenario Runs times and writes the summary, the report
// and the chart to Out.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	out := o.Progress
	if out == nil {
		out = io.Discard
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}
	started := time.Now()
	st := o.Stack
	if st == nil {
		var err error
		st, err = StartStack(ctx, o.Scenarios, o.BinDir, o.WorkDir, o.Logger, func(f string, a ...any) { say("» "+f, a...) })
		if err != nil {
			return nil, err
		}
		defer st.Stop()
	}
	env, err := newEnv(st)
	if err != nil {
		return nil, err
	}

	type job struct {
		sc  *scenario.Scenario
		run int
	}
	var jobs []job
	for r := 1; r <= o.Runs; r++ {
		for _, sc := range o.Scenarios {
			jobs = append(jobs, job{sc, r})
		}
	}
	results := make(map[string][]RunResult)
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	var done int
	say("Running %d scenarios × %d runs, %d at a time (brain: %s)", len(o.Scenarios), o.Runs, o.Concurrency, o.Brain)
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break // the runs in flight see the cancellation and tear down
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			res := env.runOne(ctx, j.sc, j.run)
			mu.Lock()
			results[j.sc.Name] = append(results[j.sc.Name], res)
			done++
			n := done
			mu.Unlock()
			say("[%2d/%d] %-34s run %d: %s", n, len(jobs), j.sc.Name, j.run, res.line())
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sum := Summarize(o.Scenarios, results, o.Brain, started, time.Now())
	if err := Write(o.Out, sum); err != nil {
		return nil, err
	}
	say("Wrote %s, %s and %s", filepath.Join(o.Out, "summary.json"), filepath.Join(o.Out, "report.md"), filepath.Join(o.Out, "chart.svg"))
	return sum, nil
}

// env holds the clients of a run of the suite.
type env struct {
	stack *localstack.Stack
	// admin reads state and applies baselines; injector injects faults.
	admin, injector client.Client
}

func newEnv(st *localstack.Stack) (*env, error) {
	e := &env{stack: st, admin: st.Client, injector: st.Client}
	if st.Cluster != nil {
		kc, err := st.Cluster.UserKubeconfig(InjectorUser, []string{"system:masters"})
		if err != nil {
			return nil, err
		}
		cfg, err := localstack.RESTConfig(kc)
		if err != nil {
			return nil, err
		}
		c, err := client.New(cfg, client.Options{Scheme: localstack.Scheme()})
		if err != nil {
			return nil, fmt.Errorf("failed to create injector client: %w", err)
		}
		e.injector = c
	}
	return e, nil
}

// InjectorUser is the identity faults are injected under.
const InjectorUser = "tend-eval-injector"

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
