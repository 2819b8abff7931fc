package shim

import (
	"context"
	"errors"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tendops/tend/bus"
)

// restartAction stops one running container of a pod on this node; the
// kubelet then starts it again, as it does after any exit. The plan is the
// container's ID, so a retry stops that container and never its successor.
type restartAction struct {
	s *Shim
	p *bus.RestartContainerParams
}

func (a restartAction) plan(ctx context.Context) (*attemptPlan, *bus.ShimError) {
	t := a.p.Target
	cs, err := a.s.rt.ListContainers(ctx)
	if err != nil {
		return nil, failure(err)
	}
	var found []*runtimeapi.Container
	for _, c := range cs {
		if ofPod(c, t.Namespace, t.Pod, "", t.Container) {
			found = append(found, c)
		}
	}
	if len(found) == 0 {
		return nil, shimErr(bus.ShimNotFound, "no container %s of pod %s/%s on node %s", t.Container, t.Namespace, t.Pod, a.s.opts.Node)
	}
	newestFirst(found)
	c := found[0]
	switch {
	case t.PodUID != "" && c.GetLabels()[labelPodUID] != t.PodUID:
		return nil, shimErr(bus.ShimConflict, "pod %s/%s on node %s has UID %s, not %s", t.Namespace, t.Pod, a.s.opts.Node, c.GetLabels()[labelPodUID], t.PodUID)
	case t.ContainerID != "" && c.GetId() != trimID(t.ContainerID):
		return nil, shimErr(bus.ShimConflict, "container %s of pod %s/%s is now %s, not %s", t.Container, t.Namespace, t.Pod, c.GetId(), trimID(t.ContainerID))
	case c.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING:
		return nil, shimErr(bus.ShimConflict, "container %s of pod %s/%s (%s) is %s, not running", t.Container, t.Namespace, t.Pod, c.GetId(), stateOf(c.GetState()))
	}
	return &attemptPlan{ContainerID: c.GetId(), RestartCount: int32(c.GetMetadata().GetAttempt())}, nil
}

func (a restartAction) execute(ctx context.Context, p *attemptPlan, _ bool) (*bus.ShimReply, error) {
	res := &bus.RestartContainerResult{ContainerID: p.ContainerID, RestartCount: p.RestartCount}
	st, err := a.s.rt.ContainerStatus(ctx, p.ContainerID, false)
	if errors.Is(err, ErrNotFound) {
		// Gone already (the kubelet removed it after it exited): stopped.
		res.AlreadyStopped = true
		return &bus.ShimReply{RestartContainer: res}, nil
	}
	if err != nil {
		return nil, err
	}
	if st.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
		if err := a.s.rt.StopContainer(ctx, p.ContainerID, a.p.Grace()); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		if err := a.s.step("stopped"); err != nil {
			return nil, err
		}
		if st, err = a.s.rt.ContainerStatus(ctx, p.ContainerID, false); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
	} else {
		res.AlreadyStopped = true
	}
	if s := st.GetStatus(); s != nil {
		res.StartedAt, res.FinishedAt, res.ExitCode = fromNanos(s.GetStartedAt()), fromNanos(s.GetFinishedAt()), s.GetExitCode()
	}
	return &bus.ShimReply{RestartContainer: res}, nil
}
