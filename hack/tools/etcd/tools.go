//go:build tools

// Package tools pins etcd, built for the local stack and envtest.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
)
