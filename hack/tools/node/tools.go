//go:build tools

// Package tools pins the node binaries that `make tools` builds for the
// install test's real node (internal/realnode): the kubelet and kube-proxy,
// from the same Kubernetes release as the control plane in ../kube.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
