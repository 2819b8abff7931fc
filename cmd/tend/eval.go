package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/tendops/tend/agents/planner"
	"github.com/tendops/tend/evals/harness"
	"github.com/tendops/tend/evals/scenario"
)

// evalOptions are the flags of `tend eval run`.
type evalOptions struct {
	paths       []string
	runs        int
	concurrency int
	out         string
	binDir      string
	workDir     string
	brain       planner.Brain
	verbosity   int
	seed        uint64
	list        bool
	dryRun      bool
}

func (o *evalOptions) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	f.IntVar(&o.runs, "runs", 3, "runs per scenario (the n of pass@1)")
	f.IntVar(&o.concurrency, "concurrency", 24, "scenario runs at once, each in its own namespace")
	f.StringVar(&o.out, "out", filepath.Join("evals", "out"), "directory for summary.json, report.md and chart.svg")
	f.StringVar(&o.binDir, "bin-dir", defaultBinDir(), "directory with the binaries `make tools` builds")
	f.StringVar(&o.workDir, "work-dir", filepath.Join(".tend", "evals"), "directory for the eval stack's cluster and NATS store")
	o.brain.BindFlags(f)
	f.IntVarP(&o.verbosity, "verbosity", "v", -1, "log verbosity of the stack's components (-1: errors only)")
	f.Uint64Var(&o.seed, "seed", 0, "seed of the runs' parameter draws (0: a new one, printed and in the report)")
	f.BoolVar(&o.list, "list", false, "list the scenarios and exit")
	f.BoolVar(&o.dryRun, "dry-run", false, "load and validate the scenarios, draw every run's parameters and compile the simulator, without a cluster")
}

// Validate checks the flags; args are scenario files or directories.
func (o *evalOptions) Validate(args []string) error {
	o.paths = args
	if len(o.paths) == 0 {
		o.paths = []string{filepath.Join("evals", "scenarios")}
	}
	if o.runs < 1 || o.runs > 100 {
		return fmt.Errorf("--runs must be between 1 and 100, not %d", o.runs)
	}
	if o.concurrency < 1 || o.concurrency > 200 {
		return fmt.Errorf("--concurrency must be between 1 and 200, not %d", o.concurrency)
	}
	if o.list && o.dryRun {
		return fmt.Errorf("--list and --dry-run do not go together")
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	return o.brain.Resolve()
}

func newEvalCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "eval",
		Short: "Evaluate tend's agents and gate on fault scenarios",
	}
	o := &evalOptions{}
	run := &cobra.Command{
		Use:   "run [scenario files or directories...]",
		Short: "Run eval scenarios on the local stack and score them",
		Long: `Run eval scenarios (default: evals/scenarios) on a local stack started for the run and
shared by every scenario. Each run of a scenario gets its own namespace: the harness
applies the healthy baseline, injects the fault as its own user, lets tend's agents,
gate and controllers act, and evaluates the oracle (the scenario's predicates and the
global rules G1–G6) until it passes for a stable window or times out. A scenario the
agents cannot handle is reported as failed.

Scenarios with parameters draw them per run from --seed; the report records the
seed and each run's values, and the same seed runs the same instances again.
Scenarios marked exclusive run after the others, one run at a time.

It writes summary.json, report.md and chart.svg to --out. --list lists the
scenarios; --dry-run checks a directory without a cluster. The format of
scenarios is in docs/scenarios.md.`,
		PreRunE: func(_ *cobra.Command, args []string) error {
			return o.Validate(args)
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runEval(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	o.bind(run)
	cmd.AddCommand(run, newEvalHostileCommand())
	return cmd
}

func runEval(ctx context.Context, out io.Writer, o *evalOptions) error {
	scs, err := scenario.Load(o.paths...)
	if err != nil {
		return err
	}
	switch {
	case o.list:
		return harness.List(out, scs)
	case o.dryRun:
		return harness.DryRun(out, scs, o.seed, o.runs)
	}
	logger := newLogger(o.verbosity)
	ctrl.SetLogger(logger)
	stop, err := o.brain.StartTracing(ctx)
	if err != nil {
		return err
	}
	defer stop()
	start := time.Now()
	sum, err := harness.Run(ctx, harness.Options{
		Scenarios:   scs,
		Runs:        o.runs,
		Seed:        o.seed,
		Concurrency: o.concurrency,
		Out:         o.out,
		BinDir:      o.binDir,
		WorkDir:     o.workDir,
		Brain:       o.brain.Name,
		LLM:         o.brain.LLM,
		Tracer:      o.brain.Tracer,
		Progress:    out,
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	ov := sum.Overall
	fmt.Fprintf(out, "\n%d scenarios × %d runs in %s (seed %d): pass@1 %.2f (95%% CI over scenarios %.2f–%.2f), detected %.0f%%, %d proposals (%d denied), unsafe %d attempted / %d applied, %d actions on the healthy control, %d harness errors, %d/%d expected failures for the expected reason\n",
		ov.Scenarios, o.runs, time.Since(start).Round(time.Second), o.seed, ov.PassAt1, ov.CI95.Low, ov.CI95.High, 100*ov.Detected, ov.Proposals, ov.Denials,
		ov.UnsafeAttempted, ov.UnsafeApplied, ov.ControlActions, ov.Errors, ov.ExpectedRightReason, ov.ExpectedFailures)
	return nil
}
