package agents

import (
	"fmt"

	"github.com/tendops/tend/mcp/wire"
)

// Intent is one thing a runbook wants done: a call of one propose tool, or
// a Finding when no safe fix exists. Exactly one field besides Runbook is
// set.
type Intent struct {
	// Runbook that produced the intent; the agent fills it in.
	Runbook string

	Rollback           *wire.ProposeRollbackArgs
	RestartWorkload    *wire.RestartWorkloadArgs
	ScaleWorkload      *wire.ScaleWorkloadArgs
	SetResources       *wire.SetResourcesArgs
	PatchWorkload      *wire.PatchWorkloadArgs
	EvictPod           *wire.EvictPodArgs
	ForceDeletePod     *wire.ForceDeletePodArgs
	CordonNode         *wire.CordonNodeArgs
	UncordonNode       *wire.UncordonNodeArgs
	DrainNode          *wire.DrainNodeArgs
	RetryJob           *wire.RetryJobArgs
	SetAutoscaler      *wire.SetAutoscalerArgs
	RestartContainer   *wire.RestartContainerArgs
	PruneImages        *wire.PruneImagesArgs
	CollectDiagnostics *wire.CollectDiagnosticsArgs

	// Finding is a diagnosis for a human, recorded when no safe fix exists.
	Finding *Finding

	// Covers are other objects the intent speaks for, when one cause
	// explains several (the Deployments of a storm, rolled back one as a
	// canary): the runbook claims them too, and the hybrid brain does not
	// hand them to the planner.
	Covers []ObjectKey
}

// Call returns the propose tool the intent calls and its arguments; ok is
// false for a Finding, and for an intent that sets no call or several.
func (i Intent) Call() (tool string, args wire.ProposeArgs, ok bool) {
	var calls []struct {
		tool string
		args wire.ProposeArgs
	}
	add := func(set bool, tool string, args wire.ProposeArgs) {
		if set {
			calls = append(calls, struct {
				tool string
				args wire.ProposeArgs
			}{tool, args})
		}
	}
	add(i.Rollback != nil, wire.ToolProposeRollback, i.Rollback)
	add(i.RestartWorkload != nil, wire.ToolProposeRestartWorkload, i.RestartWorkload)
	add(i.ScaleWorkload != nil, wire.ToolProposeScaleWorkload, i.ScaleWorkload)
	add(i.SetResources != nil, wire.ToolProposeSetResources, i.SetResources)
	add(i.PatchWorkload != nil, wire.ToolProposePatchWorkload, i.PatchWorkload)
	add(i.EvictPod != nil, wire.ToolProposeEvictPod, i.EvictPod)
	add(i.ForceDeletePod != nil, wire.ToolProposeForceDeletePod, i.ForceDeletePod)
	add(i.CordonNode != nil, wire.ToolProposeCordonNode, i.CordonNode)
	add(i.UncordonNode != nil, wire.ToolProposeUncordonNode, i.UncordonNode)
	add(i.DrainNode != nil, wire.ToolProposeDrainNode, i.DrainNode)
	add(i.RetryJob != nil, wire.ToolProposeRetryJob, i.RetryJob)
	add(i.SetAutoscaler != nil, wire.ToolProposeSetAutoscaler, i.SetAutoscaler)
	add(i.RestartContainer != nil, wire.ToolProposeRestartContainer, i.RestartContainer)
	add(i.PruneImages != nil, wire.ToolProposePruneImages, i.PruneImages)
	add(i.CollectDiagnostics != nil, wire.ToolProposeCollectDiagnostics, i.CollectDiagnostics)
	if len(calls) != 1 || i.Finding != nil {
		return "", nil, false
	}
	return calls[0].tool, calls[0].args, true
}

// common returns the intent's common arguments, nil for a Finding.
func (i Intent) common() *wire.Common {
	if _, args, ok := i.Call(); ok {
		return args.CommonArgs()
	}
	return nil
}

// fingerprint identifies the intent across repeats.
func (i Intent) fingerprint() string {
	if i.Finding != nil {
		return "finding/" + i.Finding.Fingerprint
	}
	if c := i.common(); c != nil {
		return c.Fingerprint
	}
	return ""
}

// target names the object the intent is about, "" when it has none: the
// agent makes one proposal per target at a time, whichever runbook asks.
func (i Intent) target() string {
	if f := i.Finding; f != nil {
		return fmt.Sprintf("%s/%s/%s", f.Kind, f.Namespace, f.Name)
	}
	tool, args, ok := i.Call()
	if !ok {
		return ""
	}
	d, err := wire.Validate(args)
	if err != nil {
		return tool
	}
	return fmt.Sprintf("%s/%s/%s", d.Target.Kind, d.Target.Namespace, d.Target.Name)
}
