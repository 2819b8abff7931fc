package bus

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// testKey is an audit key for one test.
func testKey(t *testing.T) (ed25519.PrivateKey, ed25519.PublicKey) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key, pub
}

func proposalRecord(i int) AuditRecord {
	return AuditRecord{
		Object:  ObjectRef{Kind: KindProposal, Namespace: "shop", Name: fmt.Sprintf("restart-web-%d", i)},
		From:    "Pending",
		To:      "Approved",
		Reason:  "AutoApproved",
		Message: fmt.Sprintf("record %d", i),
		Actor:   "system:serviceaccount:tend:controller",
	}
}

func TestAuditAppendConcurrent(t *testing.T) {
	srv, js := startBus(t)
	const perAppender = 6
	// Two logs on two connections, as two processes would have.
	key, pub := testKey(t)
	logs := []*AuditLog{NewAuditLog(js, "prod").WithKey(key), NewAuditLog(connect(t, srv), "prod").WithKey(key)}

	var wg sync.WaitGroup
	errs := make(chan error, len(logs)*perAppender)
	for a, log := range logs {
		wg.Go(func() {
			for i := range perAppender {
				if _, err := log.Append(t.Context(), proposalRecord(a*perAppender+i)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Append: %v", err)
	}

	recs, err := NewAuditLog(js, "prod").Records(t.Context())
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	if err := VerifyChain(recs, pub); err != nil {
		t.Errorf("VerifyChain: %v", err)
	}
	var got, want []string
	for i, r := range recs {
		got = append(got, r.Message)
		want = append(want, fmt.Sprintf("record %d", i))
	}
	slices.Sort(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if len(recs) > 0 && recs[0].PrevHash != "" {
		t.Errorf("first record links to %q, want no previous record", recs[0].PrevHash)
	}

	// Another cluster's chain is separate.
	other, err := NewAuditLog(js, "staging").Records(t.Context())
	if err != nil || len(other) != 0 {
		t.Errorf("staging chain: %d records, %v; want none", len(other), err)
	}
}

func TestAuditAppendReturnsStored(t *testing.T) {
	_, js := startBus(t)
	key, _ := testKey(t)
	if _, err := NewAuditLog(js, "prod").Append(t.Context(), proposalRecord(0)); !errors.Is(err, ErrNoAuditKey) {
		t.Errorf("Append without a key = %v, want ErrNoAuditKey", err)
	}
	log := NewAuditLog(js, "prod").WithKey(key)
	first, err := log.Append(t.Context(), proposalRecord(0))
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	second, err := log.Append(t.Context(), proposalRecord(1))
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if first.Cluster != "prod" || first.Time.IsZero() || first.PrevHash != "" || second.PrevHash != first.Hash {
		t.Errorf("records not filled in and linked: %+v, %+v", first, second)
	}
	recs, err := log.Records(t.Context())
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	if diff := cmp.Diff([]AuditRecord{first, second}, recs); diff != "" {
		t.Errorf("records (-appended +read):\n%s", diff)
	}
	if _, err := log.Append(t.Context(), AuditRecord{Cluster: "staging", Object: ObjectRef{Kind: KindProposal, Name: "p"}, To: "Approved"}); err == nil {
		t.Error("Append accepted a record of another cluster")
	}
}

func TestVerifyChainDetectsTampering(t *testing.T) {
	_, js := startBus(t)
	key, pub := testKey(t)
	log := NewAuditLog(js, "prod").WithKey(key)
	for i := range 4 {
		if _, err := log.Append(t.Context(), proposalRecord(i)); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	recs, err := log.Records(t.Context())
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	if err := VerifyChain(recs, pub); err != nil {
		t.Fatalf("VerifyChain of the untouched chain: %v", err)
	}

	// A record forged onto the subject by someone who can publish there,
	// claiming to follow record 2.
	forged := recs[3]
	forged.PrevHash = recs[2].Hash
	forged.To = "Succeeded"
	if forged.Hash, err = forged.hash(); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), AuditSubject("prod"), mustJSON(t, forged)); err != nil {
		t.Fatalf("publishing forged record: %v", err)
	}
	withForged, err := log.Records(t.Context())
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	// A record appended at the end by someone who can publish on the
	// subject and link and hash it correctly, but does not hold the key:
	// with another key, and with the real key ID but a made-up signature.
	otherKey, _ := testKey(t)
	staging := NewAuditLog(js, "staging").WithKey(key)
	for i := range 2 {
		if _, err := staging.Append(t.Context(), proposalRecord(i)); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	if _, err := staging.WithKey(otherKey).Append(t.Context(), proposalRecord(9)); err != nil {
		t.Fatalf("appending with another key: %v", err)
	}
	otherSigned, err := staging.Records(t.Context())
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	unsigned := slices.Clone(recs)
	tail := proposalRecord(8)
	tail.Cluster, tail.Time, tail.KeyID, tail.PrevHash = "prod", recs[3].Time, AuditKeyID(pub), recs[3].Hash
	if tail.Hash, err = tail.hash(); err != nil {
		t.Fatal(err)
	}
	tail.Signature = base64.StdEncoding.EncodeToString(make([]byte, ed25519.SignatureSize))
	unsigned = append(unsigned, tail)

	tests := []struct {
		name      string
		recs      []AuditRecord
		wantIndex int
	}{
		{"changed field", edit(recs, func(r []AuditRecord) []AuditRecord { r[2].To = "Denied"; return r }), 2},
		{"changed time", edit(recs, func(r []AuditRecord) []AuditRecord { r[1].Time = r[1].Time.Add(1); return r }), 1},
		{"removed record", edit(recs, func(r []AuditRecord) []AuditRecord { return slices.Delete(r, 1, 2) }), 1},
		{"removed first record", edit(recs, func(r []AuditRecord) []AuditRecord { return r[1:] }), 0},
		{"swapped records", edit(recs, func(r []AuditRecord) []AuditRecord { r[1], r[2] = r[2], r[1]; return r }), 1},
		{"forged record on the stream", withForged, 4},
		{"record appended with another key", otherSigned, 2},
		{"record appended with a made-up signature", unsigned, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyChain(tt.recs, pub)
			chainErr, ok := errors.AsType[*ChainError](err)
			if !ok {
				t.Fatalf("VerifyChain = %v, want a *ChainError", err)
			}
			if chainErr.Index != tt.wantIndex {
				t.Errorf("break reported at record %d, want %d: %v", chainErr.Index, tt.wantIndex, err)
			}
		})
	}
}

// edit applies f to a copy of recs.
func edit(recs []AuditRecord, f func([]AuditRecord) []AuditRecord) []AuditRecord {
	return f(slices.Clone(recs))
}

func TestAuditAppendOnceAndCheckpoint(t *testing.T) {
	_, js := startBus(t)
	key, pub := testKey(t)
	log := NewAuditLog(js, "prod").WithKey(key)
	rec := proposalRecord(0)
	rec.Object.UID, rec.Seq = "uid-1", 1
	first, seq1, err := log.AppendSeq(t.Context(), rec)
	if err != nil {
		t.Fatalf("AppendSeq: %v", err)
	}
	// A retry of the same transition (after a crash before the outbox was
	// cleared) is stored once, and returns what was stored.
	again, seq2, err := log.AppendSeq(t.Context(), rec)
	if err != nil || seq2 != seq1 || again.Hash != first.Hash {
		t.Fatalf("retried AppendSeq = %v at %d (%v), want the stored record at %d", again.Hash, seq2, err, seq1)
	}
	rec2 := proposalRecord(1)
	rec2.Object.UID, rec2.Seq = "uid-1", 2
	head, headSeq, err := log.AppendSeq(t.Context(), rec2)
	if err != nil {
		t.Fatalf("AppendSeq: %v", err)
	}
	recs, seqs, err := log.RecordsSeq(t.Context())
	if err != nil || len(recs) != 2 {
		t.Fatalf("RecordsSeq = %d records, %v; want 2", len(recs), err)
	}
	cp, err := log.Checkpoint(head, headSeq)
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if err := VerifyCheckpoint(recs, seqs, cp, pub); err != nil {
		t.Errorf("VerifyCheckpoint of the whole chain: %v", err)
	}
	if err := VerifyCheckpoint(recs[:1], seqs[:1], cp, pub); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("VerifyCheckpoint of a chain cut short = %v, want truncated", err)
	}
	forged := cp
	forged.Sequence = 1
	if err := VerifyCheckpoint(recs[:1], seqs[:1], forged, pub); err == nil || !strings.Contains(err.Error(), "not signed") {
		t.Errorf("VerifyCheckpoint of a checkpoint edited without the key = %v, want not signed", err)
	}
}
