package bus

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFindingsRoundTrip(t *testing.T) {
	_, js := startBus(t)
	pub := NewFindingPublisher(js, "test")
	var want []Finding
	for i := range 5 {
		f := Finding{
			ID: fmt.Sprintf("f-%d", i), Agent: "maintenance", Runbook: "escalate",
			Object:   ObjectRef{Kind: "Deployment", Namespace: "shop", Name: fmt.Sprintf("web-%d", i)},
			Fault:    "Deployment shop/web crash-loops with no healthy revision to return to.",
			Advice:   "Check the container's command and environment.",
			Evidence: []EvidenceRef{{Subject: "tend.telemetry.test.pod.shop.web-1", Sequence: uint64(10 + i)}},
		}
		if _, err := pub.Publish(t.Context(), &f); err != nil {
			t.Fatalf("Publish: %v", err)
		}
		want = append(want, f)
	}
	// The same finding again is a duplicate, kept once.
	again := want[4]
	if _, err := pub.Publish(t.Context(), &again); err != nil {
		t.Fatalf("Publish again: %v", err)
	}
	got, bad, err := ReadFindings(t.Context(), js, "test", 0)
	if err != nil || bad != 0 {
		t.Fatalf("ReadFindings = %d bad, %v", bad, err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	last, _, err := ReadFindings(t.Context(), js, "test", 2)
	if err != nil {
		t.Fatalf("ReadFindings(2): %v", err)
	}
	if diff := cmp.Diff(want[3:], last); diff != "" {
		t.Errorf("last two findings (-want +got):\n%s", diff)
	}
	other, _, err := ReadFindings(t.Context(), js, "other", 0)
	if err != nil || len(other) != 0 {
		t.Errorf("findings of another cluster = %v, %v; want none", other, err)
	}
}

func TestDecodeFindingRejects(t *testing.T) {
	for name, data := range map[string]string{
		"unknown field":   `{"schemaVersion":1,"id":"a","cluster":"c","object":{"kind":"Pod","name":"p"},"fault":"x","extra":1}`,
		"no fault":        `{"schemaVersion":1,"id":"a","cluster":"c","object":{"kind":"Pod","name":"p"}}`,
		"other version":   `{"schemaVersion":2,"id":"a","cluster":"c","object":{"kind":"Pod","name":"p"},"fault":"x"}`,
		"huge fault":      `{"schemaVersion":1,"id":"a","cluster":"c","object":{"kind":"Pod","name":"p"},"fault":"` + strings.Repeat("x", 5000) + `"}`,
		"trailing data":   `{"schemaVersion":1,"id":"a","cluster":"c","object":{"kind":"Pod","name":"p"},"fault":"x"} {}`,
		"id with a space": `{"schemaVersion":1,"id":"a b","cluster":"c","object":{"kind":"Pod","name":"p"},"fault":"x"}`,
	} {
		if _, err := DecodeFinding([]byte(data)); err == nil {
			t.Errorf("%s: DecodeFinding accepted it", name)
		}
	}
}
