// Package critest runs a real containerd for tests: in a temporary root, with
// CRI images built locally with umoci from busybox-static and imported with
// ctr (no registry), and pod sandboxes on the host network (no CNI). It plays
// the kubelet's part where a test needs it: it creates pods and containers
// with the kubelet's labels and log paths, and starts a container again
// after it exited.
//
// It needs root, containerd, runc, umoci, ctr and /bin/busybox (Debian:
// containerd runc umoci busybox-static). Without them a test fails; only
// `go test -short` skips it.
//
// The package must never leave anything behind: every containerd it starts
// is stopped by its PID, with its runtime shims and containers, and its
// mounts and temporary files are removed when the test ends.
package critest
