package shim

import (
	"context"
	"errors"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/critest"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// TestRestartContainer restarts a container end to end: the controller's
// client signs the request, the shim stops the container on a real
// containerd, the kubelet (played by the test) starts the next one, and
// Status verifies it runs with a later start. The same attempt again
// replays the result and stops nothing.
func TestRestartContainer(t *testing.T) {
	e := newEnv(t)
	image := e.ctrd.ImportImage(critest.Registry+"/web:1", critest.ImageOptions{})
	_ = image
	pod := e.ctrd.RunPod("shop", "web-1")
	first := pod.Start("app", critest.Registry+"/web:1", 0)
	e.startShim(e.shimOptions(testNode), nil)
	waitForLog(t, e.ctrd, first, "started") // it exits 0 on SIGTERM from now on

	target := bus.ContainerTarget{Namespace: "shop", Pod: "web-1", PodUID: pod.UID, Container: "app", ContainerID: "containerd://" + first}
	a := attempt(t)
	res, err := e.client.RestartContainer(t.Context(), testNode, a, bus.RestartContainerParams{Target: target, GracePeriodSeconds: 10})
	if err != nil {
		t.Fatalf("RestartContainer: %v", err)
	}
	if res.ContainerID != first || res.AlreadyStopped || res.StartedAt.IsZero() || res.FinishedAt.IsZero() {
		t.Errorf("result %+v: want container %s stopped by the shim", res, first)
	}
	if st := e.ctrd.ContainerStatus(first); st.GetState() != runtimeapi.ContainerState_CONTAINER_EXITED || st.GetExitCode() != 0 {
		t.Fatalf("container %s is %s with exit code %d, want exited 0 (it exits 0 on SIGTERM)", first, st.GetState(), st.GetExitCode())
	}

	// The kubelet starts the next attempt; Status shows it running, later.
	second := pod.Restart("app")
	// containerd measures its image filesystem every second; the status
	// reports its last measure, which must count the image imported above.
	if e.ctrd.SettledImageFSUsed() == 0 {
		t.Fatal("containerd measures no usage of its image filesystem with an image imported")
	}
	st, err := e.client.Status(t.Context(), testNode, bus.StatusParams{Container: &bus.ContainerTarget{Namespace: "shop", Pod: "web-1", Container: "app"}})
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if c := st.Container; c == nil || c.ID != second || c.State != bus.ContainerRunning || !c.StartedAt.After(res.StartedAt) || c.RestartCount != 1 {
		t.Errorf("status %+v: want %s running, restart 1, started after %s", st.Container, second, res.StartedAt)
	}
	if st.ImageFS == nil || st.ImageFS.UsedBytes <= 0 {
		t.Errorf("status image filesystem %+v: want usage", st.ImageFS)
	}

	// A retry of the same attempt replays and does not touch the new container.
	again, err := e.client.RestartContainer(t.Context(), testNode, a, bus.RestartContainerParams{Target: target, GracePeriodSeconds: 10})
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if *again != *res {
		t.Errorf("retry result %+v, want the recorded %+v", again, res)
	}
	if s := e.ctrd.ContainerStatus(second); s.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("the retry touched the restarted container: %s", s.GetState())
	}

	// A new attempt naming the old container instance is refused: it is
	// not the pod's container any more.
	_, err = e.client.RestartContainer(t.Context(), testNode, attempt(t), bus.RestartContainerParams{Target: target, GracePeriodSeconds: 10})
	wantCode(t, err, bus.ShimConflict)
}

// TestRestartResumesAfterCrash kills the shim mid-action at each step and
// retries the attempt on a new shim process: the container is stopped once,
// and the container the kubelet started after it is never touched.
func TestRestartResumesAfterCrash(t *testing.T) {
	e := newEnv(t)
	e.ctrd.ImportImage(critest.Registry+"/web:1", critest.ImageOptions{})
	for _, step := range []string{"recorded", "stopped"} {
		t.Run(step, func(t *testing.T) {
			pod := e.ctrd.RunPod("shop", "web-"+step)
			first := pod.Start("app", critest.Registry+"/web:1", 0)
			waitForLog(t, e.ctrd, first, "started")
			target := bus.ContainerTarget{Namespace: "shop", Pod: pod.Name, Container: "app"}
			p := bus.RestartContainerParams{Target: target, GracePeriodSeconds: 10}
			a := attempt(t)

			crashed := make(chan struct{})
			dying := e.startShim(e.shimOptions(testNode), func(s string) error {
				if s == step {
					close(crashed)
					return errCrash
				}
				return nil
			})
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			_, err := e.client.RestartContainer(ctx, testNode, a, p)
			cancel()
			waitCrash(t, crashed)
			dying.crash()
			if !errors.Is(err, shimclient.ErrTimeout) || !shimclient.Retryable(err) {
				t.Fatalf("a request whose shim died got %v, want a retryable timeout", err)
			}
			if step == "stopped" {
				// The container exited; the kubelet starts the next one
				// before the controller retries.
				e.ctrd.WaitExited(first, 30*time.Second)
				pod.Restart("app")
			}

			// This one serves this step only: the next step's request
			// must reach the next step's dying shim.
			retry := e.startShim(e.shimOptions(testNode), nil)
			defer retry.stop(t)
			res, err := e.client.RestartContainer(t.Context(), testNode, a, p)
			if err != nil {
				t.Fatalf("retry on a new shim: %v", err)
			}
			if res.ContainerID != first {
				t.Errorf("the retry acted on %s, want the planned %s", res.ContainerID, first)
			}
			if res.AlreadyStopped != (step == "stopped") {
				t.Errorf("AlreadyStopped = %v after a crash after %q", res.AlreadyStopped, step)
			}
			cs := pod.Containers("app")
			switch step {
			case "recorded":
				// Stopped once, by the retry.
				if len(cs) != 1 || cs[0].GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
					t.Errorf("containers %v: want the one container, exited", cs)
				}
			case "stopped":
				// The first exited, its successor runs untouched.
				if len(cs) != 2 || cs[0].GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING || cs[1].GetId() != first {
					t.Errorf("containers %v: want the restarted one running and %s exited", cs, first)
				}
			}
		})
	}
}
