package agents

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tendops/tend/bus"
)

// Recorded telemetry of a namespace where the client calls web through a
// Service, and a NetworkPolicy admits the client to web.
var (
	clientLabels = map[string]string{"app": "client", "pod-template-hash": "c1"}
	clientPod    = bus.PodState{Phase: "Running", Ready: true, Labels: clientLabels,
		Containers: []bus.ContainerState{{Name: "client", Ready: true, State: bus.ContainerRunning}}}
)

func podsSelector(labels map[string]string) *bus.LabelSelector {
	return &bus.LabelSelector{MatchLabels: labels}
}

// ingressPolicy selects app=web and admits the peers, on the ports.
func ingressPolicy(ports []bus.NetworkPolicyPort, peers ...bus.NetworkPolicyPeer) bus.NetworkPolicyState {
	return bus.NetworkPolicyState{PodSelector: bus.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, PolicyTypes: []string{"Ingress"},
		Ingress: []bus.NetworkPolicyIngressRule{{From: peers, Ports: ports}}}
}

func policyOf(seq uint64, namespace, name string, st bus.NetworkPolicyState) bus.Delivery {
	return delivery(seq, bus.KindNetworkPolicy, namespace, name, func(e *bus.Envelope) { e.NetworkPolicy = &st })
}

// shop is the namespace: web (2 pods behind a Service), the client, and
// the policy that admits it, as message 5.
func shop() []bus.Delivery {
	return []bus.Delivery{
		deploymentOf(1, "shop", "web", healthyDeployment(1, 2)),
		deploymentOf(1, "shop", "client", healthyDeployment(1, 1)),
		podOf(2, "shop", "web-1", "Deployment", "web", webPodState(true)),
		podOf(2, "shop", "web-2", "Deployment", "web", webPodState(true)),
		podOf(3, "shop", "client-1", "Deployment", "client", clientPod),
		serviceOf(4, "shop", "web", webService("http", 0, map[string]string{"app": "web"})),
		policyOf(5, "shop", "web-ingress", ingressPolicy(nil, bus.NetworkPolicyPeer{PodSelector: podsSelector(map[string]string{"app": "client"})})),
	}
}

var adminOnly = ingressPolicy(nil, bus.NetworkPolicyPeer{PodSelector: podsSelector(map[string]string{"role": "admin"})})

// judgeOver evaluates a fresh runbook on the recorded telemetry at the
// time replay gives and again d later, and returns the second answer; the
// first must be empty (every condition must last).
func judgeOver(t *testing.T, ds []bus.Delivery, d time.Duration) []Intent {
	t.Helper()
	m, now := replay(ds)
	r := &NetworkPolicyFault{}
	if got := r.Evaluate(m, now); len(got) != 0 {
		t.Fatalf("findings at once, before the condition lasted: %v", callsOf(got))
	}
	return r.Evaluate(m, now.Add(d))
}

func TestNetworkPolicyCutOff(t *testing.T) {
	const policy = "finding NetworkPolicy/shop/web-ingress"
	clientPeer := bus.NetworkPolicyPeer{PodSelector: podsSelector(map[string]string{"app": "client"})}
	stale := shop()[6] // the policy's first message, redelivered
	tests := []struct {
		name string
		ds   []bus.Delivery
		want []string
	}{
		{"the peer now names labels no pod has", append(shop(), policyOf(8, "shop", "web-ingress", adminOnly)), []string{policy}},
		{"healthy", shop(), nil},
		{"the same state again", append(shop(), policyOf(8, "shop", "web-ingress", ingressPolicy(nil, clientPeer))), nil},
		{"the old state redelivered after the change", append(shop(), policyOf(8, "shop", "web-ingress", adminOnly), stale), []string{policy}},
		{"the change seen before the old state (out of order)", append(slices.Concat(shop()[:6], []bus.Delivery{policyOf(8, "shop", "web-ingress", adminOnly)}), stale), nil},
		{"a policy changed, then deleted", append(shop(), policyOf(8, "shop", "web-ingress", adminOnly),
			policyOf(9, "shop", "web-ingress", bus.NetworkPolicyState{Deleted: true})), nil},
		{"another policy still admits the callers", append(shop(), policyOf(6, "shop", "web-from-client", ingressPolicy(nil, clientPeer)),
			policyOf(8, "shop", "web-ingress", adminOnly)), nil},
		{"the callers do not run", append(slices.Concat(shop()[:4], shop()[5:]), policyOf(8, "shop", "web-ingress", adminOnly)), nil},
		{"a wide peer narrowed (a hardening)", slices.Concat(shop()[:6], []bus.Delivery{
			policyOf(6, "shop", "web-ingress", ingressPolicy(nil, bus.NetworkPolicyPeer{PodSelector: &bus.LabelSelector{}})),
			policyOf(8, "shop", "web-ingress", ingressPolicy(nil, clientPeer))}), nil},
		{"the callers admitted only on a port web does not serve", append(shop(),
			policyOf(8, "shop", "web-ingress", ingressPolicy([]bus.NetworkPolicyPort{{Port: 9090}}, clientPeer))), []string{policy}},
		{"the callers admitted on web's named port only", append(shop(),
			policyOf(8, "shop", "web-ingress", ingressPolicy([]bus.NetworkPolicyPort{{PortName: "http"}}, clientPeer))), nil},
		{"the callers' namespace may carry the label a namespace selector asks for", append(shop(),
			policyOf(8, "shop", "web-ingress", ingressPolicy(nil, bus.NetworkPolicyPeer{NamespaceSelector: podsSelector(map[string]string{"team": "shop"})}))), nil},
		{"a namespace selector that names another namespace", append(shop(),
			policyOf(8, "shop", "web-ingress", ingressPolicy(nil, bus.NetworkPolicyPeer{PodSelector: podsSelector(map[string]string{"app": "client"}),
				NamespaceSelector: podsSelector(map[string]string{namespaceNameLabel: "other"})}))), []string{policy}},
		{"an IP block may hold the callers' addresses", append(shop(),
			policyOf(8, "shop", "web-ingress", ingressPolicy(nil, bus.NetworkPolicyPeer{IPBlock: &bus.IPBlock{CIDR: "10.0.0.0/8"}}))), nil},
		{"no longer an ingress policy: web is not isolated", append(shop(),
			policyOf(8, "shop", "web-ingress", bus.NetworkPolicyState{PodSelector: bus.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, PolicyTypes: []string{"Egress"}})), nil},
		{"the policy is too large for the telemetry", append(shop(),
			policyOf(8, "shop", "web-ingress", bus.NetworkPolicyState{PolicyTypes: []string{"Ingress"}, Truncated: true})), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Within the unreachable rule's 30 s: only a cut off counts.
			got := judgeOver(t, tc.ds, 10*time.Second)
			if diff := cmp.Diff(tc.want, callsOf(got)); diff != "" {
				t.Fatalf("intents (-want +got):\n%s", diff)
			}
			for _, in := range got {
				if _, _, ok := in.Call(); ok || !strings.HasPrefix(in.Finding.Fingerprint, "network-policy/cut-off/") {
					t.Errorf("intent %+v: want a cut-off finding and no proposal", in)
				}
			}
		})
	}

	got := judgeOver(t, append(shop(), policyOf(8, "shop", "web-ingress", adminOnly)), 5*time.Second)
	if len(got) != 1 {
		t.Fatalf("intents %v, want one finding", callsOf(got))
	}
	f := got[0].Finding
	want := "NetworkPolicy shop/web-ingress cuts callers off from 2 pods it selects (app=web; Deployment web): 1 running pod (Deployment client) it admitted as pods app=client may no longer reach them on port 8080/TCP (http). " +
		"Its ingress changed from pods app=client to pods role=admin, and no ingress policy that selects those pods admits the callers now."
	if f.Fault != want {
		t.Errorf("fault:\n got %q\nwant %q", f.Fault, want)
	}
	if !strings.Contains(f.Advice, "restore the peer that admitted them (pods app=client)") {
		t.Errorf("advice %q does not say which peer to restore", f.Advice)
	}
	var seqs []uint64
	for _, e := range f.Evidence {
		seqs = append(seqs, e.Sequence)
	}
	// The policy after and before the change, the caller, the web pods.
	if diff := cmp.Diff([]uint64{8, 5, 3, 2, 2}, seqs); diff != "" {
		t.Errorf("evidence sequences (-want +got):\n%s", diff)
	}
	if f.Kind != "NetworkPolicy" || f.Namespace != "shop" || f.Name != "web-ingress" {
		t.Errorf("finding about %s, want NetworkPolicy/shop/web-ingress", f.Object())
	}
}

// A deleted policy stays deleted: a late message older than its tombstone
// does not bring it back, however long it is judged.
func TestNetworkPolicyTombstone(t *testing.T) {
	late := policyOf(8, "shop", "web-ingress", adminOnly)
	ds := append(shop(), policyOf(9, "shop", "web-ingress", bus.NetworkPolicyState{Deleted: true}), late)
	m, now := replay(ds)
	if len(m.NetworkPolicies) != 0 {
		t.Fatalf("policies %v after the tombstone, want none", m.NetworkPolicies)
	}
	r := &NetworkPolicyFault{}
	for _, after := range []time.Duration{0, time.Minute, time.Hour} {
		if got := r.Evaluate(m, now.Add(after)); len(got) != 0 {
			t.Errorf("after %s: %v, want nothing", after, callsOf(got))
		}
	}
	// A policy made again later is a new policy, with no history.
	m.Observe(policyOf(10, "shop", "web-ingress", adminOnly))
	if np := m.NetworkPolicies[ObjectKey{KindNetworkPolicy, "shop", "web-ingress"}]; np == nil || np.Previous != nil {
		t.Errorf("policy made again: %+v, want it with no history", np)
	}
}

// The history the model keeps: a change of ingress moves the old state to
// Previous; a change of anything else (an egress-only policy type added,
// the generation) does not.
func TestNetworkPolicyHistory(t *testing.T) {
	key := ObjectKey{KindNetworkPolicy, "shop", "web-ingress"}
	v1 := ingressPolicy(nil, bus.NetworkPolicyPeer{PodSelector: podsSelector(map[string]string{"app": "client"})})
	v1.Generation = 1
	same := v1
	same.Generation, same.PolicyTypes = 2, []string{"Ingress", "Egress"}
	m, _ := replay([]bus.Delivery{policyOf(1, "shop", "web-ingress", v1), policyOf(2, "shop", "web-ingress", same)})
	if np := m.NetworkPolicies[key]; np.Previous != nil || !np.IngressSince.Equal(at(1)) {
		t.Errorf("a change outside the ingress: previous %+v, ingress since %s; want none, since message 1", np.Previous, np.IngressSince)
	}
	m.Observe(policyOf(3, "shop", "web-ingress", adminOnly))
	np := m.NetworkPolicies[key]
	if np.Previous == nil || np.Previous.Generation != 2 || np.PreviousRef.Sequence != 2 || !np.IngressSince.Equal(at(3)) {
		t.Errorf("after a change of ingress: previous %+v (ref %+v), ingress since %s; want message 2's state, since message 3", np.Previous, np.PreviousRef, np.IngressSince)
	}
}

func TestNetworkPolicyUnreachable(t *testing.T) {
	noHistory := slices.Concat(shop()[:6], []bus.Delivery{policyOf(8, "shop", "web-ingress", adminOnly)})
	tests := []struct {
		name string
		ds   []bus.Delivery
		want []string
	}{
		{"the policy admits labels no pod has", noHistory, []string{"finding NetworkPolicy/shop/web-ingress"}},
		{"a default-deny policy alone", slices.Concat(shop()[:6], []bus.Delivery{policyOf(8, "shop", "deny-all",
			bus.NetworkPolicyState{PolicyTypes: []string{"Ingress"}})}), []string{"finding NetworkPolicy/shop/deny-all"}},
		{"a default-deny policy beside one that admits the client", append(shop(), policyOf(8, "shop", "deny-all",
			bus.NetworkPolicyState{PolicyTypes: []string{"Ingress"}})), nil},
		{"the policy admits an IP block", slices.Concat(shop()[:6], []bus.Delivery{policyOf(8, "shop", "web-ingress",
			ingressPolicy(nil, bus.NetworkPolicyPeer{IPBlock: &bus.IPBlock{CIDR: "192.168.0.0/16"}}))}), nil},
		{"the policy admits namespaces by a label the telemetry does not show", slices.Concat(shop()[:6], []bus.Delivery{policyOf(8, "shop", "web-ingress",
			ingressPolicy(nil, bus.NetworkPolicyPeer{NamespaceSelector: podsSelector(map[string]string{"team": "edge"})}))}), nil},
		{"the policy admits a workload's pods while it has none running", slices.Concat(shop()[:6], []bus.Delivery{
			deploymentOf(6, "shop", "admin", healthyDeployment(1, 1)),
			podOf(7, "shop", "admin-1", "Deployment", "admin", bus.PodState{Phase: "Pending", Labels: map[string]string{"role": "admin"}}),
			podOf(7, "shop", "admin-1", "Deployment", "admin", bus.PodState{Deleted: true}),
			policyOf(8, "shop", "web-ingress", adminOnly)}), nil},
		{"the policy admits the pods of a Job that completed", slices.Concat(shop()[:6], []bus.Delivery{
			podOf(7, "shop", "audit-1", "Job", "audit", bus.PodState{Phase: "Succeeded", Labels: map[string]string{"role": "admin"}}),
			policyOf(8, "shop", "web-ingress", adminOnly)}), nil},
		{"no Service in front of the pods", slices.Concat(shop()[:5], []bus.Delivery{policyOf(8, "shop", "web-ingress", adminOnly)}), nil},
		{"healthy", shop(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, now := replay(tc.ds)
			r := &NetworkPolicyFault{}
			for _, after := range []time.Duration{0, 29 * time.Second} {
				if got := r.Evaluate(m, now.Add(after)); len(got) != 0 {
					t.Fatalf("after %s: %v, want nothing yet", after, callsOf(got))
				}
			}
			got := r.Evaluate(m, now.Add(30*time.Second))
			if diff := cmp.Diff(tc.want, callsOf(got)); diff != "" {
				t.Fatalf("intents (-want +got):\n%s", diff)
			}
		})
	}

	m, now := replay(noHistory)
	r := &NetworkPolicyFault{}
	r.Evaluate(m, now)
	got := r.Evaluate(m, now.Add(30*time.Second))
	if len(got) != 1 {
		t.Fatalf("intents %v, want one finding", callsOf(got))
	}
	f := got[0].Finding
	want := "NetworkPolicy shop/web-ingress isolates 2 of the 2 running pods behind Service shop/web (app=web; Deployment web), and no ingress policy that selects them admits any pod that exists: " +
		"it admits pods role=admin. 1 other running pod of the namespace (Deployment client: app=client) cannot reach them."
	if f.Fault != want {
		t.Errorf("fault:\n got %q\nwant %q", f.Fault, want)
	}
	if !strings.HasPrefix(f.Fingerprint, "network-policy/unreachable/shop/web-ingress/web/") {
		t.Errorf("fingerprint %q", f.Fingerprint)
	}
	// A condition that clears starts its wait again.
	m.Observe(policyOf(20, "shop", "web-ingress", ingressPolicy(nil, bus.NetworkPolicyPeer{PodSelector: podsSelector(map[string]string{"app": "client"})})))
	if got := r.Evaluate(m, now.Add(31*time.Second)); len(got) != 0 {
		t.Fatalf("after the fix: %v, want nothing", callsOf(got))
	}
	m.Observe(policyOf(21, "shop", "web-ingress", adminOnly))
	if got := r.Evaluate(m, now.Add(32*time.Second)); len(got) != 0 {
		t.Errorf("broken again: %v at once, want the wait to start again", callsOf(got))
	}
}

// Text from telemetry enters a finding only as valid label keys and
// values; anything else becomes a placeholder.
func TestNetworkPolicyFindingText(t *testing.T) {
	hostileLabels := map[string]string{"app": hostile}
	ds := slices.Concat(shop()[:4], []bus.Delivery{
		podOf(3, "shop", "client-1", "Deployment", "client", bus.PodState{Phase: "Running", Labels: hostileLabels}),
		shop()[5],
		policyOf(5, "shop", "web-ingress", ingressPolicy(nil, bus.NetworkPolicyPeer{PodSelector: podsSelector(hostileLabels)})),
		policyOf(8, "shop", "web-ingress", ingressPolicy([]bus.NetworkPolicyPort{{PortName: hostile}},
			bus.NetworkPolicyPeer{PodSelector: &bus.LabelSelector{MatchExpressions: []bus.LabelSelectorRequirement{{Key: hostile, Operator: bus.SelectorExists}}}})),
	})
	got := judgeOver(t, ds, 5*time.Second)
	if len(got) != 1 {
		t.Fatalf("intents %v, want one finding", callsOf(got))
	}
	f := got[0].Finding
	for _, text := range []string{f.Fault, f.Advice} {
		if strings.Contains(text, "ignore previous") || strings.Contains(text, "coredns") {
			t.Errorf("finding text carries untrusted text: %q", text)
		}
	}
	if !strings.Contains(f.Fault, "(labels that are not valid)") || !strings.Contains(f.Fault, "(invalid port name)") {
		t.Errorf("fault %q: want placeholders for the invalid labels and port name", f.Fault)
	}
}
