package harness

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/evals/oracle"
	"github.com/tendops/tend/evals/scenario"
	"github.com/tendops/tend/internal/localstack"
)

// TestAppliedSinceToTheSecond checks that an apply that started a moment
// after a look counts as since that look, although the API server keeps
// its start in whole seconds; one a second earlier does not.
func TestAppliedSinceToTheSecond(t *testing.T) {
	look := time.Date(2026, 1, 1, 12, 0, 7, 600_000_000, time.UTC)
	state := func(started time.Time) *oracle.State {
		// What a read returns: the start as the API server stores it.
		stored := started.Truncate(time.Second)
		return &oracle.State{Proposals: []tendv1.Proposal{{Status: tendv1.ProposalStatus{
			Apply: &tendv1.ApplyRecord{Attempt: "a", StartedAt: metav1.NewTime(stored)}}}}}
	}
	tests := []struct {
		name    string
		started time.Time
		want    bool
	}{
		{"a moment after the look, in the same second", look.Add(200 * time.Millisecond), true},
		{"in the next second", look.Add(time.Second), true},
		{"a second before the look", look.Add(-time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := appliedSince(state(tt.started), look); got != tt.want {
				t.Fatalf("appliedSince = %v, want %v", got, tt.want)
			}
		})
	}
	if appliedSince(&oracle.State{Proposals: []tendv1.Proposal{{}}}, look) {
		t.Fatal("a proposal never applied counts as applied")
	}
}

// shuffled is a watch-fed cache that lags: it lists what its client held
// when it was taken (before the injection), in no particular order.
type shuffled struct {
	client.Reader
	mu    sync.Mutex
	calls int
}

func (s *shuffled) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := s.Reader.List(ctx, list, opts...); err != nil {
		return err
	}
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.calls++
	if s.calls%2 == 0 {
		slices.Reverse(items)
	}
	s.mu.Unlock()
	return apimeta.SetList(list, items)
}

// healing is the API server while an agent heals the autoscaler: after
// the first look has read the autoscaler, the agent's proposal applies
// and points it back, before any later look.
type healing struct {
	client.Client
	t     *testing.T
	once  sync.Once
	reads int
}

func (h *healing) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if err := h.Client.List(ctx, list, opts...); err != nil {
		return err
	}
	if _, ok := list.(*autoscalingv2.HorizontalPodAutoscalerList); ok {
		h.reads++
		if h.reads == 1 {
			h.once.Do(func() { h.heal(ctx) })
		}
	}
	return nil
}

func (h *healing) heal(ctx context.Context) {
	var hpa autoscalingv2.HorizontalPodAutoscaler
	if err := h.Get(ctx, client.ObjectKey{Namespace: "ev-1", Name: "web"}, &hpa); err != nil {
		h.t.Error(err)
		return
	}
	hpa.Spec.ScaleTargetRef.Name = "web"
	if err := h.Update(ctx, &hpa); err != nil {
		h.t.Error(err)
	}
	// The apply's start, in whole seconds as the API server keeps it.
	p := &tendv1.Proposal{ObjectMeta: metav1.ObjectMeta{Namespace: "ev-1", Name: "fix"},
		Status: tendv1.ProposalStatus{Phase: tendv1.PhaseSucceeded,
			Apply: &tendv1.ApplyRecord{Attempt: "a", StartedAt: metav1.NewTime(time.Now().Truncate(time.Second))}}}
	if err := h.Create(ctx, p); err != nil {
		h.t.Error(err)
	}
}

// hpaObjects is a settled Deployment web with three ready pods, and its
// autoscaler pointed at target.
func hpaObjects(target string) []client.Object {
	objs := []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ev-1", Name: "web", UID: "d", Generation: 1},
			Spec: appsv1.DeploymentSpec{Replicas: ptr.To[int32](3)},
			Status: appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 3, UpdatedReplicas: 3, ReadyReplicas: 3,
				AvailableReplicas: 3}},
		&autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: "ev-1", Name: "web"},
			Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MinReplicas: ptr.To[int32](3), MaxReplicas: 6,
				ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target}}},
	}
	for _, name := range []string{"web-a", "web-b", "web-c"} {
		objs = append(objs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ev-1", Name: name},
			Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{{Name: "web", Image: "registry.tend.local/shop/web:1.4"}}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
				ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}})
	}
	return objs
}

func hpaScenario() *scenario.Scenario {
	sc := &scenario.Scenario{Name: "hpa", Faults: []scenario.Fault{{Patch: &scenario.Patch{
		Target: scenario.ObjectRef{APIVersion: "autoscaling/v2", Kind: "HorizontalPodAutoscaler", Name: "web"}}}}}
	sc.Oracle.Predicates = []scenario.Predicate{{Autoscaler: &scenario.AutoscalerPredicate{Name: "web", MinMaxReplicas: 3}}}
	sc.Timeouts.Manifest = metav1.Duration{Duration: 30 * time.Second}
	return sc
}

func fakeServer(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	return fake.NewClientBuilder().WithScheme(localstack.Scheme()).WithObjects(objs...).Build()
}

// TestFaultShowsWhenHealedBeforeTheCacheSees checks that an autoscaler
// fault, which takes effect with the injection's write, shows although
// the harness's cache never sees it (it lags, and lists in no order) and an
// agent's proposal points the autoscaler back right after the first look:
// the harness looks at the API server first, and confirms there.
func TestFaultShowsWhenHealedBeforeTheCacheSees(t *testing.T) {
	sc := hpaScenario()
	scope := oracle.Scope{Namespace: "ev-1", SkipRBAC: true}
	// The cache holds the baseline: it has not seen the injection, and
	// will not before the agent heals the autoscaler.
	cache := &shuffled{Reader: fakeServer(t, hpaObjects("web")...)}
	base, err := oracle.Gather(t.Context(), cache, scope)
	if err != nil {
		t.Fatal(err)
	}
	server := &healing{Client: fakeServer(t, hpaObjects("web-v2")...), t: t}
	r := &runCtx{e: &env{stack: &Stack{}, admin: server, reader: cache}, sc: sc, scope: scope, res: &RunResult{}}
	inject := time.Now()
	shown, err := r.shows(t.Context(), inject, base)
	if err != nil {
		t.Fatalf("the fault did not show: %v", err)
	}
	if shown.Before(inject) {
		t.Fatalf("shown at %s, before the injection at %s", shown, inject)
	}
	if server.reads < 2 {
		t.Fatalf("the look that confirmed the fault did not read the API server (%d reads of the autoscaler there)", server.reads)
	}
}
