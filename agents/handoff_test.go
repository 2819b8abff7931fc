package agents

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tendops/tend/bus"
)

// handoffAgent is a hybrid agent over every maintenance runbook, with a
// planner that keeps its problems and a clock the test moves.
func handoffAgent(t *testing.T, pl Planner) (*Agent, *time.Time) {
	t.Helper()
	now := at(0)
	a := &Agent{Name: "maintenance", Runbooks: MaintenanceRunbooks(), Tools: &countingProposer{}, Clock: func() time.Time { return now }}
	if err := a.SetBrain(BrainHybrid, pl); err != nil {
		t.Fatal(err)
	}
	return a, &now
}

// feed hands the agent ds, its clock at the time of the last of them.
func feed(t *testing.T, a *Agent, now *time.Time, ds ...bus.Delivery) {
	t.Helper()
	*now = ds[len(ds)-1].Envelope.Time
	for _, d := range ds {
		if err := a.Handle(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
}

func judgeAt(t *testing.T, a *Agent, now *time.Time, when time.Time) {
	t.Helper()
	*now = when
	if err := a.judge(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// quotaBlocked is shop/api scaled up from 3 to 5 replicas while the
// namespace's quota forbids more pods: no pod fails and no revision
// changed, so no runbook claims it; its ReplicaSet cannot create pods.
func quotaBlocked(seq uint64) bus.Delivery {
	st := healthyDeployment(1, 5)
	st.Generation, st.ObservedGeneration = 2, 2
	st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, st.UnavailableReplicas = 3, 3, 3, 2
	st.Conditions = []bus.Condition{{Type: "ReplicaFailure", Status: "True", Reason: "FailedCreate", Message: hostile}}
	return deploymentOf(seq, "shop", "api", st)
}

func apiPods(seq uint64, n int) []bus.Delivery {
	var out []bus.Delivery
	for i := range n {
		out = append(out, podOf(seq, "shop", "api-"+string(rune('a'+i)), "Deployment", "api", bus.PodState{Phase: "Running", Ready: true, Revision: 1,
			Labels: map[string]string{"app": "api"}, Containers: []bus.ContainerState{running()}}))
	}
	return out
}

// TestHandoff: the hybrid brain hands the planner an object that stays
// unhealthy past the settle time and that no runbook claims, once, and
// again only after the cooldown; an object a runbook claims, and one that
// recovers before the settle time, are never handed over.
func TestHandoff(t *testing.T) {
	t.Run("unclaimed is handed over once", func(t *testing.T) {
		pl := &problemLog{}
		a, now := handoffAgent(t, pl)
		feed(t, a, now, append(apiPods(1, 3), healthyOf(2, "shop", "api", 3), quotaBlocked(3))...)
		judgeAt(t, a, now, at(3))
		judgeAt(t, a, now, at(3).Add(DefaultHandoffSettle-time.Second))
		if got := pl.objects(); len(got) != 0 {
			t.Fatalf("handed over %v before the settle time", got)
		}
		judgeAt(t, a, now, at(3).Add(DefaultHandoffSettle))
		judgeAt(t, a, now, at(3).Add(DefaultHandoffSettle+10*time.Second))
		if diff := cmp.Diff([]string{"Deployment/shop/api"}, pl.objects()); diff != "" {
			t.Fatalf("handed over (-want +got):\n%s", diff)
		}
		p := pl.problems[0]
		if !strings.HasPrefix(p.ID, "inc-") || !strings.Contains(p.Summary, "cannot create pods (FailedCreate)") || len(p.Evidence) == 0 || len(p.Telemetry) < 2 {
			t.Errorf("the problem lacks its ID, its typed summary, evidence or telemetry: %+v", p)
		}
		if strings.Contains(p.Summary, "ignore previous") {
			t.Errorf("the summary copies cluster text: %q", p.Summary)
		}
		// The cooldown: still unhealthy, handed over again only after it.
		judgeAt(t, a, now, at(3).Add(DefaultHandoffSettle+DefaultHandoffCooldown-time.Second))
		if n := len(pl.objects()); n != 1 {
			t.Fatalf("handed over %d times within the cooldown", n)
		}
		judgeAt(t, a, now, at(3).Add(DefaultHandoffSettle+DefaultHandoffCooldown))
		if n := len(pl.objects()); n != 2 {
			t.Fatalf("handed over %d times after the cooldown; want 2", n)
		}
		if tools := a.Tools.(*countingProposer).tools; len(tools) != 0 {
			t.Errorf("the runbooks proposed %v for a fault none claims", tools)
		}
	})

	t.Run("recovered before the settle time", func(t *testing.T) {
		pl := &problemLog{}
		a, now := handoffAgent(t, pl)
		feed(t, a, now, append(apiPods(1, 3), healthyOf(2, "shop", "api", 3), quotaBlocked(3))...)
		judgeAt(t, a, now, at(20))
		feed(t, a, now, healthyOf(25, "shop", "api", 3))
		judgeAt(t, a, now, at(3).Add(2*DefaultHandoffSettle))
		// Unhealthy again: it settles again, from now.
		feed(t, a, now, quotaBlocked(80))
		judgeAt(t, a, now, at(80).Add(DefaultHandoffSettle/2))
		if got := pl.objects(); len(got) != 0 {
			t.Errorf("handed over %v, which recovered", got)
		}
	})

	t.Run("claimed by a runbook", func(t *testing.T) {
		// team/web broke with a rollout: bad-rollout proposes a rollback,
		// and escalate also reports it; the planner gets nothing.
		pl := &problemLog{}
		a, now := handoffAgent(t, pl)
		feed(t, a, now, depDelivery(1, 1, true), depDelivery(2, 2, false), podDelivery(3, "web-2-a", 2, crashLoopBackOff(4)))
		for i := range 10 {
			judgeAt(t, a, now, at(3).Add(time.Duration(i)*DefaultHandoffSettle))
		}
		if got := pl.objects(); len(got) != 0 {
			t.Errorf("handed over %v, which bad-rollout claims", got)
		}
		if diff := cmp.Diff([]string{"propose_rollback"}, a.Tools.(*countingProposer).tools); diff != "" {
			t.Errorf("proposals (-want +got):\n%s", diff)
		}
	})

	t.Run("explained by another object", func(t *testing.T) {
		// Node n1 stopped, and the only pod of shop/api, behind Service
		// shop/api, ran on it: one incident, the node's (node-health does
		// not act on a node that is the only one).
		pl := &problemLog{}
		a, now := handoffAgent(t, pl)
		st := healthyDeployment(1, 1)
		st.ReadyReplicas, st.AvailableReplicas, st.UnavailableReplicas = 0, 0, 1
		feed(t, a, now,
			nodeDelivery(1, "n1", bus.NodeState{Ready: false}),
			deploymentOf(2, "shop", "api", st),
			podOf(3, "shop", "api-a", "Deployment", "api", bus.PodState{Phase: "Running", NodeName: "n1", Revision: 1,
				Labels: map[string]string{"app": "api"}, Containers: []bus.ContainerState{{Name: "app", State: bus.ContainerRunning}}}),
			serviceOf(4, "shop", "api", bus.ServiceState{Selector: map[string]string{"app": "api"}}),
		)
		judgeAt(t, a, now, at(4).Add(2*DefaultHandoffSettle))
		if diff := cmp.Diff([]string{"Node/n1"}, pl.objects()); diff != "" {
			t.Errorf("handed over (-want +got):\n%s", diff)
		}
	})

	t.Run("one run per object at a time", func(t *testing.T) {
		// While the planner works on shop/api (here, past the cooldown),
		// the object is not handed over again.
		var a *Agent
		var now *time.Time
		runs := 0
		pl := plannerFunc(func(context.Context, Problem) {
			runs++
			if runs == 1 {
				judgeAt(t, a, now, now.Add(2*DefaultHandoffCooldown))
			}
		})
		a, now = handoffAgent(t, pl)
		feed(t, a, now, append(apiPods(1, 3), healthyOf(2, "shop", "api", 3), quotaBlocked(3))...)
		judgeAt(t, a, now, at(3).Add(DefaultHandoffSettle))
		if runs != 1 {
			t.Errorf("the planner ran %d times; want 1 while the first run went on", runs)
		}
	})

	t.Run("starting, not failing", func(t *testing.T) {
		// A new Deployment whose pod waits for its volumes (no container
		// ran yet), and a new Service whose selector matches no pod (and
		// fits no workload, so service-fault leaves it): starting, until
		// StartGrace ends.
		pl := &problemLog{}
		a, now := handoffAgent(t, pl)
		st := healthyDeployment(1, 1)
		st.ReadyReplicas, st.AvailableReplicas, st.UnavailableReplicas = 0, 0, 1
		feed(t, a, now,
			serviceOf(1, "shop", "web", bus.ServiceState{Selector: map[string]string{"tier": "web"}}),
			deploymentOf(2, "shop", "api", st),
			podOf(3, "shop", "api-a", "Deployment", "api", bus.PodState{Phase: "Pending", NodeName: "n1", Revision: 1, Labels: map[string]string{"app": "api"},
				Containers: []bus.ContainerState{{Name: "app", State: bus.ContainerWaiting, Reason: "ContainerCreating"}}}),
			nodeDelivery(4, "n1", bus.NodeState{Ready: true}),
		)
		judgeAt(t, a, now, at(1).Add(StartGrace-time.Second))
		if got := pl.objects(); len(got) != 0 {
			t.Fatalf("handed over %v while starting", got)
		}
		judgeAt(t, a, now, at(1).Add(StartGrace))
		judgeAt(t, a, now, at(3).Add(DefaultHandoffSettle+StartGrace-time.Second))
		if diff := cmp.Diff([]string{"Service/shop/web"}, pl.objects()); diff != "" {
			t.Fatalf("handed over (-want +got):\n%s", diff)
		}
		judgeAt(t, a, now, at(3).Add(DefaultHandoffSettle+StartGrace))
		if diff := cmp.Diff([]string{"Service/shop/web", "Deployment/shop/api"}, pl.objects()); diff != "" {
			t.Errorf("handed over (-want +got):\n%s", diff)
		}
	})

	t.Run("healthy, and scaled to zero with nothing pointing at it", func(t *testing.T) {
		pl := &problemLog{}
		a, now := handoffAgent(t, pl)
		zero := healthyDeployment(1, 0)
		feed(t, a, now, append(apiPods(1, 3), healthyOf(2, "shop", "api", 3), deploymentOf(3, "shop", "batch", zero),
			serviceOf(4, "shop", "api", bus.ServiceState{Selector: map[string]string{"app": "api"}}))...)
		judgeAt(t, a, now, at(4).Add(2*DefaultHandoffSettle))
		if got := pl.objects(); len(got) != 0 {
			t.Errorf("handed over %v from a healthy namespace", got)
		}
	})
}

// TestHandoffDeterministic: the deterministic brain hands nothing over,
// whatever is unhealthy.
func TestHandoffDeterministic(t *testing.T) {
	pl := &problemLog{}
	a, now := handoffAgent(t, pl)
	if err := a.SetBrain(BrainDeterministic, nil); err != nil {
		t.Fatal(err)
	}
	feed(t, a, now, append(apiPods(1, 3), healthyOf(2, "shop", "api", 3), quotaBlocked(3))...)
	judgeAt(t, a, now, at(3).Add(2*DefaultHandoffSettle))
	if a.sick != nil || a.handed != nil || len(pl.objects()) != 0 {
		t.Errorf("the deterministic brain judged hand-offs: sick %v, handed %v", a.sick, a.handed)
	}
}

func healthyOf(seq uint64, namespace, name string, replicas int32) bus.Delivery {
	return deploymentOf(seq, namespace, name, healthyDeployment(1, replicas))
}
