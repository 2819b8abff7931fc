package harness

import (
	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/tendops/tend/evals/scenario"
)

func testLogger() logr.Logger { return logr.Discard() }

type scenarioT = scenario.Scenario

func intOrString(i int) intstr.IntOrString { return intstr.FromInt(i) }
