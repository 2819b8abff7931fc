package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tendops/tend/bus"
)

// TestAuditVerifyDetectsTampering builds a chain on a real embedded NATS
// server, checks that `tend audit verify` accepts it, then appends a record
// whose content was altered after it was hashed and checks that verify
// names it and fails.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, js, err := bus.Connect(t.Context(), ns.URL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	log := bus.NewAuditLog(js, "prod")
	var last bus.AuditRecord
	for _, step := range [][2]string{{"Pending", "Approved"}, {"Approved", "Applying"}, {"Applying", "Verifying"}} {
		last, err = log.Append(t.Context(), bus.AuditRecord{
			Time: time.Now(), Cluster: "prod", From: step[0], To: step[1], Reason: "Test",
			Object: bus.ObjectRef{Kind: bus.KindProposal, Namespace: "shop", Name: "rollback-web-1"},
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	run := func(args ...string) (string, error) {
		cmd := newRootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"audit", "verify", "--nats-url", ns.URL(), "--cluster", "prod"}, args...))
		err := cmd.ExecuteContext(t.Context())
		return out.String(), err
	}
	out, err := run()
	if err != nil || !strings.Contains(out, "OK: 3 audit records") {
		t.Fatalf("verify of an intact chain: err=%v out=%q", err, out)
	}

	// A record chained to the last one whose content does not match its
	// hash: it claims Succeeded under the hash of another record.
	forged := bus.AuditRecord{Time: time.Now(), Cluster: "prod", From: "Verifying", To: "Succeeded", Reason: "Verified",
		Object: last.Object, PrevHash: last.Hash, Hash: last.Hash}
	data, err := json.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), bus.AuditSubject("prod"), data); err != nil {
		t.Fatal(err)
	}
	out, err = run()
	if err == nil {
		t.Fatalf("verify of a tampered chain succeeded: %q", out)
	}
	if !strings.Contains(out, "BROKEN at record 4 of 4") || !strings.Contains(out, "Succeeded") {
		t.Errorf("verify output = %q, want it to name record 4", out)
	}
}
