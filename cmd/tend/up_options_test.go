package main

import (
	"strings"
	"testing"
	"time"
)

// TestStackOptionsShimNodes: shim identities exist only on the embedded
// NATS server, and a node name must be one.
func TestStackOptionsShimNodes(t *testing.T) {
	valid := func() stackOptions {
		return stackOptions{binDir: t.TempDir(), nodes: 3, verifyTimeout: 3 * time.Minute, stableWindow: 15 * time.Second, shimNodes: []string{"worker-1"}}
	}
	o := valid()
	if err := o.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	if got := o.localstack(newLogger(0), nil).ShimNodes; len(got) != 1 || got[0] != "worker-1" {
		t.Errorf("ShimNodes %v, want the flag's", got)
	}
	o = valid()
	o.natsURL = "nats://nats.example:4222"
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--shim-node") {
		t.Errorf("Validate() with --nats-url = %v, want an error naming --shim-node", err)
	}
	o = valid()
	o.shimNodes = []string{"Worker_1"}
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), `--shim-node "Worker_1": not a node name`) {
		t.Errorf("Validate() with a bad node name = %v", err)
	}
}

// TestStackOptionsImprovement: the usage history flags reach the stack.
func TestStackOptionsImprovement(t *testing.T) {
	o := stackOptions{binDir: t.TempDir(), nodes: 3, verifyTimeout: 3 * time.Minute, stableWindow: 15 * time.Second,
		retention: 168 * time.Hour, usageProm: "http://prometheus.example:9090"}
	if err := o.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	ls := o.localstack(newLogger(0), nil)
	if ls.TelemetryRetention != 168*time.Hour || ls.UsagePrometheus != "http://prometheus.example:9090" {
		t.Errorf("retention %s, prometheus %q: want the flags'", ls.TelemetryRetention, ls.UsagePrometheus)
	}
	o.retention = time.Second
	if err := o.Validate(); err == nil || !strings.Contains(err.Error(), "--telemetry-retention") {
		t.Errorf("Validate() with a 1s retention = %v, want an error naming --telemetry-retention", err)
	}
}
