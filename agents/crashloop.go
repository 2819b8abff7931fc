package agents

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// CrashLoopRollback is the maintenance runbook for a bad rollout: when the
// pods of a Deployment's current revision crash-loop and an earlier revision
// was seen healthy, it proposes rolling back to that revision.
//
// It decides on typed fields only (waiting reasons, restart counts,
// revisions); message text is never read.
type CrashLoopRollback struct {
	// MinRestarts is the restart count from which a not-ready container
	// counts as crash-looping even without a CrashLoopBackOff reason.
	// Default 3.
	MinRestarts int32

	deployments map[string]*deploymentModel
	pods        map[string]*podModel
}

type deploymentModel struct {
	namespace, name string
	revision        int64
	healthy         map[int64]bool
	ref             wire.TelemetryRef
}

type podModel struct {
	deployment string
	name       string
	revision   int64
	crashing   bool
	detail     string
	ref        wire.TelemetryRef
}

var _ Runbook = (*CrashLoopRollback)(nil)

// Name implements Runbook.
func (r *CrashLoopRollback) Name() string { return "crashloop-rollback" }

// Observe implements Runbook.
func (r *CrashLoopRollback) Observe(d bus.Delivery) []Intent {
	if r.deployments == nil {
		r.deployments, r.pods = map[string]*deploymentModel{}, map[string]*podModel{}
	}
	env := d.Envelope
	if !validObject(env.Object.Namespace, env.Object.Name) {
		return nil
	}
	ref := wire.TelemetryRef{Subject: d.Subject, Sequence: d.StreamSeq, ID: env.ID}
	switch {
	case env.Deployment != nil:
		key := env.Object.Namespace + "/" + env.Object.Name
		st := env.Deployment
		if st.Deleted {
			delete(r.deployments, key)
			return nil
		}
		m := r.deployments[key]
		if m == nil {
			m = &deploymentModel{namespace: env.Object.Namespace, name: env.Object.Name, healthy: map[int64]bool{}}
			r.deployments[key] = m
		}
		m.revision, m.ref = st.Revision, ref
		if deploymentHealthy(st) {
			m.healthy[st.Revision] = true
		}
		return r.evaluate(key)
	case env.Pod != nil:
		key := env.Object.Namespace + "/" + env.Object.Name
		st := env.Pod
		if st.Deleted || st.Workload == nil || st.Workload.Kind != "Deployment" || !validObject("", st.Workload.Name) {
			delete(r.pods, key)
			return nil
		}
		dep := env.Object.Namespace + "/" + st.Workload.Name
		crashing, detail := r.crashing(st)
		r.pods[key] = &podModel{deployment: dep, name: env.Object.Name, revision: st.Revision, crashing: crashing, detail: detail, ref: ref}
		return r.evaluate(dep)
	}
	return nil
}

// crashing reports whether a pod is crash-looping, with a short account.
func (r *CrashLoopRollback) crashing(st *bus.PodState) (bool, string) {
	min := r.MinRestarts
	if min == 0 {
		min = 3
	}
	for _, c := range st.Containers {
		if c.Ready {
			continue
		}
		if (c.State == bus.ContainerWaiting && c.Reason == "CrashLoopBackOff") || c.RestartCount >= min {
			// Reasons are untrusted text: only short codes reach the summary.
			detail := fmt.Sprintf("container %s %s, %d restarts", textName(c.Name), orDefault(reasonCode(c.Reason), reasonCode(c.State)), c.RestartCount)
			if c.LastTerminationReason != "" {
				detail += fmt.Sprintf(", last exit %d", c.LastExitCode)
				if code := reasonCode(c.LastTerminationReason); code != "" {
					detail += " (" + code + ")"
				}
			}
			return true, detail
		}
	}
	return false, ""
}

// evaluate decides whether a deployment now needs a rollback.
func (r *CrashLoopRollback) evaluate(key string) []Intent {
	m := r.deployments[key]
	if m == nil || m.revision == 0 || m.healthy[m.revision] {
		// Unknown, or the current revision was healthy before: a crash loop
		// there is not a bad rollout, and rolling back would not be the fix.
		return nil
	}
	var crashing, total []*podModel
	for _, p := range r.pods {
		if p.deployment == key && p.revision == m.revision {
			total = append(total, p)
			if p.crashing {
				crashing = append(crashing, p)
			}
		}
	}
	if len(crashing) == 0 {
		return nil
	}
	var good int64
	for rev := range m.healthy {
		if rev < m.revision && rev > good {
			good = rev
		}
	}
	if good == 0 {
		return nil
	}
	slices.SortFunc(crashing, func(a, b *podModel) int { return strings.Compare(a.name, b.name) })
	var lines []string
	refs := []wire.TelemetryRef{m.ref}
	for i, p := range crashing {
		if i < 5 {
			lines = append(lines, fmt.Sprintf("%s: %s", p.name, p.detail))
			refs = append(refs, p.ref)
		}
	}
	summary := fmt.Sprintf("%d of %d pods of revision %d of deployment %s are crash-looping (%s); revision %d was healthy",
		len(crashing), len(total), m.revision, key, strings.Join(lines, "; "), good)
	return []Intent{{Rollback: &wire.ProposeRollbackArgs{
		Namespace:    m.namespace,
		Name:         m.name,
		FromRevision: m.revision,
		ToRevision:   good,
		Common: wire.Common{
			Summary:     summary,
			Rationale:   fmt.Sprintf("Revision %d started failing right after it rolled out, while revision %d ran healthy; returning to revision %d restores the last known-good pod template.", m.revision, good, good),
			Risk:        "Low",
			Telemetry:   refs,
			Fingerprint: fmt.Sprintf("crashloop-rollback/%s/%s/revision-%d", m.namespace, m.name, m.revision),
		},
	}}}
}

func deploymentHealthy(st *bus.DeploymentState) bool {
	return st.Replicas > 0 && st.ObservedGeneration >= st.Generation &&
		st.UpdatedReplicas == st.Replicas && st.ReadyReplicas == st.Replicas &&
		st.AvailableReplicas == st.Replicas && st.UnavailableReplicas == 0
}

// reasonCode returns s if it is a short machine-readable reason such as
// CrashLoopBackOff or OOMKilled, and "" for anything else: free text in a
// reason field is never copied into a proposal.
func reasonCode(s string) string {
	if len(s) == 0 || len(s) > 64 {
		return ""
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return ""
		}
	}
	return s
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
