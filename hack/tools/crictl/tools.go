//go:build tools

// Package tools pins crictl, the reference `make bench BENCH=shim` measures
// the runtime shim's actions against.
package tools

import (
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
)
