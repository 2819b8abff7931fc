package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/agents/planner"
)

// subcommand finds the command at path under the root.
func subcommand(t *testing.T, path ...string) *cobra.Command {
	t.Helper()
	c, _, err := newRootCommand().Find(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBrainFlagsShared: every command that starts agents, and `tend eval
// run`, take the same brain and planner flags, with the same defaults;
// none takes a key.
func TestBrainFlagsShared(t *testing.T) {
	var want planner.Brain
	fs := pflag.NewFlagSet("want", pflag.ContinueOnError)
	want.BindFlags(fs)
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	if !slices.Contains(names, "brain") || !slices.Contains(names, "llm-base-url") || !slices.Contains(names, "llm-model") {
		t.Fatalf("the brain's flags are %v", names)
	}
	for _, path := range [][]string{{"up"}, {"demo"}, {"eval", "run"}} {
		c := subcommand(t, path...)
		fs.VisitAll(func(f *pflag.Flag) {
			got := c.Flags().Lookup(f.Name)
			if got == nil {
				t.Errorf("tend %s has no --%s", strings.Join(path, " "), f.Name)
				return
			}
			if got.DefValue != f.DefValue || got.Usage != f.Usage {
				t.Errorf("tend %s --%s: default %q usage %q, want %q %q", strings.Join(path, " "), f.Name, got.DefValue, got.Usage, f.DefValue, f.Usage)
			}
		})
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if strings.Contains(f.Name, "key") && f.Name != "llm-api-key-file" {
				t.Errorf("tend %s --%s takes a key on the command line", strings.Join(path, " "), f.Name)
			}
		})
	}
}

// TestBrainDefault: deterministic without a model endpoint, hybrid with
// one; the key comes from a file and never shows in the options.
func TestBrainDefault(t *testing.T) {
	for _, env := range []string{planner.EnvBrain, planner.EnvBaseURL, planner.EnvModel, planner.EnvKey, planner.EnvKeyFile, planner.EnvProvider} {
		t.Setenv(env, "")
	}
	var b planner.Brain
	if err := b.Resolve(); err != nil || b.Name != agents.BrainDeterministic {
		t.Fatalf("no endpoint: brain %q, %v; want deterministic", b.Name, err)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("sk-secret-in-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(planner.EnvBaseURL, "http://127.0.0.1:1/v1")
	t.Setenv(planner.EnvKeyFile, keyFile)
	o := stackOptions{binDir: t.TempDir(), nodes: 1, verifyTimeout: 2, stableWindow: 1}
	fs := pflag.NewFlagSet("up", pflag.ContinueOnError)
	o.brain.BindFlags(fs)
	if err := fs.Parse([]string{"--llm-model", "qwen3"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.brain.Name != agents.BrainHybrid {
		t.Errorf("with an endpoint: brain %q, want hybrid", o.brain.Name)
	}
	if got := o.localstack(newLogger(0), nil).Brain; got.Name != agents.BrainHybrid || got.LLM.Model.Model != "qwen3" {
		t.Errorf("the stack gets brain %q model %q", got.Name, got.LLM.Model.Model)
	}
	if line := o.brainLine(); strings.Contains(line, "sk-secret") || !strings.Contains(line, "qwen3") {
		t.Errorf("brain line %q", line)
	}
}

// TestEvalRunTakesAnLLMBrain: `tend eval run --brain hybrid --llm-base-url
// URL --llm-model M` passes validation (here with --list, which needs no
// stack).
func TestEvalRunTakesAnLLMBrain(t *testing.T) {
	for _, env := range []string{planner.EnvBrain, planner.EnvBaseURL, planner.EnvModel, planner.EnvKey, planner.EnvKeyFile, planner.EnvProvider} {
		t.Setenv(env, "")
	}
	for _, brain := range []string{agents.BrainHybrid, agents.BrainLLM} {
		cmd := newRootCommand()
		var out strings.Builder
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs([]string{"eval", "run", "--brain", brain, "--llm-base-url", "http://127.0.0.1:8089/v1", "--llm-model", "hostile",
			"--list", filepath.Join("..", "..", "evals", "scenarios", "healthy-control.yaml")})
		if err := cmd.ExecuteContext(t.Context()); err != nil {
			t.Fatalf("--brain %s: %v\n%s", brain, err, out.String())
		}
		if !strings.Contains(out.String(), "healthy-control") {
			t.Errorf("--brain %s --list: %s", brain, out.String())
		}
	}
}
