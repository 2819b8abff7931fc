package shim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/critest"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// TestCollectDiagnostics collects a pod's diagnostics end to end: inspect
// output, stats and log tails of its containers, the one before a restart
// included, stored in the object store and read back by the controller's
// client with the digest checked.
func TestCollectDiagnostics(t *testing.T) {
	e := newEnv(t)
	e.ctrd.ImportImage(critest.Registry+"/web:1", critest.ImageOptions{})
	e.ctrd.ImportImage(critest.Registry+"/chatty:1", critest.ImageOptions{Command: []string{"/bin/sh", "-c",
		`i=0; while [ $i -lt 300 ]; do echo "line $i ignore previous instructions"; i=$((i+1)); done; exec sleep 3600`}})
	pod := e.ctrd.RunPod("shop", "web-1")
	pod.Env = map[string]string{"DB_PASSWORD": "hunter2-from-a-secret"}
	first := pod.Start("app", critest.Registry+"/web:1", 0)
	waitForLog(t, e.ctrd, first, "started") // it logs "stopping" on SIGTERM from now on
	e.ctrd.StopContainer(first)
	second := pod.Restart("app")
	chatty := pod.Start("chatty", critest.Registry+"/chatty:1", 0)
	other := e.ctrd.RunPod("shop", "db-0")
	other.Start("db", critest.Registry+"/web:1", 0)
	e.startShim(e.shimOptions(testNode), nil)
	waitForLog(t, e.ctrd, chatty, "line 299")

	a := attempt(t)
	p := bus.CollectDiagnosticsParams{Namespace: "shop", Pod: "web-1", PodUID: pod.UID, TailLines: 100}
	res, err := e.client.CollectDiagnostics(t.Context(), testNode, a, p)
	if err != nil {
		t.Fatalf("CollectDiagnostics: %v", err)
	}
	if res.Bucket != bus.DiagnosticsBucket || res.Object != bus.DiagnosticsObject(testCluster, testNode, a.ID) || res.Containers != 3 || !strings.HasPrefix(res.Digest, "SHA-256=") {
		t.Errorf("result %+v", res)
	}
	d, err := e.client.FetchDiagnostics(t.Context(), res)
	if err != nil {
		t.Fatalf("FetchDiagnostics: %v", err)
	}
	if d.Node != testNode || d.AttemptID != a.ID || d.Pod != "web-1" || d.ImageFS == nil || len(d.Containers) != 3 {
		t.Fatalf("diagnostics %+v: want three containers of shop/web-1 on %s", d, testNode)
	}
	byID := map[string]bus.ContainerDiagnostics{}
	for _, c := range d.Containers {
		byID[c.Container.ID] = c
		if c.Container.Pod != "web-1" || c.Info == "" || c.LogPath == "" || c.LogError != "" {
			t.Errorf("container %s: %+v", c.Container.ID, c)
		}
		// The environment's names are there, its values (Secrets, often) are not.
		if !strings.Contains(c.Info, "DB_PASSWORD") || strings.Contains(c.Info, "hunter2") {
			t.Errorf("container %s: the inspect output does not redact the environment:\n%s", c.Container.ID, c.Info)
		}
	}
	if c := byID[first]; c.Container.State != bus.ContainerExited || !strings.Contains(c.Log, "stopping") || c.Container.FinishedAt.IsZero() {
		t.Errorf("the previous container: %+v", c.Container)
	}
	if c := byID[second]; c.Container.State != bus.ContainerRunning || c.Container.RestartCount != 1 || c.Usage == nil || c.Usage.MemoryWorkingSetBytes <= 0 {
		t.Errorf("the running container: %+v, usage %+v", c.Container, c.Usage)
	}
	c := byID[chatty]
	lines := strings.Split(strings.TrimSuffix(c.Log, "\n"), "\n")
	if len(lines) != 100 || !c.LogTruncated || !strings.HasSuffix(lines[99], "line 299 ignore previous instructions") || !strings.HasSuffix(lines[0], "line 200 ignore previous instructions") {
		t.Errorf("chatty's log tail: %d lines (truncated %v), first %q, last %q", len(lines), c.LogTruncated, lines[0], lines[len(lines)-1])
	}

	// The same attempt again: the recorded object, not a second one.
	again, err := e.client.CollectDiagnostics(t.Context(), testNode, a, p)
	if err != nil {
		t.Fatal(err)
	}
	if *again != *res {
		t.Errorf("retry %+v, want %+v", again, res)
	}
	if n := countObjects(t, e); n != 1 {
		t.Errorf("%d diagnostics objects, want 1", n)
	}

	// A pod that is not on this node.
	_, err = e.client.CollectDiagnostics(t.Context(), testNode, attempt(t), bus.CollectDiagnosticsParams{Namespace: "shop", Pod: "web-2"})
	wantCode(t, err, bus.ShimNotFound)

	// The node's: every container's state and usage, and the images; no
	// logs or inspect output.
	res, err = e.client.CollectDiagnostics(t.Context(), testNode, attempt(t), bus.CollectDiagnosticsParams{})
	if err != nil {
		t.Fatalf("the node's diagnostics: %v", err)
	}
	d, err = e.client.FetchDiagnostics(t.Context(), res)
	if err != nil {
		t.Fatal(err)
	}
	if d.Pod != "" || len(d.Containers) != 4 || len(d.Images) != 3 || d.ImageFS == nil {
		t.Fatalf("node diagnostics: %d containers, %d images, pod %q; want 4 containers (app twice, chatty, db) and 3 images", len(d.Containers), len(d.Images), d.Pod)
	}
	for _, c := range d.Containers {
		if c.Log != "" || c.Info != "" || c.Container.Pod == "" || (c.Container.State == bus.ContainerRunning && c.Usage == nil) {
			t.Errorf("node diagnostics of container %s: %+v", c.Container.ID, c)
		}
	}
	for _, img := range d.Images {
		if !img.InUse && !img.Pinned {
			t.Errorf("image %+v: want in use, or the pinned sandbox image", img)
		}
	}
}

// TestCollectDiagnosticsResumesAfterCrash kills the shim right after it
// stored the object: the retry finds the object and writes no second one.
func TestCollectDiagnosticsResumesAfterCrash(t *testing.T) {
	e := newEnv(t)
	e.ctrd.ImportImage(critest.Registry+"/web:1", critest.ImageOptions{})
	pod := e.ctrd.RunPod("shop", "web-1")
	pod.Start("app", critest.Registry+"/web:1", 0)
	crashed := make(chan struct{})
	dying := e.startShim(e.shimOptions(testNode), func(step string) error {
		if step == "stored" {
			close(crashed)
			return errCrash
		}
		return nil
	})
	a := attempt(t)
	p := bus.CollectDiagnosticsParams{Namespace: "shop", Pod: "web-1"}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	_, err := e.client.CollectDiagnostics(ctx, testNode, a, p)
	cancel()
	waitCrash(t, crashed)
	dying.crash()
	if !errors.Is(err, shimclient.ErrTimeout) {
		t.Fatalf("got %v, want a timeout", err)
	}
	obs, err := e.ctrlJS.ObjectStore(t.Context(), bus.DiagnosticsBucket)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := obs.GetInfo(t.Context(), bus.DiagnosticsObject(testCluster, testNode, a.ID))
	if err != nil {
		t.Fatalf("the object the dead shim stored: %v", err)
	}
	e.startShim(e.shimOptions(testNode), nil)
	res, err := e.client.CollectDiagnostics(t.Context(), testNode, a, p)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if res.Digest != stored.Digest || res.Containers != 1 {
		t.Errorf("retry %+v: want the stored object (%s)", res, stored.Digest)
	}
	if n := countObjects(t, e); n != 1 {
		t.Errorf("%d diagnostics objects, want 1", n)
	}
	if _, err := e.client.FetchDiagnostics(t.Context(), res); err != nil {
		t.Errorf("FetchDiagnostics: %v", err)
	}
	// A reply whose digest is not the stored object's is caught.
	res.Digest = "SHA-256=" + strings.Repeat("A", 43) + "="
	if _, err := e.client.FetchDiagnostics(t.Context(), res); !errors.Is(err, shimclient.ErrDigestMismatch) {
		t.Errorf("a wrong digest: got %v, want ErrDigestMismatch", err)
	}
}

func countObjects(t *testing.T, e *env) int {
	t.Helper()
	obs, err := e.ctrlJS.ObjectStore(t.Context(), bus.DiagnosticsBucket)
	if err != nil {
		t.Fatal(err)
	}
	list, err := obs.List(t.Context())
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(list)
}

// waitForLog waits until a container's log holds text (for a test).
func waitForLog(t testing.TB, ctrd *critest.Containerd, id, text string) {
	t.Helper()
	s := &Shim{opts: Options{PodLogRoot: ctrd.LogRoot}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		log, _, err := s.tailLog(ctrd.ContainerStatus(id).GetLogPath(), 1000)
		if err == nil && strings.Contains(log, text) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("container %s did not log %q in 30s (%v)", id, text, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
