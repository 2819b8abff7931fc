package agents

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tendops/tend/mcp/wire"
)

// The hybrid brain's hand-off: the planner gets what the model shows
// unhealthy, by typed facts, that no runbook claims. Runbooks come first:
// an object is handed over only once it has stayed unhealthy for a settle
// time longer than every runbook's window, and only if no runbook proposed
// for it, or escalated it with a diagnosis of its own (a finding of a
// runbook other than the catch-all escalate, whose findings are what the
// hand-off is for).

// DefaultHandoffSettle is how long an object must stay unhealthy before the
// hybrid brain hands it to the planner: as long as escalate waits, longer
// than every other runbook's window, so that a runbook's fix comes first.
const DefaultHandoffSettle = 30 * time.Second

// DefaultHandoffCooldown is how long after handing an object over the
// hybrid brain waits before it hands the same object over again, whatever
// became of the first run: time for the planner's proposals to be decided
// and applied, and a bound on what one object can cost.
const DefaultHandoffCooldown = 10 * time.Minute

// StartGrace is added to the settle time of a pod that is not ready but
// does not fail (it waits to be scheduled, for its image or its volumes,
// or for its probes), and is the least age of a Service before its
// selecting no pod counts: a new workload on a slow node or registry is
// starting, not failing. A pod that fails by a reason the kubelet or the
// scheduler names (CrashLoopBackOff, ImagePullBackOff, Unschedulable) gets
// no grace.
const StartGrace = 90 * time.Second

// catchAll is the runbook whose findings claim nothing: it reports what no
// runbook before it had a fix for.
const catchAll = "escalate"

// ailment is one object the model shows unhealthy.
type ailment struct {
	key ObjectKey
	// since is the earliest time the model's own records show it unhealthy
	// (a pod's FailingSince, a node's NotReadySince), zero when they do not
	// say; the hand-off also counts from when it first judged it unhealthy.
	since time.Time
	// allowance is added to the settle time: the start-up its probes allow
	// a pod that is not ready yet.
	allowance time.Duration
	// notBefore, if set, is the earliest it is handed over: a new object
	// gets StartGrace to come up.
	notBefore time.Time
	// fault says what is wrong, from typed facts and codes only.
	fault string
	refs  []wire.TelemetryRef
	// causes are the objects whose own fault or claim explains this one
	// (the node its failing pods run on, the workload a Service selects,
	// an autoscaler's target): it is part of their incident, not its own.
	causes []ObjectKey
}

// handed is what the agent remembers of one object it handed over.
type handed struct {
	at      time.Time
	running bool
}

// ailments lists every object the model shows unhealthy now, by typed
// facts: a node NotReady or under pressure; a workload with desired
// replicas whose pods fail or stay not ready, whose rollout stopped
// progressing or cannot create pods, or that has fewer ready replicas than
// desired with no rollout under way; a pod of no workload that fails or is
// not ready; a Service with a selector and no ready pod behind it; an
// autoscaler that cannot scale; a Job (or a CronJob's newest Job) that
// failed or whose pods fail. A pod of a workload is part of its workload's
// ailment, never one of its own.
func (m *Model) ailments() []ailment {
	var out []ailment
	for _, name := range sortedNodeNames(m) {
		n := m.Nodes[name]
		a := ailment{key: ObjectKey{Kind: "Node", Name: name}, refs: []wire.TelemetryRef{n.Ref}}
		switch {
		case !n.State.Ready:
			a.since, a.fault = n.NotReadySince, fmt.Sprintf("Node %s is NotReady.", name)
		case nodePressure(n.State) != "":
			a.since, a.fault = n.PressureSince, fmt.Sprintf("Node %s reports %s.", name, nodePressure(n.State))
		default:
			continue
		}
		out = append(out, a)
	}
	for _, key := range sortedKeys(m.Workloads) {
		if a, ok := m.workloadAilment(m.Workloads[key]); ok {
			out = append(out, a)
		}
	}
	for _, key := range sortedKeys(m.Pods) {
		p := m.Pods[key]
		if p.Workload.Kind != "" {
			continue
		}
		detail, since, ok := podAilment(p)
		if !ok {
			continue
		}
		a := ailment{key: key, since: since, allowance: podAllowance(p), refs: []wire.TelemetryRef{p.Ref},
			fault: fmt.Sprintf("Pod %s/%s, of no workload, is unhealthy: %s.", key.Namespace, key.Name, detail)}
		if validObject("", p.State.NodeName) {
			a.causes = append(a.causes, ObjectKey{Kind: "Node", Name: p.State.NodeName})
		}
		out = append(out, a)
	}
	for _, key := range sortedKeys(m.Services) {
		if a, ok := m.serviceAilment(m.Services[key]); ok {
			out = append(out, a)
		}
	}
	for _, key := range sortedKeys(m.Autoscalers) {
		h := m.Autoscalers[key]
		c := condition(h.State.Conditions, "AbleToScale")
		if c == nil || c.Status != "False" {
			continue
		}
		a := ailment{key: key, since: h.UnableSince, refs: []wire.TelemetryRef{h.Ref},
			fault: fmt.Sprintf("Autoscaler %s/%s cannot scale its target (AbleToScale=False, %s).", key.Namespace, key.Name, orDefault(reasonCode(c.Reason), "no reason"))}
		if validObject("", h.State.Target.Name) && reasonCode(h.State.Target.Kind) != "" {
			a.causes = append(a.causes, ObjectKey{Kind: h.State.Target.Kind, Namespace: key.Namespace, Name: h.State.Target.Name})
		}
		out = append(out, a)
	}
	return append(out, m.jobAilments()...)
}

func sortedNodeNames(m *Model) []string {
	names := make([]string, 0, len(m.Nodes))
	for name := range m.Nodes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// podAilment says whether a pod is unhealthy (failing, or not ready and not
// done), and since when by the model's records.
func podAilment(p *Pod) (string, time.Time, bool) {
	if detail, failing := podFailure(p.State); failing {
		return detail, p.FailingSince, true
	}
	if p.State.Ready || p.State.Phase == "Succeeded" {
		return "", time.Time{}, false
	}
	return fmt.Sprintf("not ready (phase %s)", orDefault(reasonCode(p.State.Phase), "unknown")), p.NotReadySince, true
}

// podAllowance is what a pod that is not ready gets beyond the settle time:
// the start-up its probes allow, and StartGrace unless it fails (a pod
// that is only slow to start or to pass its probes is not failing).
func podAllowance(p *Pod) time.Duration {
	allow := startAllowance(p.State)
	if _, failing := podFailure(p.State); failing {
		return allow
	}
	return max(allow, StartGrace)
}

// workloadAilment judges a workload with desired replicas (one scaled to
// zero has nothing to serve; a Service that still selects it speaks for it).
func (m *Model) workloadAilment(w *Workload) (ailment, bool) {
	want := w.Replicas()
	if want == 0 {
		return ailment{}, false
	}
	a := ailment{key: w.Key, refs: []wire.TelemetryRef{w.Ref}}
	var facts []string
	bad := 0
	for _, p := range m.PodsOf(w.Key) {
		detail, since, ok := podAilment(p)
		if !ok {
			continue
		}
		if bad == 0 {
			facts = append(facts, fmt.Sprintf("pod %s: %s", p.Key.Name, detail))
		}
		bad++
		if len(a.refs) < 6 {
			a.refs = append(a.refs, p.Ref)
		}
		if !since.IsZero() && (a.since.IsZero() || since.Before(a.since)) {
			a.since = since
		}
		a.allowance = max(a.allowance, podAllowance(p))
		if validObject("", p.State.NodeName) {
			node := ObjectKey{Kind: "Node", Name: p.State.NodeName}
			if !slices.Contains(a.causes, node) {
				a.causes = append(a.causes, node)
			}
		}
	}
	var ready, available, updated int32
	rolling := false
	if d := w.Deployment; d != nil {
		ready, available, updated = d.ReadyReplicas, d.AvailableReplicas, d.UpdatedReplicas
		if c := condition(d.Conditions, "Progressing"); c != nil && c.Status == "False" {
			facts = append(facts, fmt.Sprintf("its rollout stopped progressing (%s)", orDefault(reasonCode(c.Reason), "no reason")))
		} else {
			rolling = updated < want || d.ObservedGeneration < d.Generation
		}
		if c := condition(d.Conditions, "ReplicaFailure"); c != nil && c.Status == "True" {
			facts = append(facts, fmt.Sprintf("its ReplicaSet cannot create pods (%s)", orDefault(reasonCode(c.Reason), "no reason")))
		}
	} else {
		ready, available, updated = w.State.ReadyReplicas, w.State.ReadyReplicas, w.State.UpdatedReplicas
		rolling = updated < want || w.State.ObservedGeneration < w.State.Generation
	}
	if !rolling && (ready < want || available < want) && bad == 0 {
		facts = append(facts, "fewer replicas ready than desired, with no rollout under way")
	}
	if bad > 1 {
		facts = append(facts, fmt.Sprintf("%d of its pods are unhealthy", bad))
	}
	if len(facts) == 0 {
		return ailment{}, false
	}
	a.fault = fmt.Sprintf("%s %s/%s: %d replicas desired, %d ready, %d available, %d updated; %s.",
		w.Key.Kind, w.Key.Namespace, w.Key.Name, want, ready, available, updated, strings.Join(facts, "; "))
	return a, true
}

// serviceAilment judges a Service with a selector: no ready pod of its
// namespace matches it. The workloads it selects (by their pods' labels)
// are its causes.
func (m *Model) serviceAilment(s *Service) (ailment, bool) {
	sel := s.State.Selector
	if len(sel) == 0 {
		return ailment{}, false
	}
	matched := 0
	a := ailment{key: s.Key, refs: []wire.TelemetryRef{s.Ref}}
	for _, key := range sortedKeys(m.Pods) {
		p := m.Pods[key]
		if key.Namespace != s.Key.Namespace || !selects(sel, p.State.Labels) {
			continue
		}
		if p.State.Ready {
			return ailment{}, false
		}
		matched++
		if p.Workload.Kind != "" && !slices.Contains(a.causes, p.Workload) {
			a.causes = append(a.causes, p.Workload)
		}
	}
	for _, key := range sortedKeys(m.Workloads) {
		if w := m.Workloads[key]; key.Namespace == s.Key.Namespace && selects(sel, w.PodLabels) && !slices.Contains(a.causes, key) {
			a.causes = append(a.causes, key)
			a.refs = append(a.refs, w.Ref)
		}
	}
	if matched == 0 {
		// A new Service may come before its pods.
		a.notBefore = s.FirstSeen.Add(StartGrace)
		a.fault = fmt.Sprintf("Service %s/%s has no endpoints: its selector matches no pod.", s.Key.Namespace, s.Key.Name)
	} else {
		a.fault = fmt.Sprintf("Service %s/%s has no ready endpoints: none of the %d pods its selector matches is ready.", s.Key.Namespace, s.Key.Name, matched)
	}
	return a, true
}

// jobAilments judges the Jobs: one that is not complete and failed (its
// Failed condition) or whose pods fail. A CronJob's Jobs are judged by its
// newest one, and the ailment is the CronJob's.
func (m *Model) jobAilments() []ailment {
	newest := map[ObjectKey]*Job{}
	var jobs []*Job
	for _, key := range sortedKeys(m.Jobs) {
		j := m.Jobs[key]
		o := j.State.Owner
		if o == nil || o.Kind != "CronJob" || !validObject("", o.Name) {
			jobs = append(jobs, j)
			continue
		}
		ck := ObjectKey{Kind: "CronJob", Namespace: key.Namespace, Name: o.Name}
		if n := newest[ck]; n == nil || newerJob(j, n) {
			newest[ck] = j
		}
	}
	for _, ck := range sortedKeys(newest) {
		jobs = append(jobs, newest[ck])
	}
	var out []ailment
	for _, j := range jobs {
		if j.completed() {
			continue
		}
		a := ailment{key: j.Key, refs: []wire.TelemetryRef{j.Ref}}
		if o := j.State.Owner; o != nil && o.Kind == "CronJob" && validObject("", o.Name) {
			a.key = ObjectKey{Kind: "CronJob", Namespace: j.Key.Namespace, Name: o.Name}
		}
		var facts []string
		if c := condition(j.State.Conditions, "Failed"); c != nil && c.Status == "True" {
			facts = append(facts, fmt.Sprintf("it failed (%s, %d failed pods)", orDefault(reasonCode(c.Reason), "no reason"), j.State.Failed))
		}
		for _, p := range m.PodsOf(j.Key) {
			detail, failing := podFailure(p.State)
			if !failing {
				continue
			}
			if len(a.refs) < 6 {
				a.refs = append(a.refs, p.Ref)
			}
			if len(facts) < 2 {
				facts = append(facts, fmt.Sprintf("pod %s: %s", p.Key.Name, detail))
			}
			if !p.FailingSince.IsZero() && (a.since.IsZero() || p.FailingSince.Before(a.since)) {
				a.since = p.FailingSince
			}
			if validObject("", p.State.NodeName) {
				if node := (ObjectKey{Kind: "Node", Name: p.State.NodeName}); !slices.Contains(a.causes, node) {
					a.causes = append(a.causes, node)
				}
			}
		}
		if len(facts) == 0 {
			continue
		}
		what := "Job " + j.Key.Namespace + "/" + j.Key.Name
		if a.key.Kind == "CronJob" {
			what = fmt.Sprintf("CronJob %s/%s: its newest Job %s", a.key.Namespace, a.key.Name, j.Key.Name)
		}
		a.fault = fmt.Sprintf("%s does not complete: %s.", what, strings.Join(facts, "; "))
		out = append(out, a)
	}
	return out
}

// newerJob reports whether a started after b (by start time, then name).
func newerJob(a, b *Job) bool {
	if !a.State.StartTime.Equal(b.State.StartTime) {
		return a.State.StartTime.After(b.State.StartTime)
	}
	return a.Key.Name > b.Key.Name
}

// object is the object an intent is about (its target, or its finding's
// object), ok false when it names none.
func (i Intent) object() (ObjectKey, bool) {
	if f := i.Finding; f != nil {
		return ObjectKey{Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}, true
	}
	_, args, ok := i.Call()
	if !ok {
		return ObjectKey{}, false
	}
	d, err := wire.Validate(args)
	if err != nil {
		return ObjectKey{}, false
	}
	return ObjectKey{Kind: d.Target.Kind, Namespace: d.Target.Namespace, Name: d.Target.Name}, true
}

// claims are the objects the runbooks claim in one judgement: those their
// intents are about (and cover), except the catch-all's findings, and those
// a runbook proposed for within the target hold. A claimed pod claims its
// workload. The agent's lock is held.
func (a *Agent) claimsLocked(m *Model, now time.Time, intents []Intent) map[ObjectKey]bool {
	claimed := map[ObjectKey]bool{}
	add := func(k ObjectKey) {
		claimed[k] = true
		if p := m.Pods[k]; k.Kind == "Pod" && p != nil && p.Workload.Kind != "" {
			claimed[p.Workload] = true
		}
	}
	for _, in := range intents {
		if in.Finding != nil && in.Runbook == catchAll {
			continue
		}
		if k, ok := in.object(); ok {
			add(k)
		}
		for _, k := range in.Covers {
			add(k)
		}
	}
	hold := a.TargetHold
	if hold <= 0 {
		hold = DefaultTargetHold
	}
	for _, h := range a.held {
		if h.runbook != "" && h.key.Kind != "" && now.Sub(h.at) < hold {
			add(h.key)
		}
	}
	return claimed
}

// handoffsLocked returns the problems the hybrid brain hands the planner in
// this judgement, and marks them handed over: each object unhealthy past
// the settle time (from the earlier of the model's record and the agent's
// first judgement of it), that no runbook claims, that no claimed or
// unhealthy object explains, and that was not handed over within the
// cooldown and is not being planned now. The catch-all's findings about
// the object go with it. The agent's lock is held.
func (a *Agent) handoffsLocked(m *Model, now time.Time, intents []Intent) []Problem {
	settle, cooldown := a.HandoffSettle, a.HandoffCooldown
	if settle <= 0 {
		settle = DefaultHandoffSettle
	}
	if cooldown <= 0 {
		cooldown = DefaultHandoffCooldown
	}
	ails := m.ailments()
	sick := map[ObjectKey]time.Time{}
	for _, ai := range ails {
		first, ok := a.sick[ai.key]
		if !ok {
			first = now
		}
		sick[ai.key] = first
	}
	// An object that recovers is forgotten: if it fails again, it settles
	// again.
	a.sick = sick
	claimed := a.claimsLocked(m, now, intents)
	// free maps the objects that are unhealthy, unclaimed and unexplained
	// to when the agent first judged them so: the settle time also counts
	// from there, so that an object a runbook stops claiming (its fix is
	// rolling out, its namespace is being deleted) is not handed over at
	// once.
	free := map[ObjectKey]time.Time{}
	defer func() { a.free = free }()
	findings := map[ObjectKey][]*Finding{}
	for _, in := range intents {
		if f := in.Finding; f != nil && in.Runbook == catchAll {
			k := ObjectKey{Kind: f.Kind, Namespace: f.Namespace, Name: f.Name}
			findings[k] = append(findings[k], f)
		}
	}
	if a.handed == nil || len(a.handed) >= maxRemembered {
		for k, h := range a.handed {
			if !h.running && now.Sub(h.at) >= cooldown {
				delete(a.handed, k)
			}
		}
		if a.handed == nil {
			a.handed = map[ObjectKey]handed{}
		}
	}
	var out []Problem
	for _, ai := range ails {
		if claimed[ai.key] {
			continue
		}
		explained := false
		for _, c := range ai.causes {
			if _, sick := sick[c]; claimed[c] || (sick && c != ai.key) {
				explained = true
				break
			}
		}
		if explained {
			continue
		}
		freed, ok := a.free[ai.key]
		if !ok {
			freed = now
		}
		free[ai.key] = freed
		since := sick[ai.key]
		if !ai.since.IsZero() && ai.since.Before(since) {
			since = ai.since
		}
		if now.Sub(since) < settle+ai.allowance || now.Sub(freed) < settle || now.Before(ai.notBefore) {
			continue
		}
		if h, ok := a.handed[ai.key]; ok && (h.running || now.Sub(h.at) < cooldown) {
			continue
		}
		if len(a.handed) >= maxRemembered {
			break
		}
		a.handed[ai.key] = handed{at: now, running: true}
		p := Problem{
			ID:        "inc-" + wire.Digest("handoff/" + ai.key.String() + "/" + since.UTC().Format(time.RFC3339Nano))[:20],
			Object:    ai.key,
			Summary:   ai.fault,
			Evidence:  ai.refs,
			Telemetry: m.telemetryOf(ai.key),
		}
		for _, f := range findings[ai.key] {
			p.Summary += " " + f.Fault + " " + f.Advice
			for _, r := range f.Evidence {
				if !slices.Contains(p.Evidence, r) {
					p.Evidence = append(p.Evidence, r)
				}
			}
		}
		out = append(out, p)
	}
	return out
}

// handedBack records the end of the planner's run on an object (or that it
// never started), for the cooldown.
func (a *Agent) handedBack(key ObjectKey, started bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	h, ok := a.handed[key]
	if !ok {
		return
	}
	if !started {
		delete(a.handed, key)
		return
	}
	h.running = false
	a.handed[key] = h
}
