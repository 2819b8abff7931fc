// Package realnode joins a real node to a test's cluster: a kubelet, built
// from the same Kubernetes module as the control plane (`make tools`), on a
// real containerd and runc (runtime-shim/critest), with pod networking from
// the CNI bridge plugin, Service cluster IPs from kube-proxy, and Service
// names from a small DNS server that stands in for the cluster's DNS add-on.
//
// This VM runs cgroup v1, which a 1.37 kubelet refuses unless its
// configuration sets failCgroupV1: false; the node sets it.
//
// It is for tests only, and needs root, containerd, runc, umoci, ctr,
// busybox-static, iptables and Debian's containernetworking-plugins. Without
// them a test fails; only `go test -short` skips it.
//
// It must never leave anything behind: the kubelet and kube-proxy are
// stopped by their PIDs; kube-proxy's rules and the kubelet's firewall chain
// are removed, the pods' containers, cgroups and mounts with containerd's,
// the bridge deleted, the directories the kubelet and libcni make outside
// the node's root (when they were not there before) and its temporary files
// removed when the test ends. One real node runs on a machine at a time.
package realnode
