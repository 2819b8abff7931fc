package agents

import (
	"context"
	"strings"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// findingPublisher publishes findings. *bus.FindingPublisher implements it.
type findingPublisher interface {
	Publish(ctx context.Context, f *bus.Finding) (uint64, error)
}

var _ findingPublisher = (*bus.FindingPublisher)(nil)

// BusFindings records findings on the bus (the FINDINGS stream), where the
// controller turns each into an Event on its object and `tend findings`
// lists them.
type BusFindings struct {
	Publisher findingPublisher
	// Agent names the agent in each finding.
	Agent string
}

var _ FindingRecorder = (*BusFindings)(nil)

// RecordFinding implements FindingRecorder.
func (b *BusFindings) RecordFinding(ctx context.Context, f Finding) error {
	rec := &bus.Finding{
		ID:      "finding-" + wire.Digest(f.Fingerprint),
		Agent:   b.Agent,
		Runbook: f.Runbook,
		Object:  bus.ObjectRef{Kind: bus.Kind(f.Kind), Namespace: f.Namespace, Name: f.Name},
		Fault:   f.Fault,
		Advice:  f.Advice,
	}
	for _, e := range f.Evidence {
		rec.Evidence = append(rec.Evidence, bus.EvidenceRef{Subject: e.Subject, Sequence: e.Sequence})
	}
	if strings.TrimSpace(rec.Fault) == "" {
		return nil
	}
	_, err := b.Publisher.Publish(ctx, rec)
	return err
}
