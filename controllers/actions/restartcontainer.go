package actions

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch

// restartContainer restarts one container of a pod in place, on its node,
// through the runtime shim: the shim stops the pod's running container of
// that name, and the kubelet starts the next one, as after any exit.
// Verified when the newest container of that pod and name runs with a
// start after the stopped one's. It cannot be undone.
type restartContainer struct{ base }

var _ Action = (*restartContainer)(nil)

func (a *restartContainer) Info() tendv1.ActionInfo { return info(tendv1.ActionRestartContainer) }

func (a *restartContainer) Validate(p *tendv1.Proposal) error {
	if err := a.shimRequired(); err != nil {
		return err
	}
	if err := validateTarget(p); err != nil {
		return err
	}
	params := p.Spec.Parameters
	c := params.Container
	params.Container = nil
	if !paramsEmpty(params) {
		return fmt.Errorf("%w: RestartContainer takes only a container", ErrInvalidParameters)
	}
	if c == nil || c.Container == "" {
		return fmt.Errorf("%w: RestartContainer needs the container's name", ErrInvalidParameters)
	}
	return shimParams(&bus.ShimRequest{Verb: bus.VerbRestartContainer, RestartContainer: &bus.RestartContainerParams{Target: a.target(p, "")}})
}

// target is the container the proposal names, in pod podUID.
func (a *restartContainer) target(p *tendv1.Proposal, podUID string) bus.ContainerTarget {
	t := p.Spec.Target
	return bus.ContainerTarget{Namespace: t.Namespace, Pod: t.Name, PodUID: podUID, Container: p.Spec.Parameters.Container.Container}
}

// checkContainer refuses a pod whose spec has no container of that name.
func checkContainer(pod *corev1.Pod, name string) error {
	if !slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == name }) {
		return refuse(ReasonContainerNotFound, "pod %s/%s has no container %q", pod.Namespace, pod.Name, name)
	}
	return nil
}

// Facts are the pod's workload's replicas, and a budget that allows no
// disruption now: a restart takes the pod out of service for a while. A
// pod on a node no shim serves is refused.
func (a *restartContainer) Facts(ctx context.Context, p *tendv1.Proposal, target client.Object) (tendv1.Facts, time.Duration, error) {
	pod := target.(*corev1.Pod)
	if err := checkContainer(pod, p.Spec.Parameters.Container.Container); err != nil {
		return tendv1.Facts{}, 0, err
	}
	if pod.Spec.NodeName == "" {
		return tendv1.Facts{}, 0, refuse(ReasonPodNotScheduled, "pod %s/%s runs on no node yet", pod.Namespace, pod.Name)
	}
	if err := a.shimServes(ctx, pod.Spec.NodeName); err != nil {
		return tendv1.Facts{}, 0, err
	}
	f, err := podFacts(ctx, a.opts.Client, pod)
	return f, 0, err
}

// Digest: the shim writes nothing to the pod object.
func (a *restartContainer) Digest(client.Object) (string, error) { return "", nil }

// Apply asks the pod's node's shim to stop the container. A dry run reads
// the container's state through the shim and changes nothing.
func (a *restartContainer) Apply(ctx context.Context, p *tendv1.Proposal, attempt string, dryRun bool) (Result, error) {
	pod, err := a.livePod(ctx, p)
	if err != nil {
		return Result{}, err
	}
	name := p.Spec.Parameters.Container.Container
	if err := checkContainer(pod, name); err != nil {
		return Result{}, err
	}
	node, target := pod.Spec.NodeName, a.target(p, string(pod.UID))
	if dryRun {
		st, err := a.status(ctx, node, bus.StatusParams{Container: &target})
		if err != nil {
			return Result{}, err
		}
		before := fmt.Sprintf("container %s of pod %s on %s: not on the node", name, pod.Name, node)
		if c := st.Container; c != nil {
			before = fmt.Sprintf("container %s of pod %s on %s %s since %s", name, pod.Name, node, c.State, c.StartedAt.UTC().Format(time.RFC3339))
		}
		return Result{Before: before, After: "stopped; the kubelet starts it again"}, nil
	}
	res, err := a.opts.Shim.RestartContainer(ctx, node, shimAttempt(p, attempt), bus.RestartContainerParams{Target: target})
	if err != nil {
		return Result{}, shimFailed(node, bus.VerbRestartContainer, err)
	}
	before := fmt.Sprintf("container %s (%s) of pod %s on %s, started %s", name, shortID(res.ContainerID), pod.Name, node, res.StartedAt.UTC().Format(time.RFC3339))
	after := "stopped; the kubelet starts it again"
	if res.AlreadyStopped {
		after = "had stopped already; the kubelet starts it again"
	}
	return Result{Before: before, After: after, Shim: &tendv1.ShimRecord{
		Node: node, AttemptID: shimAttempt(p, attempt).ID,
		Container: &tendv1.StoppedContainer{ID: res.ContainerID, StartedAt: timePtr(res.StartedAt), RestartCount: res.RestartCount, AlreadyStopped: res.AlreadyStopped},
	}}, nil
}

// Verify reads the pod's newest container of that name through the shim:
// it must run, and have started after the one the shim stopped. Its restart
// count keys the stability window: a container that exits again restarts it.
func (a *restartContainer) Verify(ctx context.Context, p *tendv1.Proposal) (Verification, error) {
	rec, err := shimRecord(p)
	if err != nil || rec.Container == nil {
		return Verification{}, fmt.Errorf("%w: the apply recorded no stopped container", ErrInvalidParameters)
	}
	gone, err := a.podGoneFrom(ctx, p)
	if err != nil {
		return Verification{}, err
	}
	if gone != "" {
		return Verification{Checks: []tendv1.Check{{Name: "ContainerRestarted", Message: gone}}, Hopeless: gone}, nil
	}
	target := a.target(p, string(p.Spec.Target.UID))
	st, err := a.status(ctx, rec.Node, bus.StatusParams{Container: &target})
	if err != nil {
		if shimclient.Retryable(err) {
			return Verification{Checks: []tendv1.Check{{Name: "ContainerRestarted", Message: err.Error()}}}, nil
		}
		return Verification{}, err
	}
	check := tendv1.Check{Name: "ContainerRestarted"}
	c := st.Container
	var stoppedAt time.Time
	if rec.Container.StartedAt != nil {
		stoppedAt = rec.Container.StartedAt.Time
	}
	switch {
	case c == nil:
		check.Message = fmt.Sprintf("no container %s of pod %s on %s yet", target.Container, target.Pod, rec.Node)
	case c.ID == rec.Container.ID || !c.StartedAt.After(stoppedAt):
		check.Message = fmt.Sprintf("the newest container %s is the one stopped (%s); waiting for the kubelet to start the next", target.Container, shortID(rec.Container.ID))
	case c.State != bus.ContainerRunning:
		check.Message = fmt.Sprintf("container %s (%s) is %s", target.Container, shortID(c.ID), c.State)
	default:
		check.Passed = true
		check.Message = fmt.Sprintf("container %s runs again (%s, started %s, restart %d)", target.Container, shortID(c.ID), c.StartedAt.UTC().Format(time.RFC3339), c.RestartCount)
	}
	v := Verification{Checks: []tendv1.Check{check}}
	if c != nil {
		v.Restarts = map[string]int32{target.Pod + "/" + target.Container: c.RestartCount}
	}
	return v, nil
}

func (a *restartContainer) Undo(_ context.Context, p *tendv1.Proposal, _ string) (Result, error) {
	return noUndo(p)
}

func (a *restartContainer) VerifyUndo(context.Context, *tendv1.Proposal) (Verification, error) {
	return Verification{}, ErrCannotUndo
}

// shortID is a container or image ID cut for people.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
