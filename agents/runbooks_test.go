package agents

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

var (
	webLabels = map[string]string{"app": "web", "pod-template-hash": "abc"}
	httpPort  = []bus.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: "TCP"}}
)

func webPodState(ready bool) bus.PodState {
	c := bus.ContainerState{Name: "web", Ready: ready, State: bus.ContainerRunning, Ports: httpPort}
	return bus.PodState{Phase: "Running", Ready: ready, Revision: 1, Labels: webLabels, NodeName: "a", Containers: []bus.ContainerState{c}}
}

func webService(targetName string, target int32, selector map[string]string) bus.ServiceState {
	return bus.ServiceState{Type: "ClusterIP", Selector: selector,
		Ports: []bus.ServicePort{{Name: "http", Port: 80, TargetPort: target, TargetPortName: targetName}}}
}

func TestScaledToZero(t *testing.T) {
	zero := healthyDeployment(1, 0)
	zero.UpdatedReplicas, zero.ReadyReplicas, zero.AvailableReplicas = 0, 0, 0
	// Scaling down: spec at zero, a pod still ready.
	going := zero
	going.ReadyReplicas, going.AvailableReplicas = 1, 1
	base := []bus.Delivery{
		deploymentOf(1, "shop", "web", healthyDeployment(1, 6)),
		podOf(2, "shop", "web-1", "Deployment", "web", webPodState(true)),
	}
	svc := serviceOf(3, "shop", "web", webService("http", 0, map[string]string{"app": "web"}))
	tests := []struct {
		name string
		ds   []bus.Delivery
		want []string
	}{
		{"a Service still selects it", append(append(base[:2:2], svc), deploymentOf(4, "shop", "web", zero)), []string{"propose_scale_workload Deployment/shop/web"}},
		{"nothing points at it: parked", append(base[:2:2], deploymentOf(4, "shop", "web", zero)), nil},
		{"healthy", append(base[:2:2], svc), nil},
		{"still scaling down", append(append(base[:2:2], svc), deploymentOf(4, "shop", "web", going)), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, now := replay(tc.ds)
			got := (&ScaledToZero{}).Evaluate(m, now)
			if diff := cmp.Diff(tc.want, callsOf(got)); diff != "" {
				t.Fatalf("intents (-want +got):\n%s", diff)
			}
			// In one step: a step below 6 would itself be below what it
			// needs.
			if len(got) == 1 && *got[0].ScaleWorkload.Replicas != 6 {
				t.Errorf("replicas = %d, want the 6 it ran healthy with", *got[0].ScaleWorkload.Replicas)
			}
		})
	}
}

func TestServiceFault(t *testing.T) {
	dep := deploymentOf(1, "shop", "web", healthyDeployment(1, 2))
	pod := podOf(2, "shop", "web-1", "Deployment", "web", webPodState(true))
	other := podOf(2, "shop", "db-1", "StatefulSet", "db", bus.PodState{Labels: map[string]string{"app": "db"}, Ready: true,
		Containers: []bus.ContainerState{{Name: "db", Ports: []bus.ContainerPort{{ContainerPort: 5432}}}}})
	tests := []struct {
		name  string
		ds    []bus.Delivery
		patch []wire.PatchOp
	}{{
		name: "selector matches no pod; one workload fits",
		ds:   []bus.Delivery{dep, pod, other, serviceOf(3, "shop", "web", webService("http", 0, map[string]string{"app": "web-v2"}))},
		patch: []wire.PatchOp{
			{Op: "test", Path: "/spec/selector", Value: json.RawMessage(`{"app":"web-v2"}`)},
			{Op: "replace", Path: "/spec/selector", Value: json.RawMessage(`{"app":"web"}`)},
		},
	}, {
		name: "targetPort no container declares",
		ds:   []bus.Delivery{dep, pod, serviceOf(3, "shop", "web", webService("", 8081, map[string]string{"app": "web"}))},
		patch: []wire.PatchOp{
			{Op: "test", Path: "/spec/ports/0/targetPort", Value: json.RawMessage(`8081`)},
			{Op: "replace", Path: "/spec/ports/0/targetPort", Value: json.RawMessage(`"http"`)},
		},
	}, {
		name: "healthy Service by port name",
		ds:   []bus.Delivery{dep, pod, serviceOf(3, "shop", "web", webService("http", 0, map[string]string{"app": "web"}))},
	}, {
		name: "healthy Service by port number",
		ds:   []bus.Delivery{dep, pod, serviceOf(3, "shop", "web", webService("", 8080, map[string]string{"app": "web"}))},
	}, {
		// The selector may name a workload whose pods are not up yet.
		name: "a running workload of the namespace has shown no pod",
		ds: []bus.Delivery{dep, pod, deploymentOf(4, "shop", "web-v2", healthyDeployment(1, 1)),
			serviceOf(3, "shop", "web", webService("http", 0, map[string]string{"app": "web-v2"}))},
	}, {
		name: "the selector matches a workload's pods as last seen",
		ds: []bus.Delivery{dep, pod, deploymentOf(4, "shop", "web-v2", healthyDeployment(1, 1)),
			podOf(5, "shop", "web-v2-1", "Deployment", "web-v2", bus.PodState{Labels: map[string]string{"app": "web-v2"}, Containers: []bus.ContainerState{{Name: "web"}}}),
			podOf(6, "shop", "web-v2-1", "Deployment", "web-v2", bus.PodState{Deleted: true}),
			serviceOf(7, "shop", "web", webService("http", 0, map[string]string{"app": "web-v2"}))},
	}, {
		name: "no workload declares the ports it targets",
		ds:   []bus.Delivery{dep, pod, serviceOf(3, "shop", "web", webService("metrics", 0, map[string]string{"app": "web-v2"}))},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, now := replay(tc.ds)
			got := (&ServiceFault{}).Evaluate(m, now)
			var patch []wire.PatchOp
			if len(got) > 0 {
				if len(got) != 1 || got[0].PatchWorkload == nil || got[0].PatchWorkload.Kind != "Service" {
					t.Fatalf("intents = %v, want one Service patch", callsOf(got))
				}
				patch = got[0].PatchWorkload.Patch
				if _, err := wire.Validate(got[0].PatchWorkload); err != nil {
					t.Errorf("the propose tool would refuse the arguments: %v", err)
				}
			}
			if diff := cmp.Diff(tc.patch, patch); diff != "" {
				t.Errorf("patch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOOMKilledUnderLimitRangeDefault(t *testing.T) {
	oom := bus.ContainerState{Name: "worker", State: bus.ContainerWaiting, Reason: "CrashLoopBackOff", RestartCount: 3,
		LastTerminationReason: "OOMKilled", LastExitCode: 137, MemoryLimitBytes: 64 * mi, MemoryRequestBytes: 64 * mi}
	rolled := healthyDeployment(2, 2, bus.ContainerState{Name: "worker"})
	rolled.ReadyReplicas, rolled.AvailableReplicas, rolled.UnavailableReplicas = 0, 0, 2
	ds := []bus.Delivery{
		nodeDelivery(1, "a", bus.NodeState{Ready: true, AllocatableMemoryBytes: 8 << 30}),
		deploymentOf(1, "shop", "worker", healthyDeployment(1, 2, bus.ContainerState{Name: "worker"})),
		deploymentOf(2, "shop", "worker", rolled),
		podOf(3, "shop", "worker-2-a", "Deployment", "worker", bus.PodState{Revision: 2, Containers: []bus.ContainerState{oom}}),
	}
	m, now := replay(ds)
	if got := (&BadRollout{}).Evaluate(m, now); len(got) != 0 {
		t.Errorf("BadRollout proposes %v for an OOM kill under a limit the template does not set; rolling back cannot help", callsOf(got))
	}
	got := (&OOMKilled{}).Evaluate(m, now)
	if len(got) != 1 || got[0].SetResources == nil {
		t.Fatalf("intents = %v, want one SetResources", callsOf(got))
	}
	if diff := cmp.Diff(map[string]string{"memory": "256Mi"}, got[0].SetResources.Limits); diff != "" {
		t.Errorf("limits (-want +got):\n%s", diff)
	}

	// The template sets the limit and revision 1 ran healthy: the rollout
	// is the cause, and BadRollout's to fix.
	withLimit := rolled
	withLimit.Template = []bus.ContainerState{{Name: "worker", MemoryLimitBytes: 64 * mi}}
	m, now = replay(append(ds[:2:2], deploymentOf(2, "shop", "worker", withLimit), ds[3]))
	if got := callsOf((&OOMKilled{}).Evaluate(m, now)); len(got) != 0 {
		t.Errorf("OOMKilled proposes %v for a bad rollout", got)
	}
	if got := callsOf((&BadRollout{}).Evaluate(m, now)); len(got) != 1 {
		t.Errorf("BadRollout proposes %v, want a rollback", got)
	}
}

func TestAutoscalerBounds(t *testing.T) {
	hpa := func(seq uint64, minR, maxR int32) bus.Delivery {
		return delivery(seq, bus.KindHPA, "shop", "web", func(e *bus.Envelope) {
			e.HPA = &bus.AutoscalerState{Target: bus.WorkloadRef{Kind: "Deployment", Name: "web"}, MinReplicas: minR, MaxReplicas: maxR}
		})
	}
	ds := []bus.Delivery{
		hpa(1, 3, 6), deploymentOf(2, "shop", "web", healthyDeployment(1, 3)),
		hpa(3, 1, 1), deploymentOf(4, "shop", "web", healthyDeployment(1, 1)),
	}
	// Back to 3-6 in one step: a step between would still cap web below
	// the 3 it ran healthy with.
	m, now := replay(ds)
	got := (&AutoscalerBounds{}).Evaluate(m, now.Add(time.Second))
	if len(got) != 1 || got[0].SetAutoscaler == nil || *got[0].SetAutoscaler.MinReplicas != 3 || *got[0].SetAutoscaler.MaxReplicas != 6 {
		t.Fatalf("intents = %v, want SetAutoscaler back to 3-6", callsOf(got))
	}
	ds = append(ds, hpa(5, 3, 6), deploymentOf(6, "shop", "web", healthyDeployment(1, 3)))
	m, now = replay(ds)
	if got := callsOf((&AutoscalerBounds{}).Evaluate(m, now)); len(got) != 0 {
		t.Errorf("intents once the workload runs its healthy count = %v, want none", got)
	}
	// Scaling down within its bounds is the autoscaler's job.
	m, now = replay([]bus.Delivery{hpa(1, 1, 6), deploymentOf(2, "shop", "web", healthyDeployment(1, 3)), deploymentOf(4, "shop", "web", healthyDeployment(1, 1))})
	if got := callsOf((&AutoscalerBounds{}).Evaluate(m, now)); len(got) != 0 {
		t.Errorf("intents = %v, want none", got)
	}
}

// A healthy cluster gets no proposal from any runbook, however long it is
// watched.
func TestMaintenanceRunbooksHealthyCluster(t *testing.T) {
	ds := []bus.Delivery{
		nodeDelivery(1, "a", bus.NodeState{Ready: true}), nodeDelivery(1, "b", bus.NodeState{Ready: true, Unschedulable: true}),
		deploymentOf(1, "shop", "web", healthyDeployment(1, 2)),
		podOf(2, "shop", "web-1", "Deployment", "web", webPodState(true)),
		podOf(2, "shop", "web-2", "Deployment", "web", webPodState(true)),
		serviceOf(3, "shop", "web", webService("http", 0, map[string]string{"app": "web"})),
		// Slow periodic restarts of a container that stays ready.
		podOf(4, "shop", "cache-1", "Deployment", "cache", bus.PodState{Ready: true, Labels: map[string]string{"app": "cache"},
			Containers: []bus.ContainerState{{Name: "cache", Ready: true, State: bus.ContainerRunning, RestartCount: 12, LastTerminationReason: "Error", LastExitCode: 1}}}),
		deploymentOf(4, "shop", "cache", healthyDeployment(3, 1)),
		// Network policies: a default deny, and web admitting its client.
		deploymentOf(5, "shop", "client", healthyDeployment(1, 1)),
		podOf(5, "shop", "client-1", "Deployment", "client", clientPod),
		policyOf(6, "shop", "default-deny", bus.NetworkPolicyState{PolicyTypes: []string{"Ingress"}}),
		policyOf(6, "shop", "web-ingress", ingressPolicy(nil, bus.NetworkPolicyPeer{PodSelector: podsSelector(map[string]string{"app": "client"})})),
	}
	m, now := replay(ds)
	for _, rb := range MaintenanceRunbooks() {
		for _, after := range []time.Duration{0, time.Minute, time.Hour} {
			if got := rb.Evaluate(m, now.Add(after)); len(got) != 0 {
				t.Errorf("%s after %s: %v, want nothing", rb.Name(), after, callsOf(got))
			}
		}
	}
}

func TestEscalateFreshDeployCrashLoop(t *testing.T) {
	crash := bus.ContainerState{Name: "app", State: bus.ContainerWaiting, Reason: "CrashLoopBackOff", Message: hostile,
		RestartCount: 4, LastTerminationReason: "Error", LastExitCode: 1}
	fresh := healthyDeployment(1, 1)
	fresh.ReadyReplicas, fresh.AvailableReplicas, fresh.UnavailableReplicas = 0, 0, 1
	ds := []bus.Delivery{
		deploymentOf(1, "shop", "api", fresh),
		podOf(2, "shop", "api-1", "Deployment", "api", bus.PodState{Revision: 1, Containers: []bus.ContainerState{crash}}),
	}
	m, _ := replay(ds)
	for _, rb := range MaintenanceRunbooks()[:len(MaintenanceRunbooks())-1] {
		if got := rb.Evaluate(m, at(2).Add(time.Hour)); len(got) != 0 {
			t.Errorf("%s proposes %v for a fresh deploy with no healthy revision", rb.Name(), callsOf(got))
		}
	}
	if got := (&Escalate{}).Evaluate(m, at(2).Add(20*time.Second)); len(got) != 0 {
		t.Errorf("escalated within the window: %v", callsOf(got))
	}
	got := (&Escalate{}).Evaluate(m, at(2).Add(31*time.Second))
	if diff := cmp.Diff([]string{"finding Deployment/shop/api"}, callsOf(got)); diff != "" {
		t.Fatalf("intents (-want +got):\n%s", diff)
	}
	f := got[0].Finding
	want := "Deployment shop/api (revision 1): 1 of its pods fail (api-1: container app CrashLoopBackOff, 4 restarts, last exit 1 (Error)); container app exits with code 1"
	if f.Fault != want {
		t.Errorf("fault:\n got %q\nwant %q", f.Fault, want)
	}
	if strings.Contains(f.Fault+f.Advice, "ignore previous") || len(f.Evidence) != 2 {
		t.Errorf("finding %+v carries untrusted text or lacks its evidence", f)
	}
}

// denyingProposer denies every proposal, as the gate does when a guard's
// count is over its limit.
type denyingProposer struct{ calls int }

func (d *denyingProposer) Propose(context.Context, string, wire.ProposeArgs) (wire.ProposeResult, error) {
	d.calls++
	return wire.ProposeResult{Phase: "Denied", Outcome: "Deny"}, nil
}

// A denied proposal is made again once DefaultRetryDenied has passed, and
// not before: what the gate decided on may have changed.
func TestAgentProposesAgainAfterDenial(t *testing.T) {
	tools := &denyingProposer{}
	now := at(100)
	a := &Agent{Name: "maintenance", Runbooks: []Runbook{&BadRollout{}}, Tools: tools, Clock: func() time.Time { return now }}
	for _, d := range []bus.Delivery{depDelivery(1, 1, true), depDelivery(2, 2, false), podDelivery(3, "web-2-a", 2, crashLoopBackOff(4))} {
		if err := a.Handle(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		after time.Duration
		calls int
	}{{0, 1}, {DefaultRetryDenied / 2, 1}, {DefaultRetryDenied, 2}} {
		now = at(100).Add(step.after)
		if err := a.judge(t.Context()); err != nil {
			t.Fatal(err)
		}
		if tools.calls != step.calls {
			t.Errorf("after %s: %d calls, want %d", step.after, tools.calls, step.calls)
		}
	}
}

func TestBadRolloutStorm(t *testing.T) {
	failing := func(rev int64) bus.DeploymentState {
		d := healthyDeployment(rev, 1)
		d.ReadyReplicas, d.AvailableReplicas, d.UnavailableReplicas = 0, 0, 1
		return d
	}
	var ds []bus.Delivery
	for i, name := range []string{"cart", "billing", "search", "accounts"} {
		seq := uint64(10 * (i + 1))
		ds = append(ds,
			deploymentOf(seq, "shop", name, healthyDeployment(1, 1)),
			deploymentOf(seq+1, "shop", name, failing(2)),
			podOf(seq+2, "shop", name+"-2", "Deployment", name, bus.PodState{Revision: 2, Containers: []bus.ContainerState{crashLoopBackOff(3)}}))
	}
	m, now := replay(ds)
	got := (&BadRollout{}).Evaluate(m, now)
	if diff := cmp.Diff([]string{"propose_rollback Deployment/shop/accounts"}, callsOf(got)); diff != "" {
		t.Fatalf("four Deployments failing together: intents (-want +got):\n%s", diff)
	}
	if s := got[0].Rollback.Summary; !strings.HasPrefix(s, "4 Deployments of namespace shop started failing together (accounts, billing, cart, search)") {
		t.Errorf("summary %q does not name the group", s)
	}
	// The canary's rollback (revision 3) fails too: the cause is shared.
	ds = append(ds, deploymentOf(60, "shop", "accounts", failing(3)),
		podOf(61, "shop", "accounts-3", "Deployment", "accounts", bus.PodState{Revision: 3, Containers: []bus.ContainerState{crashLoopBackOff(3)}}))
	m, now = replay(ds)
	got = (&BadRollout{}).Evaluate(m, now)
	if diff := cmp.Diff([]string{"finding Namespace/shop"}, callsOf(got)); diff != "" {
		t.Fatalf("after a rollback that did not help: intents (-want +got):\n%s", diff)
	}

	// Two apart in time are two causes, each rolled back.
	m, now = replay(append(ds[:6:6],
		deploymentOf(500, "shop", "search", healthyDeployment(1, 1)), deploymentOf(501, "shop", "search", failing(2)),
		podOf(502, "shop", "search-2", "Deployment", "search", bus.PodState{Revision: 2, Containers: []bus.ContainerState{crashLoopBackOff(3)}})))
	if got := callsOf((&BadRollout{}).Evaluate(m, now)); len(got) != 3 {
		t.Errorf("intents = %v, want a rollback each for cart and billing (together, below the storm size) and search", got)
	}
}

func TestProbeFault(t *testing.T) {
	container := func(probe *bus.Probe, ports ...bus.ContainerPort) bus.ContainerState {
		return bus.ContainerState{Name: "web", Image: "registry.example.com/web:1", Ports: ports, Readiness: probe}
	}
	onPort := func(port int32, name string) *bus.Probe {
		return &bus.Probe{Handler: bus.ProbeHTTPGet, Path: "/ready", Port: port, PortName: name, PeriodSeconds: 10}
	}
	tests := []struct {
		name  string
		c     bus.ContainerState
		patch []wire.PatchOp
	}{{
		name: "a number the container does not declare",
		c:    container(onPort(8081, ""), httpPort...),
		patch: []wire.PatchOp{
			{Op: "test", Path: "/spec/template/spec/containers/0/readinessProbe/httpGet/port", Value: json.RawMessage(`8081`)},
			{Op: "replace", Path: "/spec/template/spec/containers/0/readinessProbe/httpGet/port", Value: json.RawMessage(`"http"`)},
		},
	}, {
		name: "a name the container does not declare",
		c:    container(onPort(0, "metrics"), bus.ContainerPort{ContainerPort: 9000}),
		patch: []wire.PatchOp{
			{Op: "test", Path: "/spec/template/spec/containers/0/readinessProbe/httpGet/port", Value: json.RawMessage(`"metrics"`)},
			{Op: "replace", Path: "/spec/template/spec/containers/0/readinessProbe/httpGet/port", Value: json.RawMessage(`9000`)},
		},
	}, {
		name: "a declared port (the path is the app's business)",
		c:    container(onPort(0, "http"), httpPort...),
	}, {
		name: "no declared ports: nothing to judge on",
		c:    container(onPort(8081, "")),
	}, {
		name: "several declared ports: no one answer",
		c:    container(onPort(8081, ""), bus.ContainerPort{ContainerPort: 8080}, bus.ContainerPort{ContainerPort: 9090}),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := healthyDeployment(1, 1, tc.c)
			d.ReadyReplicas, d.AvailableReplicas, d.UnavailableReplicas = 0, 0, 1
			pod := tc.c
			pod.State = bus.ContainerRunning
			m, now := replay([]bus.Delivery{
				deploymentOf(1, "shop", "web", d),
				podOf(2, "shop", "web-1", "Deployment", "web", bus.PodState{Phase: "Running", Revision: 1, Containers: []bus.ContainerState{pod}}),
			})
			got := (&ProbeFault{}).Evaluate(m, now)
			var patch []wire.PatchOp
			if len(got) == 1 {
				patch = got[0].PatchWorkload.Patch
				if _, err := wire.Validate(got[0].PatchWorkload); err != nil {
					t.Errorf("the propose tool would refuse the arguments: %v", err)
				}
			}
			if diff := cmp.Diff(tc.patch, patch); diff != "" {
				t.Errorf("patch (-want +got):\n%s", diff)
			}
		})
	}
}

// blockingProposer holds its first call until release is closed.
type blockingProposer struct {
	mu      sync.Mutex
	calls   int
	entered chan struct{}
	release chan struct{}
}

func (b *blockingProposer) Propose(context.Context, string, wire.ProposeArgs) (wire.ProposeResult, error) {
	b.mu.Lock()
	b.calls++
	first := b.calls == 1
	b.mu.Unlock()
	if first {
		b.entered <- struct{}{}
		<-b.release
	}
	return wire.ProposeResult{Phase: "Pending"}, nil
}

// Judgements run concurrently (one per bus partition, and the tick); one
// intent is still one call.
func TestAgentProposesOnceWhileJudgingConcurrently(t *testing.T) {
	tools := &blockingProposer{entered: make(chan struct{}, 8), release: make(chan struct{})}
	a := &Agent{Name: "maintenance", Runbooks: []Runbook{&BadRollout{}}, Tools: tools, Clock: func() time.Time { return at(100) }}
	for _, d := range []bus.Delivery{depDelivery(1, 1, true), depDelivery(2, 2, false)} {
		if err := a.Handle(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	crash := podDelivery(3, "web-2-a", 2, crashLoopBackOff(4))
	errs := make(chan error, 4)
	go func() { errs <- a.Handle(t.Context(), crash) }()
	<-tools.entered // the first call is in flight
	for range 3 {
		go func() { errs <- a.judge(t.Context()) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(tools.release)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if tools.calls != 1 {
		t.Errorf("%d calls, want 1", tools.calls)
	}
}
