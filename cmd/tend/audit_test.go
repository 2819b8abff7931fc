package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendops/tend/bus"
)

// auditBus is an embedded NATS server with a signed audit chain of three
// records for cluster prod, and the key that signed it.
type auditBus struct {
	ns   *bus.Embedded
	log  *bus.AuditLog
	pub  ed25519.PublicKey
	last bus.AuditRecord
}

func newAuditBus(t *testing.T) *auditBus {
	t.Helper()
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
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b := &auditBus{ns: ns, log: bus.NewAuditLog(js, "prod").WithKey(key), pub: pub}
	for _, step := range [][2]string{{"Pending", "Approved"}, {"Approved", "Applying"}, {"Applying", "Verifying"}} {
		b.last, err = b.log.Append(t.Context(), bus.AuditRecord{
			Time: time.Now(), Cluster: "prod", From: step[0], To: step[1], Reason: "Test",
			Object: bus.ObjectRef{Kind: bus.KindProposal, Namespace: "shop", Name: "rollback-web-1"},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// verify runs `tend audit verify` against the bus with the key's public
// half given on the command line (in a file, as an operator pins it).
func (b *auditBus) verify(t *testing.T) (string, error) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "audit.pub")
	if err := os.WriteFile(keyFile, []byte(bus.EncodeAuditPublicKey(b.pub)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"audit", "verify", "--nats-url", b.ns.URL(), "--cluster", "prod", "--public-key", keyFile,
		"--kubeconfig", filepath.Join(t.TempDir(), "none")})
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// TestAuditVerifyDetectsTampering builds a signed chain on a real embedded
// NATS server, checks that `tend audit verify` accepts it, then appends
// records as someone who can publish on the audit subject but does not hold
// the key would: one whose content does not match its hash, and one linked
// and hashed correctly but not signed by the key. Verify names each and
// fails.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	b := newAuditBus(t)
	out, err := b.verify(t)
	if err != nil || !strings.Contains(out, "OK: 3 audit records") {
		t.Fatalf("verify of an intact chain: err=%v out=%q", err, out)
	}

	// Linked and hashed like a real record, signed with another key.
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nc, js, err := bus.Connect(t.Context(), b.ns.URL(), "forger")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := bus.NewAuditLog(js, "prod").WithKey(otherKey).Append(t.Context(), bus.AuditRecord{
		Time: time.Now(), Cluster: "prod", From: "Verifying", To: "Succeeded", Reason: "Verified", Object: b.last.Object,
	}); err != nil {
		t.Fatal(err)
	}
	out, err = b.verify(t)
	if err == nil {
		t.Fatalf("verify of a chain with a forged record succeeded: %q", out)
	}
	if !strings.Contains(out, "BROKEN at record 4 of 4") || !strings.Contains(out, "Succeeded") || !strings.Contains(err.Error(), "key") {
		t.Errorf("verify output = %q, error %v; want it to name record 4 and the key", out, err)
	}
}

// TestAuditVerifyReportsMissingStream deletes the AUDIT stream and checks
// that verify fails, saying so.
func TestAuditVerifyReportsMissingStream(t *testing.T) {
	b := newAuditBus(t)
	nc, js, err := bus.Connect(t.Context(), b.ns.URL(), "admin")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := js.DeleteStream(t.Context(), bus.StreamAudit); err != nil {
		t.Fatal(err)
	}
	out, err := b.verify(t)
	if err == nil || !strings.Contains(out, "the AUDIT stream does not exist") {
		t.Fatalf("verify after the stream was deleted: err=%v out=%q", err, out)
	}
}

// TestAuditCheckpointCatchesTruncation: a chain that verifies link by link
// but lacks the head its checkpoint recorded was cut short or replaced.
func TestAuditCheckpointCatchesTruncation(t *testing.T) {
	b := newAuditBus(t)
	nc, js, err := bus.Connect(t.Context(), b.ns.URL(), "reader")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	recs, seqs, err := bus.NewAuditLog(js, "prod").RecordsSeq(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	cp, err := b.log.Checkpoint(b.last, seqs[len(seqs)-1])
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	var back bus.Checkpoint
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if err := bus.VerifyCheckpoint(recs, seqs, back, b.pub); err != nil {
		t.Errorf("checkpoint of the whole chain: %v", err)
	}
	if err := bus.VerifyCheckpoint(recs[:2], seqs[:2], back, b.pub); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("checkpoint of a chain cut short = %v, want truncated", err)
	}
}
