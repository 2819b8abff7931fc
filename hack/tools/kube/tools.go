//go:build tools

// Package tools pins the Kubernetes control-plane binaries that `make tools`
// builds for the local stack and envtest.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
