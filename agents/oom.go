package agents

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tendops/tend/mcp/wire"
)

// OOMKilled is the runbook for containers killed for memory again and again
// under a limit no rollout explains: a limit the pod template does not set
// (a LimitRange's default gave it), or a template with no healthy earlier
// revision to return to. It proposes SetResources raising the container's
// memory limit by Factor, capped at the largest memory any node can offer
// pods; when the cap leaves no room above the current limit it proposes
// nothing (Escalate reports the fault).
type OOMKilled struct {
	// Factor multiplies the current limit. Default 4.
	Factor int64
	// FailFor is how long the pod must fail. Default 4s.
	FailFor time.Duration
}

var _ Runbook = (*OOMKilled)(nil)

// Name implements Runbook.
func (r *OOMKilled) Name() string { return "oom-killed" }

const mi = 1 << 20

// Evaluate implements Runbook.
func (r *OOMKilled) Evaluate(m *Model, now time.Time) []Intent {
	factor, failFor := r.Factor, r.FailFor
	if factor <= 1 {
		factor = 4
	}
	if failFor <= 0 {
		failFor = 4 * time.Second
	}
	var nodeCap int64
	for _, n := range m.Nodes {
		nodeCap = max(nodeCap, n.State.AllocatableMemoryBytes)
	}
	var out []Intent
	for _, key := range sortedKeys(m.Workloads) {
		w := m.Workloads[key]
		if w.Healthy {
			continue
		}
		containers := w.template()
		for _, p := range m.PodsOf(key) {
			if w.Deployment != nil && p.State.Revision != w.Deployment.Revision {
				continue
			}
			if p.FailingSince.IsZero() || !m.lasted(p.FailingSince, failFor, now) {
				continue
			}
			in := r.judge(w, p, containers, factor, nodeCap)
			if in != nil {
				out = append(out, *in)
				break
			}
		}
	}
	return out
}

func (r *OOMKilled) judge(w *Workload, p *Pod, template []templateContainer, factor, nodeCap int64) *Intent {
	for i, c := range p.State.Containers {
		if _, failing := containerFailure(c, false); !failing || !oomKilled(c) || c.MemoryLimitBytes == 0 || c.RestartCount < 1 {
			continue
		}
		if i >= len(template) || template[i].name != c.Name {
			return nil
		}
		admitted := template[i].memoryLimit == 0
		if !admitted && w.Deployment != nil && w.hasHealthyEarlierRevision() {
			// The template sets the limit and an earlier revision ran
			// healthy: the rollout is the cause (BadRollout).
			return nil
		}
		limit := c.MemoryLimitBytes * factor
		if nodeCap > 0 && limit > nodeCap {
			limit = nodeCap
		}
		limit = (limit + mi - 1) / mi * mi
		if limit <= c.MemoryLimitBytes {
			return nil
		}
		newLimit := resource.NewQuantity(limit, resource.BinarySI).String()
		oldLimit := resource.NewQuantity(c.MemoryLimitBytes, resource.BinarySI).String()
		source := "the pod template's"
		if admitted {
			source = "a default the namespace's LimitRange gave it (the template sets none)"
		}
		args := &wire.SetResourcesArgs{
			WorkloadArgs: wire.WorkloadArgs{Namespace: w.Key.Namespace, Kind: w.Key.Kind, Name: w.Key.Name},
			Container:    c.Name,
			Limits:       map[string]string{"memory": newLimit},
			Common: wire.Common{
				Summary: fmt.Sprintf("Container %s of %s %s/%s is OOMKilled in a loop (%s, %d restarts) under a memory limit of %s, %s.",
					textName(c.Name), w.Key.Kind, w.Key.Namespace, w.Key.Name, p.Key.Name, c.RestartCount, oldLimit, source),
				Rationale:   fmt.Sprintf("Raising the memory limit %d-fold to %s (capped at the most memory a node offers pods) gives the container room for its working set; the change is verified and undone if the pods still fail.", factor, newLimit),
				Risk:        "Medium",
				Telemetry:   []wire.TelemetryRef{p.Ref, w.Ref},
				Fingerprint: fmt.Sprintf("oom-killed/%s/%s/%s/%s/%s", w.Key.Kind, w.Key.Namespace, w.Key.Name, c.Name, oldLimit),
			},
		}
		if c.MemoryRequestBytes > limit {
			args.Requests = map[string]string{"memory": newLimit}
		}
		return &Intent{SetResources: args}
	}
	return nil
}
