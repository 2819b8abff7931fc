package bus

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

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
	logs := []*AuditLog{NewAuditLog(js, "prod"), NewAuditLog(connect(t, srv), "prod")}

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
	if err := VerifyChain(recs); err != nil {
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
	log := NewAuditLog(js, "prod")
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
	log := NewAuditLog(js, "prod")
	for i := range 4 {
		if _, err := log.Append(t.Context(), proposalRecord(i)); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	recs, err := log.Records(t.Context())
	if err != nil {
		t.Fatalf("Records: %v", err)
	}
	if err := VerifyChain(recs); err != nil {
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyChain(tt.recs)
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
