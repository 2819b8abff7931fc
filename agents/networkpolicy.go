package agents

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// NetworkPolicyFault is the runbook for ingress NetworkPolicies that cut
// pods off from the pods they select. No action of the catalogue changes a
// NetworkPolicy (what a policy admits is a security decision, for a
// human), so it records findings and never proposes. Two rules:
//
//   - cut off, when the policy's history is known: a change of a policy's
//     ingress left running pods that the policy's rules, as they were
//     before the change, admitted by name (a peer with a non-empty pod
//     selector that matches them) admitted by no ingress policy that now
//     selects the pods the policy selected, on a port they were admitted
//     to. The finding names the policy, the pods it selects, the callers
//     (the selector that named them, their workloads, how many) and the
//     ports they lost, and cites the messages before and after the change.
//   - unreachable, with no history (the agent started after the change,
//     or the policy is new): the running pods behind a Service are
//     isolated by ingress policies none of whose rules admits any pod that
//     exists (running or not: a Job's pods come and go), nor the pods of a
//     workload of the model with replicas, nor any source outside the
//     cluster. The finding names the policy whose
//     ingress changed last and the running pods of the namespace that
//     cannot reach them.
//
// Why callers are the pods a peer named: a rule that admits pods by their
// labels says who calls the selected pods; a wide rule (every pod of a
// namespace, every source) says nothing about who calls, and narrowing it
// is a hardening a human chose, which a finding about every pod of the
// namespace would only bury. Why only the last change: a human who removed
// a peer on purpose and edits the policy again is not told again. Why the
// second rule asks for a Service and for no admitted pod at all: pods
// behind a Service are meant to receive traffic, and a default-deny policy
// beside policies that admit someone is the usual pattern, not a fault.
//
// The telemetry carries no namespace labels: a namespace selector is
// decided only when empty or on kubernetes.io/metadata.name, which every
// namespace carries; on any other label it may admit, and neither rule
// concludes on it. An IP block may hold pods' addresses, so it may admit
// too, and a pod whose labels the telemetry left out may match any
// selector. A policy too large for the telemetry (truncated) stops both
// rules for its namespace.
//
// Each condition must hold, judgement after judgement, for For (cut off)
// or After (unreachable) by the agent's clock: a model still filling up
// (a policy that admits the callers not seen yet) decides nothing.
type NetworkPolicyFault struct {
	// For is how long pods must stay cut off. Default 5s.
	For time.Duration
	// After is how long the pods behind a Service must stay unreachable.
	// Default 30s, as long as escalate waits.
	After time.Duration

	mu sync.Mutex
	// since maps a finding's fingerprint to the judgement that first saw
	// its condition.
	since map[string]time.Time
}

var _ Runbook = (*NetworkPolicyFault)(nil)

// Name implements Runbook.
func (r *NetworkPolicyFault) Name() string { return "network-policy" }

// Evaluate implements Runbook.
func (r *NetworkPolicyFault) Evaluate(m *Model, now time.Time) []Intent {
	wait, after := r.For, r.After
	if wait <= 0 {
		wait = 5 * time.Second
	}
	if after <= 0 {
		after = 30 * time.Second
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(m.NetworkPolicies) == 0 {
		// Nothing to judge, nothing pending.
		r.since = nil
		return nil
	}
	if r.since == nil {
		r.since = map[string]time.Time{}
	}
	v := newPolicyView(m)
	held := map[string]bool{}
	lasted := func(fp string, d time.Duration) bool {
		held[fp] = true
		first, ok := r.since[fp]
		if !ok {
			r.since[fp], first = now, now
		}
		return m.lasted(first, d, now)
	}
	var out []Intent
	// Pods a cut-off finding speaks for, which the second rule leaves.
	covered := map[ObjectKey]bool{}
	for _, key := range sortedKeys(m.NetworkPolicies) {
		f, targets := v.cutOff(m.NetworkPolicies[key])
		if f == nil {
			continue
		}
		for _, t := range targets {
			covered[t] = true
		}
		if lasted(f.Fingerprint, wait) {
			out = append(out, Intent{Finding: f})
		}
	}
	for _, key := range sortedKeys(m.Services) {
		f := v.unreachable(m.Services[key], covered)
		if f != nil && lasted(f.Fingerprint, after) {
			out = append(out, Intent{Finding: f})
		}
	}
	for fp := range r.since {
		if !held[fp] {
			delete(r.since, fp)
		}
	}
	return out
}

// tri is a three-valued answer: the telemetry does not always tell.
type tri int8

const (
	triNo tri = iota
	triMaybe
	triYes
)

// namespaceNameLabel is the label every namespace carries with its name.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// policyView is the model as the rules read it in one judgement.
type policyView struct {
	m *Model
	// running are the running pods, by namespace and name, and runningIn
	// those of each namespace.
	running   []*Pod
	runningIn map[string][]*Pod
	// byNamespace are the ingress policies of each namespace; truncated
	// marks a namespace with a policy the telemetry could not carry.
	byNamespace map[string][]*NetworkPolicy
	truncated   map[string]bool
	// admits memoizes admitsSomeone.
	admits map[ObjectKey]bool
}

func newPolicyView(m *Model) *policyView {
	v := &policyView{m: m, runningIn: map[string][]*Pod{}, byNamespace: map[string][]*NetworkPolicy{}, truncated: map[string]bool{}, admits: map[ObjectKey]bool{}}
	for _, key := range sortedKeys(m.Pods) {
		if p := m.Pods[key]; p.State.Phase == "Running" && !p.State.Deleted {
			v.running = append(v.running, p)
			v.runningIn[key.Namespace] = append(v.runningIn[key.Namespace], p)
		}
	}
	for _, key := range sortedKeys(m.NetworkPolicies) {
		np := m.NetworkPolicies[key]
		if np.State.Truncated {
			v.truncated[key.Namespace] = true
		}
		if isIngress(np.State) {
			v.byNamespace[key.Namespace] = append(v.byNamespace[key.Namespace], np)
		}
	}
	return v
}

// selecting returns the ingress policies that select pod p now; ok is false
// when the telemetry cannot tell.
func (v *policyView) selecting(p *Pod) (pols []*NetworkPolicy, ok bool) {
	if v.truncated[p.Key.Namespace] || p.State.Labels == nil {
		return nil, false
	}
	for _, np := range v.byNamespace[p.Key.Namespace] {
		if matchSelector(&np.State.PodSelector, p.State.Labels) {
			pols = append(pols, np)
		}
	}
	return pols, true
}

// cutOff judges a policy by the first rule; it returns the finding and the
// pods it selected that callers lost, or nil.
func (v *policyView) cutOff(np *NetworkPolicy) (*Finding, []ObjectKey) {
	prev, ns := np.Previous, np.Key.Namespace
	if prev == nil || prev.Truncated || !isIngress(prev) || v.truncated[ns] {
		return nil, nil
	}
	// The callers: running pods a peer of the old rules named.
	type caller struct {
		pod   *Pod
		rules []bus.NetworkPolicyIngressRule
		named string
	}
	var callers []caller
	for _, p := range v.running {
		var c caller
		for _, rule := range prev.Ingress {
			for _, peer := range rule.From {
				if peer.PodSelector == nil || emptySelector(peer.PodSelector) || peerAdmits(peer, ns, p) != triYes {
					continue
				}
				if c.named == "" {
					c.named = describePeer(peer)
				}
				c.rules = append(c.rules, rule)
				break
			}
		}
		if len(c.rules) > 0 {
			c.pod = p
			callers = append(callers, c)
		}
	}
	if len(callers) == 0 {
		return nil, nil
	}
	lostBy := map[string][]*Pod{}   // caller group → callers
	targets := map[ObjectKey]*Pod{} // selected pods some caller lost
	ports := map[string]bool{}      // the ports lost, described
	for _, t := range v.runningIn[ns] {
		if t.State.Labels == nil || !matchSelector(&prev.PodSelector, t.State.Labels) {
			continue
		}
		pols, ok := v.selecting(t)
		if !ok {
			continue
		}
		for _, c := range callers {
			lost := false
			for _, u := range portUniverse(t, c.rules, pols) {
				if !slices.ContainsFunc(c.rules, func(r bus.NetworkPolicyIngressRule) bool { return ruleAdmitsPort(r, u) }) {
					continue
				}
				if admitted(pols, c.pod, u) == triNo {
					lost = true
					ports[u.String()] = true
				}
			}
			if lost {
				targets[t.Key] = t
				if !slices.Contains(lostBy[c.named], c.pod) {
					lostBy[c.named] = append(lostBy[c.named], c.pod)
				}
			}
		}
	}
	if len(targets) == 0 {
		return nil, nil
	}
	var groups, named []string
	refs := []wire.TelemetryRef{np.Ref, np.PreviousRef}
	count := 0
	for _, peer := range slices.Sorted(maps.Keys(lostBy)) {
		pods := lostBy[peer]
		count += len(pods)
		named = append(named, peer)
		groups = append(groups, fmt.Sprintf("%s it admitted as %s", pluralPods(len(pods), "running pod")+inParens(workloadsOf(pods)), peer))
		for i, p := range pods {
			if i < 3 {
				refs = append(refs, p.Ref)
			}
		}
	}
	keys := slices.SortedFunc(maps.Keys(targets), func(a, b ObjectKey) int { return strings.Compare(a.String(), b.String()) })
	for i, k := range keys {
		if i < 3 {
			refs = append(refs, targets[k].Ref)
		}
	}
	if len(groups) > maxGroups {
		groups = append(groups[:maxGroups], fmt.Sprintf("%d more groups", len(groups)-maxGroups))
	}
	if len(named) > maxGroups {
		named = append(named[:maxGroups], fmt.Sprintf("%d more", len(named)-maxGroups))
	}
	f := &Finding{
		Kind: KindNetworkPolicy, Namespace: ns, Name: np.Key.Name,
		Fault: fmt.Sprintf("NetworkPolicy %s/%s cuts callers off from %s it selects%s: %s may no longer reach them on %s. Its ingress changed from %s to %s, and no ingress policy that selects those pods admits the callers now.",
			ns, np.Key.Name, pluralPods(len(targets), "pod"),
			inParens(selectorText(&prev.PodSelector, "every pod of the namespace"), workloadsOf(podsOf(targets, keys))),
			strings.Join(groups, "; "), listText(slices.Sorted(maps.Keys(ports))), describeIngress(prev), describeIngress(np.State)),
		Advice: fmt.Sprintf("If %s should still reach them, restore the peer that admitted them (%s) or add a NetworkPolicy that admits them to these pods. tend changes no NetworkPolicy: what a policy admits is a security decision.",
			thosePods(count), strings.Join(named, "; ")),
		Evidence:    refs,
		Fingerprint: fmt.Sprintf("network-policy/cut-off/%s/%s/%s", ns, np.Key.Name, wire.Digest(ingressOf(prev) + "\n" + ingressOf(np.State) + "\n" + strings.Join(named, "\n"))[:12]),
	}
	f.Fault, f.Advice = clipText(f.Fault, maxFaultText), clipText(f.Advice, maxFaultText)
	return f, keys
}

// unreachable judges the pods behind a Service by the second rule.
func (v *policyView) unreachable(s *Service, covered map[ObjectKey]bool) *Finding {
	ns := s.Key.Namespace
	if len(s.State.Selector) == 0 || v.truncated[ns] || len(v.byNamespace[ns]) == 0 {
		return nil
	}
	var selected, cut []*Pod
	isolating := map[ObjectKey]*NetworkPolicy{}
	for _, t := range v.runningIn[ns] {
		if !selects(s.State.Selector, t.State.Labels) {
			continue
		}
		selected = append(selected, t)
		if covered[t.Key] {
			return nil
		}
		pols, ok := v.selecting(t)
		if !ok || len(pols) == 0 || slices.ContainsFunc(pols, v.admitsSomeone) {
			continue
		}
		cut = append(cut, t)
		for _, np := range pols {
			isolating[np.Key] = np
		}
	}
	if len(cut) == 0 {
		return nil
	}
	// The policy whose ingress changed last is the likeliest cause.
	var culprit *NetworkPolicy
	var others []string
	digest := ""
	for _, key := range sortedKeys(isolating) {
		np := isolating[key]
		digest += key.String() + "\n" + ingressOf(np.State) + "\n"
		if culprit == nil || np.IngressSince.After(culprit.IngressSince) {
			culprit = np
		}
	}
	for _, key := range sortedKeys(isolating) {
		if key != culprit.Key {
			others = append(others, key.Name)
		}
	}
	var callers []*Pod
	for _, p := range v.runningIn[ns] {
		if !slices.Contains(selected, p) {
			callers = append(callers, p)
		}
	}
	refs := []wire.TelemetryRef{culprit.Ref, s.Ref}
	for i, t := range cut {
		if i < 3 {
			refs = append(refs, t.Ref)
		}
	}
	also := ""
	if len(others) > 0 {
		also = fmt.Sprintf(" (with NetworkPolicy %s)", strings.Join(others, ", "))
	}
	who := "No other pod of the namespace runs."
	if len(callers) > 0 {
		who = fmt.Sprintf("%s of the namespace%s cannot reach them.", pluralPods(len(callers), "other running pod"), inParens(workloadLabels(callers)))
	}
	fault := fmt.Sprintf("NetworkPolicy %s/%s%s isolates %d of the %s behind Service %s/%s%s, and no ingress policy that selects them admits any pod that exists: it admits %s. %s",
		ns, culprit.Key.Name, also, len(cut), pluralPods(len(selected), "running pod"), ns, s.Key.Name,
		inParens(selectorText(&bus.LabelSelector{MatchLabels: s.State.Selector}, "every pod"), workloadsOf(selected)),
		describeIngress(culprit.State), who)
	return &Finding{
		Kind: KindNetworkPolicy, Namespace: ns, Name: culprit.Key.Name,
		Fault:       clipText(fault, maxFaultText),
		Advice:      "If the pods behind the Service should be reachable, make the policy's peers select the pods that call them, or add a NetworkPolicy that admits them. tend changes no NetworkPolicy: what a policy admits is a security decision.",
		Evidence:    refs,
		Fingerprint: fmt.Sprintf("network-policy/unreachable/%s/%s/%s/%s", ns, culprit.Key.Name, s.Key.Name, wire.Digest(digest)[:12]),
	}
}

// admitsSomeone reports whether a policy may admit a source: a rule for
// every source, an IP block, or a peer that may match a pod that exists or
// the pods of a workload of the model with replicas.
func (v *policyView) admitsSomeone(np *NetworkPolicy) bool {
	if a, ok := v.admits[np.Key]; ok {
		return a
	}
	a := v.mayAdmit(np)
	v.admits[np.Key] = a
	return a
}

func (v *policyView) mayAdmit(np *NetworkPolicy) bool {
	ns := np.Key.Namespace
	for _, rule := range np.State.Ingress {
		if len(rule.From) == 0 {
			return true
		}
		for _, peer := range rule.From {
			// Any pod that exists, running or not: a Job's pods come and go.
			for _, p := range v.m.Pods {
				if !p.State.Deleted && peerAdmits(peer, ns, p) != triNo {
					return true
				}
			}
			for _, wk := range sortedKeys(v.m.Workloads) {
				w := v.m.Workloads[wk]
				if w.Replicas() > 0 && peerMatches(peer, ns, wk.Namespace, w.PodLabels) != triNo {
					return true
				}
			}
		}
	}
	return false
}

// admitted is whether the policies that select a pod (all of them, and
// none means it is not isolated) admit caller c to it on port u.
func admitted(pols []*NetworkPolicy, c *Pod, u policyPort) tri {
	if len(pols) == 0 {
		return triYes
	}
	out := triNo
	for _, np := range pols {
		for _, rule := range np.State.Ingress {
			if !ruleAdmitsPort(rule, u) {
				continue
			}
			if len(rule.From) == 0 {
				return triYes
			}
			for _, peer := range rule.From {
				out = max(out, peerAdmits(peer, np.Key.Namespace, c))
			}
		}
	}
	return out
}

// peerAdmits is whether a peer of a policy of namespace policyNS admits pod p.
func peerAdmits(peer bus.NetworkPolicyPeer, policyNS string, p *Pod) tri {
	return peerMatches(peer, policyNS, p.Key.Namespace, p.State.Labels)
}

// peerMatches is whether a peer of a policy of namespace policyNS admits a
// pod of namespace podNS with labels (nil: not known).
func peerMatches(peer bus.NetworkPolicyPeer, policyNS, podNS string, labels map[string]string) tri {
	if peer.IPBlock != nil || peer.PodSelector == nil && peer.NamespaceSelector == nil {
		return triMaybe
	}
	out := triYes
	switch {
	case peer.NamespaceSelector != nil:
		out = matchNamespace(peer.NamespaceSelector, podNS)
	case podNS != policyNS:
		return triNo
	}
	if out == triNo || peer.PodSelector == nil || emptySelector(peer.PodSelector) {
		return out
	}
	if labels == nil {
		return triMaybe
	}
	if !matchSelector(peer.PodSelector, labels) {
		return triNo
	}
	return out
}

// matchNamespace is whether a namespace selector selects namespace ns,
// knowing only the label every namespace carries with its name.
func matchNamespace(s *bus.LabelSelector, ns string) tri {
	out := triYes
	known := map[string]string{namespaceNameLabel: ns}
	for k, v := range s.MatchLabels {
		switch {
		case k != namespaceNameLabel:
			out = triMaybe
		case v != ns:
			return triNo
		}
	}
	for _, r := range s.MatchExpressions {
		switch {
		case r.Key != namespaceNameLabel:
			out = triMaybe
		case !matchSelector(&bus.LabelSelector{MatchExpressions: []bus.LabelSelectorRequirement{r}}, known):
			return triNo
		}
	}
	return out
}

// matchSelector is whether a label selector selects labels.
func matchSelector(s *bus.LabelSelector, labels map[string]string) bool {
	for k, v := range s.MatchLabels {
		if lv, ok := labels[k]; !ok || lv != v {
			return false
		}
	}
	for _, r := range s.MatchExpressions {
		v, ok := labels[r.Key]
		switch r.Operator {
		case bus.SelectorIn:
			if !ok || !slices.Contains(r.Values, v) {
				return false
			}
		case bus.SelectorNotIn:
			if ok && slices.Contains(r.Values, v) {
				return false
			}
		case bus.SelectorExists:
			if !ok {
				return false
			}
		case bus.SelectorDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func emptySelector(s *bus.LabelSelector) bool {
	return len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0
}

// policyPort is a port of a selected pod: a protocol and a number (0: a
// port the pod does not declare), and its name if the pod names it.
type policyPort struct {
	protocol string
	port     int32
	name     string
}

func (p policyPort) String() string {
	switch {
	case p.port == 0:
		return "any port"
	case p.name != "" && len(validation.IsValidPortName(p.name)) == 0:
		return fmt.Sprintf("port %d/%s (%s)", p.port, p.protocol, p.name)
	}
	return fmt.Sprintf("port %d/%s", p.port, p.protocol)
}

// portUniverse is the ports of pod t a rule may admit: those its
// containers declare and those the rules name by number; a port the pod
// does not declare when there are none.
func portUniverse(t *Pod, rules []bus.NetworkPolicyIngressRule, pols []*NetworkPolicy) []policyPort {
	var out []policyPort
	add := func(p policyPort) {
		if !slices.ContainsFunc(out, func(q policyPort) bool { return q.protocol == p.protocol && q.port == p.port }) {
			out = append(out, p)
		}
	}
	for _, c := range t.State.Containers {
		for _, p := range c.Ports {
			add(policyPort{protocol: orDefault(p.Protocol, "TCP"), port: p.ContainerPort, name: p.Name})
		}
	}
	all := slices.Clone(rules)
	for _, np := range pols {
		all = append(all, np.State.Ingress...)
	}
	for _, r := range all {
		for _, p := range r.Ports {
			if p.Port != 0 {
				add(policyPort{protocol: orDefault(p.Protocol, "TCP"), port: p.Port})
			}
		}
	}
	if len(out) == 0 {
		out = append(out, policyPort{protocol: "TCP"})
	}
	return out
}

// ruleAdmitsPort is whether a rule's ports hold u.
func ruleAdmitsPort(r bus.NetworkPolicyIngressRule, u policyPort) bool {
	if len(r.Ports) == 0 {
		return true
	}
	for _, p := range r.Ports {
		switch {
		case orDefault(p.Protocol, "TCP") != u.protocol:
		case p.Port == 0 && p.PortName == "":
			return true
		case u.port == 0:
		case p.PortName != "":
			if u.name == p.PortName {
				return true
			}
		case u.port >= p.Port && u.port <= max(p.EndPort, p.Port):
			return true
		}
	}
	return false
}

// Text of a finding, from validated labels and names only.

// maxSelectorParts bounds how much of one selector a finding repeats.
const maxSelectorParts = 6

// selectorText describes a selector (app=web, tier in (a, b), !canary),
// whenEmpty when it is empty, and a placeholder when it holds a label key
// or value that is not valid.
func selectorText(s *bus.LabelSelector, whenEmpty string) string {
	if emptySelector(s) {
		return whenEmpty
	}
	valid := func(k string, vs ...string) bool {
		if len(validation.IsQualifiedName(k)) > 0 {
			return false
		}
		for _, v := range vs {
			if len(validation.IsValidLabelValue(v)) > 0 {
				return false
			}
		}
		return true
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s.MatchLabels)) {
		if !valid(k, s.MatchLabels[k]) {
			return "(labels that are not valid)"
		}
		parts = append(parts, k+"="+s.MatchLabels[k])
	}
	for _, r := range s.MatchExpressions {
		if !valid(r.Key, r.Values...) {
			return "(labels that are not valid)"
		}
		switch r.Operator {
		case bus.SelectorIn, bus.SelectorNotIn:
			parts = append(parts, fmt.Sprintf("%s %s (%s)", r.Key, strings.ToLower(r.Operator), strings.Join(r.Values, ", ")))
		case bus.SelectorExists:
			parts = append(parts, r.Key)
		case bus.SelectorDoesNotExist:
			parts = append(parts, "!"+r.Key)
		}
	}
	if len(parts) > maxSelectorParts {
		parts = append(parts[:maxSelectorParts], fmt.Sprintf("%d more", len(parts)-maxSelectorParts))
	}
	return strings.Join(parts, ", ")
}

// describePeer says whom a peer admits.
func describePeer(peer bus.NetworkPolicyPeer) string {
	switch {
	case peer.IPBlock != nil:
		if p, err := netip.ParsePrefix(peer.IPBlock.CIDR); err == nil {
			return "IP block " + p.String()
		}
		return "an IP block"
	case peer.NamespaceSelector == nil && peer.PodSelector != nil:
		return "pods " + selectorText(peer.PodSelector, "(every pod of the namespace)")
	case peer.NamespaceSelector != nil && peer.PodSelector == nil:
		return "every pod of namespaces " + selectorText(peer.NamespaceSelector, "(every namespace)")
	case peer.NamespaceSelector != nil:
		return "pods " + selectorText(peer.PodSelector, "(every pod)") + " of namespaces " + selectorText(peer.NamespaceSelector, "(every namespace)")
	}
	return "no peer"
}

// maxRulesText bounds how many rules a finding describes.
const maxRulesText = 4

// describeIngress says whom a policy admits.
func describeIngress(st *bus.NetworkPolicyState) string {
	if !isIngress(st) {
		return "every source (it is not an ingress policy)"
	}
	if len(st.Ingress) == 0 {
		return "nothing (no ingress rule)"
	}
	var rules []string
	for i, r := range st.Ingress {
		if i == maxRulesText {
			rules = append(rules, fmt.Sprintf("%d more rules", len(st.Ingress)-maxRulesText))
			break
		}
		var peers []string
		for j, p := range r.From {
			if j == maxRulesText {
				peers = append(peers, fmt.Sprintf("%d more peers", len(r.From)-maxRulesText))
				break
			}
			peers = append(peers, describePeer(p))
		}
		text := "every source"
		if len(peers) > 0 {
			text = strings.Join(peers, " or ")
		}
		var ports []string
		for j, p := range r.Ports {
			if j == maxRulesText {
				ports = append(ports, "more")
				break
			}
			switch {
			case p.PortName != "" && len(validation.IsValidPortName(p.PortName)) == 0:
				ports = append(ports, p.PortName)
			case p.PortName != "":
				ports = append(ports, "(invalid port name)")
			case p.Port != 0 && p.EndPort > p.Port:
				ports = append(ports, fmt.Sprintf("%d-%d", p.Port, p.EndPort))
			case p.Port != 0:
				ports = append(ports, fmt.Sprint(p.Port))
			default:
				ports = append(ports, "every port")
			}
		}
		if len(ports) > 0 {
			text += " on " + strings.Join(ports, ", ")
		}
		rules = append(rules, text)
	}
	return strings.Join(rules, "; ")
}

// workloadsOf names the workloads of pods ("Deployment client"), "" when
// none of them has one.
func workloadsOf(pods []*Pod) string {
	var names []string
	for _, p := range pods {
		w := p.Workload
		if w.Kind == "" || !validObject("", w.Name) {
			continue
		}
		if n := w.Kind + " " + w.Name; !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	if len(names) > 5 {
		names = append(names[:5], fmt.Sprintf("%d more", len(names)-5))
	}
	return strings.Join(names, ", ")
}

// workloadLabels names the workloads of pods with their pods' labels
// ("Deployment client: app=client"), without the labels their controller
// sets to tell revisions apart.
func workloadLabels(pods []*Pod) string {
	var parts []string
	for _, p := range pods {
		w := p.Workload
		if w.Kind == "" || !validObject("", w.Name) {
			continue
		}
		labels := maps.Clone(p.State.Labels)
		for _, k := range []string{"pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name", "apps.kubernetes.io/pod-index", "pod-template-generation"} {
			delete(labels, k)
		}
		part := w.Kind + " " + w.Name
		if len(labels) > 0 {
			part += ": " + selectorText(&bus.LabelSelector{MatchLabels: labels}, "")
		}
		if !slices.ContainsFunc(parts, func(q string) bool { return strings.HasPrefix(q, w.Kind+" "+w.Name+":") || q == w.Kind+" "+w.Name }) {
			parts = append(parts, part)
		}
	}
	slices.Sort(parts)
	if len(parts) > 5 {
		parts = append(parts[:5], fmt.Sprintf("%d more", len(parts)-5))
	}
	return strings.Join(parts, ", ")
}

// inParens is " (a; b)" of the parts that are not empty, "" when none is.
func inParens(parts ...string) string {
	parts = slices.DeleteFunc(slices.Clone(parts), func(s string) bool { return s == "" })
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, "; ") + ")"
}

func podsOf(m map[ObjectKey]*Pod, keys []ObjectKey) []*Pod {
	out := make([]*Pod, 0, len(keys))
	for _, k := range keys {
		out = append(out, m[k])
	}
	return out
}

// pluralPods is "1 pod" or "3 pods" (noun ending in "pod").
func pluralPods(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// Bounds of a finding's text: the bus takes 4 KiB of fault and of advice.
const (
	maxGroups    = 5
	maxFaultText = 2000
)

// clipText cuts s to at most n bytes, at a rune boundary, marking the cut.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// thosePods is "that pod" or "those 3 pods".
func thosePods(n int) string {
	if n == 1 {
		return "that pod"
	}
	return fmt.Sprintf("those %d pods", n)
}

// listText joins "a", "a and b", "a, b and c".
func listText(items []string) string {
	if len(items) <= 1 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
