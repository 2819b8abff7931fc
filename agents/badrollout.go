package agents

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// BadRollout is the runbook for a rollout that broke a workload that ran
// healthy: the pods of the new template fail (crash loop, image pull, config
// error, unschedulable, a failing init container) or never become ready,
// while an earlier template ran healthy. A Deployment is rolled back to
// the last revision seen healthy; a StatefulSet or DaemonSet whose rollout
// changed images gets those images back (PatchWorkload, with a test of the
// current image so a newer change is never overwritten).
//
// It leaves alone a failure the template does not cause: a container
// OOMKilled under a memory limit the template does not set (a LimitRange
// default; see OOMKilled).
type BadRollout struct {
	// FailFor is how long a pod must fail before it counts. Default 4s.
	FailFor time.Duration
	// StallFor is how long a pod of the new template may stay not ready,
	// beyond its probes' start-up allowance, before the rollout counts as
	// stalled. Default 25s.
	StallFor time.Duration
}

var _ Runbook = (*BadRollout)(nil)

// Name implements Runbook.
func (r *BadRollout) Name() string { return "bad-rollout" }

func (r *BadRollout) failFor() time.Duration {
	if r.FailFor > 0 {
		return r.FailFor
	}
	return 4 * time.Second
}

func (r *BadRollout) stallFor() time.Duration {
	if r.StallFor > 0 {
		return r.StallFor
	}
	return 25 * time.Second
}

// Evaluate implements Runbook.
func (r *BadRollout) Evaluate(m *Model, now time.Time) []Intent {
	var out []Intent
	for _, key := range sortedKeys(m.Workloads) {
		w := m.Workloads[key]
		if w.Healthy {
			continue
		}
		var in *Intent
		if w.Deployment != nil {
			in = r.deployment(m, w, now)
		} else {
			in = r.imageRollout(m, w, now)
		}
		if in != nil {
			out = append(out, *in)
		}
	}
	return out
}

// badPod is one pod of the new template with what is wrong with it.
type badPod struct {
	pod    *Pod
	detail string
}

// judgePods returns the pods of pods that fail or stall, and whether their
// failures are all OOM kills under a memory limit the template does not set.
func (r *BadRollout) judgePods(pods []*Pod, template []bus.ContainerState, now time.Time) (bad []badPod, admissionOOM bool) {
	admissionOOM = true
	for _, p := range pods {
		if detail, failing := podFailure(p.State); failing && !p.FailingSince.IsZero() && now.Sub(p.FailingSince) >= r.failFor() {
			bad = append(bad, badPod{p, detail})
			if !oomUnderAdmittedLimit(p.State, template) {
				admissionOOM = false
			}
			continue
		}
		if !p.State.Ready && !p.NotReadySince.IsZero() && now.Sub(p.NotReadySince) >= r.stallFor()+startAllowance(p.State) {
			bad = append(bad, badPod{p, fmt.Sprintf("not ready for %ds", int(now.Sub(p.NotReadySince).Seconds()))})
			admissionOOM = false
		}
	}
	return bad, admissionOOM && len(bad) > 0
}

// oomUnderAdmittedLimit reports whether a pod's failing containers were
// OOMKilled under a memory limit that its template does not set.
func oomUnderAdmittedLimit(st *bus.PodState, template []bus.ContainerState) bool {
	any := false
	for i, c := range st.Containers {
		if _, failing := containerFailure(c, false); !failing {
			continue
		}
		if !oomKilled(c) || c.MemoryLimitBytes == 0 || i >= len(template) || template[i].Name != c.Name || template[i].MemoryLimitBytes != 0 {
			return false
		}
		any = true
	}
	return any
}

// startAllowance is how long a pod's probes allow it to start: the longest
// start-up probe budget or readiness initial delay of its containers.
func startAllowance(st *bus.PodState) time.Duration {
	var most int32
	for _, c := range st.Containers {
		if p := c.Startup; p != nil {
			most = max(most, p.InitialDelaySeconds+max(p.PeriodSeconds, 1)*max(p.FailureThreshold, 1))
		}
		if p := c.Readiness; p != nil {
			most = max(most, p.InitialDelaySeconds)
		}
	}
	return time.Duration(most) * time.Second
}

func (r *BadRollout) deployment(m *Model, w *Workload, now time.Time) *Intent {
	d := w.Deployment
	if d.Revision == 0 || w.HealthyRevisions[d.Revision] {
		// Unknown, or the current revision was healthy before: a failure
		// now is not this rollout's doing, and rolling back would not fix it.
		return nil
	}
	var good int64
	for rev := range w.HealthyRevisions {
		if rev < d.Revision && rev > good {
			good = rev
		}
	}
	if good == 0 {
		return nil
	}
	var pods []*Pod
	for _, p := range m.PodsOf(w.Key) {
		if p.State.Revision == d.Revision {
			pods = append(pods, p)
		}
	}
	bad, admissionOOM := r.judgePods(pods, d.Template, now)
	var lines []string
	refs := []wire.TelemetryRef{w.Ref}
	for i, b := range bad {
		if i < 5 {
			lines = append(lines, fmt.Sprintf("%s: %s", b.pod.Key.Name, b.detail))
			refs = append(refs, b.pod.Ref)
		}
	}
	var what string
	switch {
	case admissionOOM:
		return nil
	case len(bad) > 0:
		what = fmt.Sprintf("%d of %d pods of revision %d are failing (%s)", len(bad), len(pods), d.Revision, strings.Join(lines, "; "))
	case conditionIs(d.Conditions, "ReplicaFailure", "True", "") && now.Sub(w.At) >= r.failFor():
		what = fmt.Sprintf("the ReplicaSet of revision %d cannot create its pods (ReplicaFailure)", d.Revision)
	case conditionIs(d.Conditions, "Progressing", "False", "ProgressDeadlineExceeded"):
		what = fmt.Sprintf("revision %d did not progress within its deadline (ProgressDeadlineExceeded)", d.Revision)
	default:
		return nil
	}
	key := w.Key.Namespace + "/" + w.Key.Name
	return &Intent{Rollback: &wire.ProposeRollbackArgs{
		Namespace:    w.Key.Namespace,
		Name:         w.Key.Name,
		FromRevision: d.Revision,
		ToRevision:   good,
		Common: wire.Common{
			Summary:     fmt.Sprintf("Deployment %s broke in its rollout: %s; revision %d ran healthy.", key, what, good),
			Rationale:   fmt.Sprintf("Revision %d failed right after it rolled out, while revision %d ran healthy; returning to revision %d restores the last known-good pod template.", d.Revision, good, good),
			Risk:        "Low",
			Telemetry:   refs,
			Fingerprint: fmt.Sprintf("bad-rollout/%s/%s/revision-%d", w.Key.Namespace, w.Key.Name, d.Revision),
		},
	}}
}

// imageRollout handles a StatefulSet or DaemonSet whose rollout changed
// images and whose new pods fail: it puts the images it ran healthy with
// back.
func (r *BadRollout) imageRollout(m *Model, w *Workload, now time.Time) *Intent {
	st := w.State
	cur := st.Images
	if len(w.HealthyImages) == 0 || len(w.HealthyImages) != len(cur) || len(st.Template) != len(cur) {
		return nil
	}
	var changed []int
	for i := range cur {
		if cur[i] != w.HealthyImages[i] {
			changed = append(changed, i)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	// Pods of the new template: for a StatefulSet its update revision; for
	// a DaemonSet, pods that run the new images.
	var pods []*Pod
	for _, p := range m.PodsOf(w.Key) {
		if w.Key.Kind == KindStatefulSet {
			if st.UpdateRevision != "" && p.State.TemplateHash == st.UpdateRevision {
				pods = append(pods, p)
			}
			continue
		}
		if podRunsImages(p.State, cur) {
			pods = append(pods, p)
		}
	}
	bad, admissionOOM := r.judgePods(pods, st.Template, now)
	if len(bad) == 0 || admissionOOM {
		return nil
	}
	patch := make([]wire.PatchOp, 0, 2*len(changed))
	var names []string
	for _, i := range changed {
		path := fmt.Sprintf("/spec/template/spec/containers/%d/image", i)
		oldV, _ := json.Marshal(cur[i])
		newV, _ := json.Marshal(w.HealthyImages[i])
		patch = append(patch, wire.PatchOp{Op: "test", Path: path, Value: oldV}, wire.PatchOp{Op: "replace", Path: path, Value: newV})
		names = append(names, textName(st.Template[i].Name))
	}
	refs := []wire.TelemetryRef{w.Ref, w.HealthyRef}
	var lines []string
	for i, b := range bad {
		if i < 5 {
			lines = append(lines, fmt.Sprintf("%s: %s", b.pod.Key.Name, b.detail))
			refs = append(refs, b.pod.Ref)
		}
	}
	key := w.Key.Namespace + "/" + w.Key.Name
	return &Intent{PatchWorkload: &wire.PatchWorkloadArgs{
		WorkloadArgs: wire.WorkloadArgs{Namespace: w.Key.Namespace, Kind: w.Key.Kind, Name: w.Key.Name},
		Patch:        patch,
		Common: wire.Common{
			Summary: fmt.Sprintf("%s %s broke in a rollout that changed the image of container %s: %d of %d new pods are failing (%s); it ran healthy on its previous images.",
				w.Key.Kind, key, strings.Join(names, ", "), len(bad), len(pods), strings.Join(lines, "; ")),
			Rationale:   "The rollout changed only what this patch puts back; the previous images ran healthy, so returning to them restores the last known-good pods.",
			Risk:        "Low",
			Telemetry:   refs,
			Fingerprint: fmt.Sprintf("bad-rollout/%s/%s/%s/images-%s", strings.ToLower(w.Key.Kind), w.Key.Namespace, w.Key.Name, wire.Digest(strings.Join(cur, ","))[:12]),
		},
	}}
}

// podRunsImages reports whether a pod's containers are those images.
func podRunsImages(st *bus.PodState, images []string) bool {
	if len(st.Containers) != len(images) {
		return false
	}
	for i, c := range st.Containers {
		if c.Image != images[i] && !strings.HasSuffix(c.Image, "/"+images[i]) {
			return false
		}
	}
	return true
}

// conditionIs reports whether conds has condition t with status, and with
// reason when reason is not empty.
func conditionIs(conds []bus.Condition, t, status, reason string) bool {
	c := condition(conds, t)
	return c != nil && c.Status == status && (reason == "" || c.Reason == reason)
}
