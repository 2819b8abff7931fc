package shim

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/critest"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// pruneNode is a containerd with images in every situation PruneImages
// distinguishes.
type pruneNode struct {
	running, exited, allowed, keepReq string   // kept
	unused                            []string // removable, oldest first
	pause                             string
	pod                               *critest.Pod
}

// keepTools is the allow-list of the requests: the shim's own allow-list
// is registry.tend.local/base/*.
var keepTools = []string{critest.Registry + "/tools:2"}

func newPruneNode(t *testing.T, e *env) *pruneNode {
	t.Helper()
	e.keepImgs = []string{critest.Registry + "/base/*"}
	r := critest.Registry
	n := &pruneNode{}
	n.running = e.ctrd.ImportImage(r+"/web:1", critest.ImageOptions{ExtraBytes: 1 << 20, Created: time.Now().Add(-90 * 24 * time.Hour)})
	n.exited = e.ctrd.ImportImage(r+"/job:1", critest.ImageOptions{ExtraBytes: 1 << 20, Created: time.Now().Add(-80 * 24 * time.Hour)})
	n.allowed = e.ctrd.ImportImage(r+"/base/agent:7", critest.ImageOptions{ExtraBytes: 1 << 20, Created: time.Now().Add(-70 * 24 * time.Hour)})
	n.keepReq = e.ctrd.ImportImage(r+"/tools:2", critest.ImageOptions{ExtraBytes: 1 << 20, Created: time.Now().Add(-60 * 24 * time.Hour)})
	// Unused, created in this order: oldest first.
	for i, tag := range []string{"old:1", "older:1", "new:1"} {
		days := []int{40, 50, 10}[i]
		id := e.ctrd.ImportImage(r+"/"+tag, critest.ImageOptions{ExtraBytes: (i + 2) << 20, Created: time.Now().Add(-time.Duration(days) * 24 * time.Hour)})
		n.unused = append(n.unused, id)
	}
	// Oldest first: older:1 (50 days), old:1 (40), new:1 (10).
	n.unused[0], n.unused[1] = n.unused[1], n.unused[0]
	for _, id := range e.ctrd.ImageIDs() {
		if !slices.Contains([]string{n.running, n.exited, n.allowed, n.keepReq}, id) && !slices.Contains(n.unused, id) {
			n.pause = id
		}
	}
	n.pod = e.ctrd.RunPod("shop", "web-1")
	n.pod.Start("web", r+"/web:1", 0)
	job := n.pod.Start("job", r+"/job:1", 0)
	e.ctrd.StopContainer(job)
	return n
}

// TestPruneImages prunes a real containerd's images end to end: oldest
// first, down to the target, never an image a running container uses, one
// another container uses, the sandbox image, or an allow-listed one.
func TestPruneImages(t *testing.T) {
	e := newEnv(t)
	n := newPruneNode(t, e)
	e.startShim(e.shimOptions(testNode), nil)

	// Free a little: the oldest unused image is enough.
	used := int64(e.ctrd.SettledImageFSUsed())
	a := attempt(t)
	p := bus.PruneImagesParams{TargetUsedBytes: used - 1<<20, Keep: keepTools}
	res, err := e.client.PruneImages(t.Context(), testNode, a, p)
	if err != nil {
		t.Fatalf("PruneImages: %v", err)
	}
	if got := removedIDs(res); !slices.Equal(got, n.unused[:1]) {
		t.Errorf("removed %v, want the oldest unused image %v", got, n.unused[:1])
	}
	if res.UsedBytesBefore <= 0 || res.TargetUsedBytes != used-1<<20 || !res.TargetReached || res.FreedBytes < 1<<20 {
		t.Errorf("result %+v", res)
	}
	if res.KeptRunning != 1 || res.KeptInUse != 1 || res.KeptPinned != 1 || res.KeptAllowListed != 2 {
		t.Errorf("kept running %d, in use %d, pinned %d, allow-listed %d; want 1, 1, 1 (the sandbox image), 2",
			res.KeptRunning, res.KeptInUse, res.KeptPinned, res.KeptAllowListed)
	}
	// The same attempt again removes nothing more.
	again, err := e.client.PruneImages(t.Context(), testNode, a, p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removedIDs(again), removedIDs(res)) || again.FreedBytes != res.FreedBytes || len(e.ctrd.ImageIDs()) != 7 {
		t.Errorf("a retry removed %v, and %d images are left; want the recorded result and 7 images", removedIDs(again), len(e.ctrd.ImageIDs()))
	}

	// Down to nothing, and without the request's allow-list: everything
	// that may go goes, oldest first, and the target is reported as not
	// reached.
	res, err = e.client.PruneImages(t.Context(), testNode, attempt(t), bus.PruneImagesParams{TargetUsedBytes: 1})
	if err != nil {
		t.Fatalf("PruneImages: %v", err)
	}
	if got, want := removedIDs(res), append([]string{n.keepReq}, n.unused[1:]...); !slices.Equal(got, want) {
		t.Errorf("removed %v, want the other unused images oldest first %v", got, want)
	}
	if res.TargetReached {
		t.Error("a target below the images that must stay is reported reached")
	}
	left := e.ctrd.ImageIDs()
	want := []string{n.running, n.exited, n.allowed, n.pause}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("images left %v, want %v (running, exited, allow-listed by the shim, sandbox)", left, want)
	}

	// A target in percent of the filesystem the shim can see.
	st, err := e.client.Status(t.Context(), testNode, bus.StatusParams{})
	if err != nil {
		t.Fatal(err)
	}
	if st.ImageFS.CapacityBytes <= 0 || st.ImageFS.AvailableBytes <= 0 {
		t.Errorf("image filesystem %+v: want its capacity", st.ImageFS)
	}
	res, err = e.client.PruneImages(t.Context(), testNode, attempt(t), bus.PruneImagesParams{TargetUsedPercent: 99})
	if err != nil {
		t.Fatal(err)
	}
	if res.TargetUsedBytes != st.ImageFS.CapacityBytes*99/100 || len(res.Removed) != 0 || !res.TargetReached {
		t.Errorf("a target already met: %+v", res)
	}
}

// TestPruneNeverRemovesARunningImage starts a container from a planned
// image between the plan and the removal: the shim checks again and keeps it.
func TestPruneNeverRemovesARunningImage(t *testing.T) {
	e := newEnv(t)
	n := newPruneNode(t, e)
	late := e.ctrd.RunPod("shop", "late")
	var started string
	e.startShim(e.shimOptions(testNode), func(step string) error {
		if step == "recorded" {
			// The oldest unused image is planned; a container starts from it.
			started = late.Start("app", critest.Registry+"/older:1", 0)
		}
		return nil
	})
	res, err := e.client.PruneImages(t.Context(), testNode, attempt(t), bus.PruneImagesParams{All: true, Keep: keepTools})
	if err != nil {
		t.Fatalf("PruneImages: %v", err)
	}
	if res.TargetReached {
		t.Error("all that may be removed was not removed, but the target is reported reached")
	}
	if started == "" {
		t.Fatal("the hook did not run")
	}
	if got := removedIDs(res); !slices.Equal(got, n.unused[1:]) {
		t.Errorf("removed %v, want %v", got, n.unused[1:])
	}
	if res.KeptRunning != 2 {
		t.Errorf("kept %d images for running containers, want 2", res.KeptRunning)
	}
	if !slices.Contains(e.ctrd.ImageIDs(), n.unused[0]) || !slices.Contains(e.ctrd.ImageIDs(), n.running) {
		t.Error("an image a running container uses was removed")
	}
}

// TestPruneResumesAfterCrash kills the shim after its first removal; the
// retry on a new shim finishes the plan and removes nothing beyond it.
func TestPruneResumesAfterCrash(t *testing.T) {
	e := newEnv(t)
	n := newPruneNode(t, e)
	crashed := make(chan struct{})
	dying := e.startShim(e.shimOptions(testNode), func(step string) error {
		if step == "removed "+n.unused[0] {
			close(crashed)
			return errCrash
		}
		return nil
	})
	// Enough to need the two oldest unused images (about 4 and 3 MiB), not the third.
	used := int64(e.ctrd.SettledImageFSUsed())
	p := bus.PruneImagesParams{TargetUsedBytes: used - 5<<20, Keep: keepTools}
	a := attempt(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	_, err := e.client.PruneImages(ctx, testNode, a, p)
	cancel()
	waitCrash(t, crashed)
	dying.crash()
	if !errors.Is(err, shimclient.ErrTimeout) {
		t.Fatalf("got %v, want a timeout", err)
	}
	// In the meantime, more images arrive and usage grows: a second plan
	// would remove more, the resumed one does not.
	e.ctrd.ImportImage(critest.Registry+"/later:1", critest.ImageOptions{ExtraBytes: 4 << 20, Created: time.Now().Add(-365 * 24 * time.Hour)})
	e.startShim(e.shimOptions(testNode), nil)
	res, err := e.client.PruneImages(t.Context(), testNode, a, p)
	if err != nil {
		t.Fatalf("retry: %v", err)
	}
	if got := removedIDs(res); !slices.Equal(got, n.unused[:2]) {
		t.Errorf("removed %v, want the plan %v", got, n.unused[:2])
	}
	if ids := e.ctrd.ImageIDs(); !slices.Contains(ids, n.unused[2]) || len(ids) != 7 {
		t.Errorf("images left %v: want 7, with the newest unused and the one that arrived later", ids)
	}
}

func removedIDs(r *bus.PruneImagesResult) []string {
	var ids []string
	for _, img := range r.Removed {
		ids = append(ids, img.ID)
	}
	return ids
}
