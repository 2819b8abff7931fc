package agents

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// ObjectKey names one object of the model. Namespace is empty for nodes.
type ObjectKey struct {
	Kind      string
	Namespace string
	Name      string
}

func (k ObjectKey) String() string {
	if k.Namespace == "" {
		return k.Kind + "/" + k.Name
	}
	return k.Kind + "/" + k.Namespace + "/" + k.Name
}

// Workload kinds of the model.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
)

// KindNetworkPolicy is the kind of the model's NetworkPolicies.
const KindNetworkPolicy = "NetworkPolicy"

// Model is an agent's view of the cluster, folded from telemetry. Only
// objects with valid Kubernetes names enter it; a message older than what
// the model holds for its object (out of order, or redelivered) changes
// nothing.
type Model struct {
	Workloads   map[ObjectKey]*Workload
	Pods        map[ObjectKey]*Pod
	Nodes       map[string]*Node
	Services    map[ObjectKey]*Service
	Autoscalers map[ObjectKey]*Autoscaler
	Jobs        map[ObjectKey]*Job
	CronJobs    map[ObjectKey]*CronJob
	// NetworkPolicies are the policies, with the ingress each had before
	// its last change.
	NetworkPolicies map[ObjectKey]*NetworkPolicy

	// policiesGone maps a deleted policy to the time of its tombstone:
	// an older message about it (redelivered, out of order) does not bring
	// it back.
	policiesGone map[ObjectKey]time.Time

	// judgeAt is the earliest time a runbook's window ends that has not
	// ended by the last judgement (see lasted); zero when none is pending.
	judgeAt time.Time
}

// lasted reports whether a condition that has held since since has held
// for d by now. When it has not yet, the model remembers when it will
// have, so that the agent judges again then instead of on its next tick:
// a runbook's window costs its length, not its length plus a tick.
func (m *Model) lasted(since time.Time, d time.Duration, now time.Time) bool {
	if now.Sub(since) >= d {
		return true
	}
	if at := since.Add(d); m.judgeAt.IsZero() || at.Before(m.judgeAt) {
		m.judgeAt = at
	}
	return false
}

// NewModel returns an empty model.
func NewModel() *Model {
	return &Model{
		Workloads: map[ObjectKey]*Workload{}, Pods: map[ObjectKey]*Pod{}, Nodes: map[string]*Node{},
		Services: map[ObjectKey]*Service{}, Autoscalers: map[ObjectKey]*Autoscaler{}, Jobs: map[ObjectKey]*Job{}, CronJobs: map[ObjectKey]*CronJob{},
		NetworkPolicies: map[ObjectKey]*NetworkPolicy{}, policiesGone: map[ObjectKey]time.Time{},
	}
}

// Seen is what every object of the model records about its last message.
type Seen struct {
	// Ref cites the message.
	Ref wire.TelemetryRef
	// At is the message's time (the sensor's clock).
	At time.Time
}

// Workload is a Deployment, StatefulSet or DaemonSet.
type Workload struct {
	Key ObjectKey
	Seen
	// Deployment is set for a Deployment, State for the other kinds.
	Deployment *bus.DeploymentState
	State      *bus.WorkloadState
	// HealthyRevisions are the Deployment revisions seen healthy.
	HealthyRevisions map[int64]bool
	// HealthyImages are the template's images when the workload was last
	// seen healthy, HealthyRevision its StatefulSet revision then.
	HealthyImages   []string
	HealthyRevision string
	// HealthyReplicas is the replica count when it was last seen healthy
	// with at least one replica.
	HealthyReplicas int32
	// HealthyRef cites the message that showed it healthy.
	HealthyRef wire.TelemetryRef
	// Healthy is whether the last message showed it healthy.
	Healthy bool
	// ScaledToZeroAt is when the workload was first seen with no replicas
	// after running healthy with some.
	ScaledToZeroAt time.Time
	// FailedRevisions are the Deployment revisions whose pods were seen
	// failing, with when first.
	FailedRevisions map[int64]time.Time
	// PodLabels are the labels of its pods, as last seen on one, and
	// PodPorts the ports its pods' containers declare.
	PodLabels map[string]string
	PodPorts  []bus.ContainerPort
}

// Images are the workload's current template images.
func (w *Workload) Images() []string {
	if w.Deployment != nil {
		return w.Deployment.Images
	}
	return w.State.Images
}

// templateContainer is what a workload's template declares for one
// container.
type templateContainer struct {
	name        string
	memoryLimit int64
}

// template is the workload's template's containers, in order.
func (w *Workload) template() []templateContainer {
	var cs []bus.ContainerState
	if w.Deployment != nil {
		cs = w.Deployment.Template
	} else {
		cs = w.State.Template
	}
	out := make([]templateContainer, len(cs))
	for i, c := range cs {
		out[i] = templateContainer{name: c.Name, memoryLimit: c.MemoryLimitBytes}
	}
	return out
}

// hasHealthyEarlierRevision reports whether a Deployment revision before
// the current one ran healthy.
func (w *Workload) hasHealthyEarlierRevision() bool {
	if w.Deployment == nil {
		return false
	}
	for rev := range w.HealthyRevisions {
		if rev < w.Deployment.Revision {
			return true
		}
	}
	return false
}

// failingSince is when the first of its Deployment revisions after the
// last healthy one was seen failing; zero if none was.
func (w *Workload) failingSince() time.Time {
	var first time.Time
	for rev, at := range w.FailedRevisions {
		if w.HealthyRevisions[rev] || !w.newerThanHealthy(rev) {
			continue
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return first
}

// newerThanHealthy reports whether rev is after every revision seen healthy.
func (w *Workload) newerThanHealthy(rev int64) bool {
	for h := range w.HealthyRevisions {
		if h >= rev {
			return false
		}
	}
	return true
}

// rollbackFailed reports whether two or more revisions after the last
// healthy one were seen failing: a rollback was tried (it makes a new
// revision) and the workload failed again.
func (w *Workload) rollbackFailed() bool {
	n := 0
	for rev := range w.FailedRevisions {
		if w.newerThanHealthy(rev) {
			n++
		}
	}
	return n >= 2
}

// Replicas is the desired replica count.
func (w *Workload) Replicas() int32 {
	if w.Deployment != nil {
		return w.Deployment.Replicas
	}
	return w.State.Replicas
}

// Pod is one pod.
type Pod struct {
	Key ObjectKey
	Seen
	State *bus.PodState
	// Workload is the pod's workload, Kind empty if it has none.
	Workload ObjectKey
	// FirstSeen is when the pod was first seen.
	FirstSeen time.Time
	// NotReadySince is when the pod was last seen turn not ready (or
	// first seen not ready); zero while ready.
	NotReadySince time.Time
	// FailingSince is when a container was first seen in a failing state
	// in the current run of failures; zero when none is.
	FailingSince time.Time
	// ReadySince is when the pod was last seen turn ready (or first seen
	// ready); zero while not ready.
	ReadySince time.Time
}

// Node is one node.
type Node struct {
	Name string
	Seen
	State *bus.NodeState
	// NotReadySince and PressureSince are when the node was first seen not
	// ready, or under pressure; zero when it is not.
	NotReadySince time.Time
	PressureSince time.Time
}

// Service is one Service.
type Service struct {
	Key ObjectKey
	Seen
	State *bus.ServiceState
	// FirstSeen is when it was first seen; BrokenSince when it was first
	// seen send traffic nowhere.
	FirstSeen time.Time
}

// NetworkPolicy is one NetworkPolicy, and what its ingress was before it
// last changed.
type NetworkPolicy struct {
	Key ObjectKey
	Seen
	State *bus.NetworkPolicyState
	// IngressSince is when its current ingress (pod selector, policy
	// types, ingress rules) was first seen.
	IngressSince time.Time
	// Previous is the state it had before the last message that changed
	// its ingress, PreviousRef the message that showed that state; nil
	// until a change of its ingress is seen.
	Previous    *bus.NetworkPolicyState
	PreviousRef wire.TelemetryRef
}

// Autoscaler is one HorizontalPodAutoscaler.
type Autoscaler struct {
	Key ObjectKey
	Seen
	State *bus.AutoscalerState
	// HealthyMin and HealthyMax are the bounds last seen while the target
	// ran healthy, HealthyRef the message that showed them.
	HealthyMin, HealthyMax int32
	HealthyRef             wire.TelemetryRef
	// HealthyTarget is the target's replica count then, and
	// HealthyScaleTarget the name of the workload it scaled.
	HealthyTarget      int32
	HealthyScaleTarget string
	// UnableSince is when it was first seen unable to scale
	// (AbleToScale=False), zero while it can.
	UnableSince time.Time
}

// recordHealthy records h's bounds as healthy when its target w runs
// healthy within them. Bounds tightened below the count the target last
// ran healthy with are not recorded: they are what a runbook judges.
func (h *Autoscaler) recordHealthy(w *Workload) {
	hs := h.State
	if w == nil || !w.Healthy || w.Replicas() < hs.MinReplicas || w.Replicas() > hs.MaxReplicas || hs.MaxReplicas < h.HealthyTarget {
		return
	}
	h.HealthyMin, h.HealthyMax, h.HealthyRef, h.HealthyTarget = hs.MinReplicas, hs.MaxReplicas, h.Ref, w.Replicas()
	h.HealthyScaleTarget = w.Key.Name
}

// Job is one Job.
type Job struct {
	Key ObjectKey
	Seen
	State *bus.JobState
}

// completed reports whether the Job ran to completion: as many pods
// succeeded as it needs.
func (j *Job) completed() bool {
	return j.State.Succeeded > 0 && j.State.Succeeded >= max(j.State.Completions, 1)
}

// CronJob is what the model knows of a CronJob from its Jobs: the images
// its last completed Job ran, and the message that showed it.
type CronJob struct {
	Key           ObjectKey
	HealthyImages []string
	HealthyRef    wire.TelemetryRef
	HealthyAt     time.Time
}

// Observe folds one delivery into the model.
func (m *Model) Observe(d bus.Delivery) {
	env := d.Envelope
	if env == nil || !validObject(env.Object.Namespace, env.Object.Name) {
		return
	}
	seen := Seen{Ref: wire.TelemetryRef{Subject: d.Subject, Sequence: d.StreamSeq, ID: env.ID}, At: env.Time}
	ns, name := env.Object.Namespace, env.Object.Name
	switch {
	case env.Deployment != nil:
		m.observeWorkload(ObjectKey{KindDeployment, ns, name}, seen, env.Deployment.Deleted, func(w *Workload) {
			w.Deployment = env.Deployment
		})
	case env.StatefulSet != nil:
		m.observeWorkload(ObjectKey{KindStatefulSet, ns, name}, seen, env.StatefulSet.Deleted, func(w *Workload) {
			w.State = env.StatefulSet
		})
	case env.DaemonSet != nil:
		m.observeWorkload(ObjectKey{KindDaemonSet, ns, name}, seen, env.DaemonSet.Deleted, func(w *Workload) {
			w.State = env.DaemonSet
		})
	case env.Pod != nil:
		m.observePod(ObjectKey{"Pod", ns, name}, seen, env.Pod)
	case env.Node != nil:
		if ns != "" {
			return
		}
		m.observeNode(name, seen, env.Node)
	case env.Service != nil:
		key := ObjectKey{"Service", ns, name}
		if env.Service.Deleted {
			delete(m.Services, key)
			return
		}
		s := m.Services[key]
		if s == nil {
			s = &Service{Key: key, FirstSeen: seen.At}
			m.Services[key] = s
		} else if stale(s.Seen, seen) {
			return
		}
		s.Seen, s.State = seen, env.Service
	case env.NetworkPolicy != nil:
		m.observeNetworkPolicy(ObjectKey{KindNetworkPolicy, ns, name}, seen, env.NetworkPolicy)
	case env.HPA != nil:
		key := ObjectKey{"HorizontalPodAutoscaler", ns, name}
		if env.HPA.Deleted {
			delete(m.Autoscalers, key)
			return
		}
		h := m.Autoscalers[key]
		if h == nil {
			h = &Autoscaler{Key: key}
			m.Autoscalers[key] = h
		} else if stale(h.Seen, seen) {
			return
		}
		h.Seen, h.State = seen, env.HPA
		switch c := condition(h.State.Conditions, "AbleToScale"); {
		case c == nil || c.Status != "False":
			h.UnableSince = time.Time{}
		case h.UnableSince.IsZero():
			h.UnableSince = seen.At
		}
		h.recordHealthy(m.Workloads[ObjectKey{env.HPA.Target.Kind, ns, env.HPA.Target.Name}])
	case env.Job != nil:
		key := ObjectKey{"Job", ns, name}
		if env.Job.Deleted {
			delete(m.Jobs, key)
			return
		}
		j := m.Jobs[key]
		if j == nil {
			j = &Job{Key: key}
			m.Jobs[key] = j
		} else if stale(j.Seen, seen) {
			return
		}
		j.Seen, j.State = seen, env.Job
		if o := j.State.Owner; o != nil && o.Kind == "CronJob" && j.completed() && validObject(ns, o.Name) {
			ck := ObjectKey{"CronJob", ns, o.Name}
			c := m.CronJobs[ck]
			if c == nil {
				c = &CronJob{Key: ck}
				m.CronJobs[ck] = c
			}
			if !seen.At.Before(c.HealthyAt) {
				c.HealthyImages, c.HealthyRef, c.HealthyAt = slices.Clone(j.State.Images), seen.Ref, seen.At
			}
		}
	}
}

// stale reports whether next is older than what the model holds.
func stale(have, next Seen) bool {
	if next.At.IsZero() || have.At.IsZero() {
		return next.Ref.Subject == have.Ref.Subject && next.Ref.Sequence != 0 && next.Ref.Sequence < have.Ref.Sequence
	}
	return next.At.Before(have.At)
}

func (m *Model) observeWorkload(key ObjectKey, seen Seen, deleted bool, set func(*Workload)) {
	if deleted {
		delete(m.Workloads, key)
		return
	}
	w := m.Workloads[key]
	if w == nil {
		w = &Workload{Key: key, HealthyRevisions: map[int64]bool{}}
		m.Workloads[key] = w
	} else if stale(w.Seen, seen) {
		return
	}
	w.Seen = seen
	set(w)
	w.Healthy = workloadHealthy(w)
	switch {
	case w.Healthy:
		if w.Deployment != nil {
			w.HealthyRevisions[w.Deployment.Revision] = true
		}
		if w.State != nil {
			w.HealthyRevision = w.State.UpdateRevision
		}
		w.HealthyImages = slices.Clone(w.Images())
		w.HealthyReplicas = w.Replicas()
		w.HealthyRef = seen.Ref
		w.ScaledToZeroAt = time.Time{}
		for _, h := range m.Autoscalers {
			if h.Key.Namespace == key.Namespace && h.State.Target.Kind == key.Kind && h.State.Target.Name == key.Name {
				h.recordHealthy(w)
			}
		}
	case w.Replicas() == 0 && w.HealthyReplicas > 0 && w.ScaledToZeroAt.IsZero():
		w.ScaledToZeroAt = seen.At
	case w.Replicas() >= w.HealthyReplicas:
		w.ScaledToZeroAt = time.Time{}
	}
}

// workloadHealthy: every desired replica is updated, ready and available,
// the spec is observed, and there is at least one.
func workloadHealthy(w *Workload) bool {
	if d := w.Deployment; d != nil {
		return d.Replicas > 0 && d.ObservedGeneration >= d.Generation &&
			d.UpdatedReplicas == d.Replicas && d.ReadyReplicas == d.Replicas &&
			d.AvailableReplicas == d.Replicas && d.UnavailableReplicas == 0
	}
	s := w.State
	if s == nil || s.Replicas == 0 || s.ObservedGeneration < s.Generation {
		return false
	}
	if w.Key.Kind == KindStatefulSet && s.CurrentRevision != s.UpdateRevision {
		return false
	}
	return s.UpdatedReplicas == s.Replicas && s.ReadyReplicas == s.Replicas
}

func (m *Model) observePod(key ObjectKey, seen Seen, st *bus.PodState) {
	if st.Deleted {
		delete(m.Pods, key)
		return
	}
	p := m.Pods[key]
	if p == nil {
		p = &Pod{Key: key, FirstSeen: seen.At}
		m.Pods[key] = p
	} else if stale(p.Seen, seen) {
		return
	}
	p.Seen, p.State = seen, st
	p.Workload = ObjectKey{}
	if st.Workload != nil && validObject("", st.Workload.Name) {
		switch st.Workload.Kind {
		case KindDeployment, KindStatefulSet, KindDaemonSet:
			p.Workload = ObjectKey{st.Workload.Kind, key.Namespace, st.Workload.Name}
		case "Job":
			p.Workload = ObjectKey{"Job", key.Namespace, st.Workload.Name}
		}
	}
	if w := m.Workloads[p.Workload]; w != nil && len(st.Labels) > 0 {
		w.PodLabels = st.Labels
		w.PodPorts = nil
		for _, c := range st.Containers {
			w.PodPorts = append(w.PodPorts, c.Ports...)
		}
	}
	switch {
	case st.Ready:
		p.NotReadySince = time.Time{}
	case p.NotReadySince.IsZero():
		p.NotReadySince = seen.At
	}
	switch {
	case !st.Ready:
		p.ReadySince = time.Time{}
	case p.ReadySince.IsZero():
		p.ReadySince = seen.At
	}
	_, failing := podFailure(st)
	if w := m.Workloads[p.Workload]; failing && w != nil && w.Deployment != nil && st.Revision > 0 {
		if w.FailedRevisions == nil {
			w.FailedRevisions = map[int64]time.Time{}
		}
		if _, ok := w.FailedRevisions[st.Revision]; !ok {
			w.FailedRevisions[st.Revision] = seen.At
		}
	}
	switch {
	case !failing:
		p.FailingSince = time.Time{}
	case p.FailingSince.IsZero():
		p.FailingSince = seen.At
	}
}

// policyTombstoneTTL is how long the model remembers a deleted policy, to
// ignore older messages about it: longer than a message is redelivered.
const policyTombstoneTTL = time.Hour

func (m *Model) observeNetworkPolicy(key ObjectKey, seen Seen, st *bus.NetworkPolicyState) {
	if m.policiesGone == nil {
		m.policiesGone = map[ObjectKey]time.Time{}
	}
	if gone, ok := m.policiesGone[key]; ok && !seen.At.After(gone) {
		return
	}
	if st.Deleted {
		delete(m.NetworkPolicies, key)
		m.policiesGone[key] = seen.At
		for k, at := range m.policiesGone {
			if seen.At.Sub(at) > policyTombstoneTTL {
				delete(m.policiesGone, k)
			}
		}
		return
	}
	delete(m.policiesGone, key)
	np := m.NetworkPolicies[key]
	if np == nil {
		m.NetworkPolicies[key] = &NetworkPolicy{Key: key, Seen: seen, State: st, IngressSince: seen.At}
		return
	}
	if stale(np.Seen, seen) {
		return
	}
	if ingressOf(np.State) != ingressOf(st) {
		np.Previous, np.PreviousRef, np.IngressSince = np.State, np.Ref, seen.At
	}
	np.Seen, np.State = seen, st
}

// ingressOf is what of a policy decides whom it admits, in a form that
// compares: its pod selector, whether it is an ingress policy, and its
// ingress rules.
func ingressOf(st *bus.NetworkPolicyState) string {
	rules := st.Ingress
	if len(rules) == 0 {
		rules = nil
	}
	b, _ := json.Marshal(struct {
		Selector  bus.LabelSelector
		Ingress   bool
		Rules     []bus.NetworkPolicyIngressRule
		Truncated bool
	}{st.PodSelector, isIngress(st), rules, st.Truncated})
	return string(b)
}

// isIngress reports whether a policy isolates the pods it selects for
// ingress. The API server defaults policyTypes, so a policy without them
// is read as Kubernetes reads it: an ingress policy.
func isIngress(st *bus.NetworkPolicyState) bool {
	return len(st.PolicyTypes) == 0 || slices.Contains(st.PolicyTypes, "Ingress")
}

func (m *Model) observeNode(name string, seen Seen, st *bus.NodeState) {
	if st.Deleted {
		delete(m.Nodes, name)
		return
	}
	n := m.Nodes[name]
	if n == nil {
		n = &Node{Name: name}
		m.Nodes[name] = n
	} else if stale(n.Seen, seen) {
		return
	}
	n.Seen, n.State = seen, st
	switch {
	case st.Ready:
		n.NotReadySince = time.Time{}
	case n.NotReadySince.IsZero():
		n.NotReadySince = seen.At
	}
	switch {
	case nodePressure(st) == "":
		n.PressureSince = time.Time{}
	case n.PressureSince.IsZero():
		n.PressureSince = seen.At
	}
}

// PodsOf returns the pods of workload key, by name.
func (m *Model) PodsOf(key ObjectKey) []*Pod {
	var out []*Pod
	for _, p := range m.Pods {
		if p.Workload == key {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *Pod) int { return strings.Compare(a.Key.Name, b.Key.Name) })
	return out
}

// PodsOn returns the pods bound to node, by namespace and name.
func (m *Model) PodsOn(node string) []*Pod {
	var out []*Pod
	for _, p := range m.Pods {
		if p.State.NodeName == node {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b *Pod) int { return strings.Compare(a.Key.String(), b.Key.String()) })
	return out
}

// sortedKeys returns the keys of a map of the model in a stable order, so
// that runbooks judge in the same order every time.
func sortedKeys[V any](objs map[ObjectKey]V) []ObjectKey {
	keys := make([]ObjectKey, 0, len(objs))
	for k := range objs {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ObjectKey) int { return strings.Compare(a.String(), b.String()) })
	return keys
}
