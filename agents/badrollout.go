package agents

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// BadRollout is the runbook for a rollout that broke a workload that ran
// healthy: the pods of the new template fail (crash loop, image pull, config
// error, unschedulable, a failing init container) or never become ready,
// while an earlier template ran healthy. A Deployment is rolled back to
// the last revision seen healthy; a StatefulSet or DaemonSet to the revision
// before its broken one (its ControllerRevisions; the gate approves the
// rollback only on the controller's record that the revision ran healthy).
//
// It leaves alone a failure the template does not cause: a container
// OOMKilled under a memory limit the template does not set (a LimitRange
// default; see OOMKilled), and a Deployment whose revisions after the
// healthy one failed twice (a rollback was tried and did not help).
//
// One cause, one proposal: when StormSize or more Deployments of a
// namespace start failing within StormWindow of each other, the cause is
// likely shared (a ConfigMap, a Secret, a dependency). Only the first is
// rolled back, as a canary; once a rollback of the group did not help, the
// group gets one finding instead of more rollbacks.
type BadRollout struct {
	// FailFor is how long a pod must fail before it counts. Default 4s.
	FailFor time.Duration
	// StallFor is how long a pod of the new template may stay not ready,
	// beyond its probes' start-up allowance, before the rollout counts as
	// stalled. Default 25s.
	StallFor time.Duration
	// StormSize is how many Deployments failing together make a storm.
	// Default 3.
	StormSize int
	// StormWindow is how close together their failures start. Default 2m.
	StormWindow time.Duration
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
	byNamespace := map[string][]*Workload{}
	rollbacks := map[ObjectKey]Intent{}
	for _, key := range sortedKeys(m.Workloads) {
		w := m.Workloads[key]
		if w.Healthy {
			continue
		}
		if w.Deployment != nil {
			if w.rollbackFailed() {
				byNamespace[key.Namespace] = append(byNamespace[key.Namespace], w)
				continue
			}
			if in := r.deployment(m, w, now); in != nil {
				byNamespace[key.Namespace] = append(byNamespace[key.Namespace], w)
				rollbacks[key] = *in
			}
			continue
		}
		if in := r.revisionRollout(m, w, now); in != nil {
			out = append(out, *in)
		}
	}
	namespaces := make([]string, 0, len(byNamespace))
	for ns := range byNamespace {
		namespaces = append(namespaces, ns)
	}
	slices.Sort(namespaces)
	for _, ns := range namespaces {
		for _, group := range r.storms(byNamespace[ns]) {
			if len(group) < r.stormSize() {
				for _, w := range group {
					if in, ok := rollbacks[w.Key]; ok {
						out = append(out, in)
					}
				}
				continue
			}
			if in := r.storm(group, rollbacks); in != nil {
				out = append(out, *in)
			}
		}
	}
	return out
}

func (r *BadRollout) stormSize() int {
	if r.StormSize > 0 {
		return r.StormSize
	}
	return 3
}

// storms splits a namespace's failing Deployments into groups whose
// failures started within StormWindow of each other.
func (r *BadRollout) storms(ws []*Workload) [][]*Workload {
	window := r.StormWindow
	if window <= 0 {
		window = 2 * time.Minute
	}
	sorted := slices.Clone(ws)
	slices.SortStableFunc(sorted, func(a, b *Workload) int { return a.failingSince().Compare(b.failingSince()) })
	var groups [][]*Workload
	for _, w := range sorted {
		if n := len(groups); n > 0 && w.failingSince().Sub(groups[n-1][0].failingSince()) <= window {
			groups[n-1] = append(groups[n-1], w)
			continue
		}
		groups = append(groups, []*Workload{w})
	}
	for _, g := range groups {
		slices.SortFunc(g, func(a, b *Workload) int { return strings.Compare(a.Key.Name, b.Key.Name) })
	}
	return groups
}

// storm is the one intent for a group of Deployments failing together: a
// canary rollback of the first, or, once a rollback of the group did not
// help, a finding about the shared cause.
func (r *BadRollout) storm(group []*Workload, rollbacks map[ObjectKey]Intent) *Intent {
	var names []string
	refs := []wire.TelemetryRef{}
	tried := false
	covers := make([]ObjectKey, 0, len(group))
	for i, w := range group {
		covers = append(covers, w.Key)
		if i < 10 {
			names = append(names, w.Key.Name)
			refs = append(refs, w.Ref)
		}
		tried = tried || w.rollbackFailed()
	}
	if !tried {
		for _, w := range group {
			if in, ok := rollbacks[w.Key]; ok {
				in.Rollback.Summary = fmt.Sprintf("%d Deployments of namespace %s started failing together (%s); rolling back %s first, as a canary: %s",
					len(group), w.Key.Namespace, strings.Join(names, ", "), w.Key.Name, in.Rollback.Summary)
				in.Covers = covers
				return &in
			}
		}
		return nil
	}
	ns := group[0].Key.Namespace
	return &Intent{Finding: &Finding{
		Kind: "Namespace", Name: ns,
		Fault: fmt.Sprintf("%d Deployments of namespace %s started failing together (%s), and rolling one back did not help: the cause is likely shared (a ConfigMap, a Secret or a dependency they all use).",
			len(group), ns, strings.Join(names, ", ")),
		Advice:      "Find what these workloads share that changed when they started failing, and restore it; their rollouts are not the cause.",
		Evidence:    refs,
		Fingerprint: fmt.Sprintf("bad-rollout/storm/%s/%s", ns, wire.Digest(strings.Join(names, ","))[:12]),
	}, Covers: covers}
}

// badPod is one pod of the new template with what is wrong with it.
type badPod struct {
	pod    *Pod
	detail string
}

// judgePods returns the pods of pods that fail or stall, and whether their
// failures are all OOM kills under a memory limit the template does not set.
func (r *BadRollout) judgePods(m *Model, pods []*Pod, template []bus.ContainerState, now time.Time) (bad []badPod, admissionOOM bool) {
	admissionOOM = true
	for _, p := range pods {
		if detail, failing := podFailure(p.State); failing && !p.FailingSince.IsZero() && m.lasted(p.FailingSince, r.failFor(), now) {
			bad = append(bad, badPod{p, detail})
			if !oomUnderAdmittedLimit(p.State, template) {
				admissionOOM = false
			}
			continue
		}
		if !p.State.Ready && !p.NotReadySince.IsZero() && m.lasted(p.NotReadySince, r.stallFor()+startAllowance(p.State), now) {
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
	bad, admissionOOM := r.judgePods(m, pods, d.Template, now)
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
	case conditionIs(d.Conditions, "ReplicaFailure", "True", "") && m.lasted(w.At, r.failFor(), now):
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

// revisionRollout handles a StatefulSet or DaemonSet whose rollout broke
// it: a StatefulSet whose update revision is not the one it ran healthy at,
// or a DaemonSet whose images are not those it ran healthy with, and whose
// pods of the new template fail. It proposes rolling it back to the
// revision before (the controller resolves it from the ControllerRevisions
// and the gate approves it on its record of having run healthy).
func (r *BadRollout) revisionRollout(m *Model, w *Workload, now time.Time) *Intent {
	st := w.State
	cur := st.Images
	var what, change string
	switch w.Key.Kind {
	case KindStatefulSet:
		if w.HealthyRevision == "" || st.UpdateRevision == "" || st.UpdateRevision == w.HealthyRevision {
			return nil
		}
		what, change = "a rollout of a new revision", st.UpdateRevision
	case KindDaemonSet:
		if len(w.HealthyImages) == 0 || len(w.HealthyImages) != len(cur) || len(st.Template) != len(cur) {
			return nil
		}
		var names []string
		for i := range cur {
			if cur[i] != w.HealthyImages[i] {
				names = append(names, textName(st.Template[i].Name))
			}
		}
		if len(names) == 0 {
			return nil
		}
		what, change = "a rollout that changed the image of container "+strings.Join(names, ", "), strings.Join(cur, ",")
	default:
		return nil
	}
	// Pods of the new template: for a StatefulSet its update revision; for
	// a DaemonSet, pods that run the new images.
	var pods []*Pod
	for _, p := range m.PodsOf(w.Key) {
		if w.Key.Kind == KindStatefulSet {
			if p.State.TemplateHash == st.UpdateRevision {
				pods = append(pods, p)
			}
			continue
		}
		if podRunsImages(p.State, cur) {
			pods = append(pods, p)
		}
	}
	bad, admissionOOM := r.judgePods(m, pods, st.Template, now)
	if len(bad) == 0 || admissionOOM {
		return nil
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
	return &Intent{Rollback: &wire.ProposeRollbackArgs{
		Namespace: w.Key.Namespace,
		Kind:      w.Key.Kind,
		Name:      w.Key.Name,
		Common: wire.Common{
			Summary: fmt.Sprintf("%s %s broke in %s: %d of %d new pods are failing (%s); its previous revision ran healthy.",
				w.Key.Kind, key, what, len(bad), len(pods), strings.Join(lines, "; ")),
			Rationale:   "The pods of the new template fail while those of the previous one ran healthy; returning to the previous revision restores the last known-good pod template.",
			Risk:        "Low",
			Telemetry:   refs,
			Fingerprint: fmt.Sprintf("bad-rollout/%s/%s/%s/%s", strings.ToLower(w.Key.Kind), w.Key.Namespace, w.Key.Name, wire.Digest(change)[:12]),
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
