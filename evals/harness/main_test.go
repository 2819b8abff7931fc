package harness

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tendops/tend/evals/scenario"
)

// The live tests share one stack, started on first use with every
// scenario's app profiles, and stopped after the last test.
var (
	shared struct {
		once  sync.Once
		stack *Stack
		dir   string
		err   error
	}
	suite []*scenario.Scenario
)

// The live tests draw parameters with this seed, for up to testRuns runs.
const (
	testSeed = 20260101
	testRuns = 3
)

func TestMain(m *testing.M) {
	flag.Parse()
	log.SetLogger(logr.Discard())
	code := m.Run()
	if shared.stack != nil {
		shared.stack.Stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// liveStack returns the shared stack, skipping under -short or when the
// control-plane binaries are missing.
func liveStack(t *testing.T) *Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("live eval tests need the local control plane")
	}
	bin := os.Getenv("TEND_BIN_DIR")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin")
	}
	bin, _ = filepath.Abs(bin)
	if _, err := os.Stat(filepath.Join(bin, "kwokctl")); err != nil {
		t.Skipf("control-plane binaries not in %s (run `make tools`)", bin)
	}
	shared.once.Do(func() {
		suite, shared.err = scenario.Load(filepath.Join("..", "scenarios"))
		if shared.err != nil {
			return
		}
		shared.dir, shared.err = os.MkdirTemp("", "tend-evals-")
		if shared.err != nil {
			return
		}
		shared.stack, shared.err = StartStack(context.Background(), suite, testSeed, testRuns, bin, shared.dir, testLogger(), func(f string, a ...any) { fmt.Printf("» "+f+"\n", a...) })
	})
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.stack
}

func scenarioNamed(t *testing.T, name string) *scenario.Scenario {
	t.Helper()
	for _, s := range suite {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no scenario %q in the suite", name)
	return nil
}
