package shim

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tendops/tend/bus"
)

// pruneAction removes images no container uses, oldest first, until the
// image filesystem's usage is expected to be at the target, or all of them
// (All). Like the kubelet's image garbage collection, it expects each image
// to free its size as the runtime lists it; VerbStatus reads the usage the
// runtime measures afterwards. It never removes
// an image a running container uses (checked again right before each
// removal), one another container uses, one the runtime pins (the sandbox
// image), or one the node's or the request's allow-list names.
//
// Oldest first: images the shim has not seen a container use since it
// started go first, by the creation time in their configuration; then the
// others, least recently used first.
type pruneAction struct {
	s *Shim
	p *bus.PruneImagesParams
}

func (a pruneAction) plan(ctx context.Context) (*attemptPlan, *bus.ShimError) {
	fs, err := a.s.imageFS(ctx)
	if err != nil {
		return nil, failure(err)
	}
	target := a.p.TargetUsedBytes
	if a.p.TargetUsedPercent != 0 {
		if fs.CapacityBytes == 0 {
			return nil, shimErr(bus.ShimConflict, "the shim cannot see the image filesystem at %s to know its capacity; give a target in bytes", fs.Mountpoint)
		}
		target = fs.CapacityBytes * int64(a.p.TargetUsedPercent) / 100
	}
	images, err := a.s.rt.ListImages(ctx)
	if err != nil {
		return nil, failure(err)
	}
	cs, err := a.s.rt.ListContainers(ctx)
	if err != nil {
		return nil, failure(err)
	}
	inUse, running := imageUsers(cs)
	a.s.use.saw(inUse, a.s.opts.Now())
	sandbox, err := a.s.sandboxImage(ctx)
	if err != nil {
		return nil, failure(err)
	}
	p := &attemptPlan{UsedBytesBefore: fs.UsedBytes, TargetUsedBytes: target, All: a.p.All}
	type candidate struct {
		img      *runtimeapi.Image
		lastUsed time.Time
		created  time.Time
	}
	var candidates []candidate
	for _, img := range images {
		switch {
		case usedBy(running, img):
			p.KeptRunning++
		case usedBy(inUse, img):
			p.KeptInUse++
		case img.GetPinned() || keeps(sandbox, img):
			p.KeptPinned++
		case keeps(a.s.opts.KeepImages, img) || keeps(a.p.Keep, img):
			p.KeptAllowListed++
		default:
			candidates = append(candidates, candidate{img: img, lastUsed: a.s.use.lastUsed(img.GetId())})
		}
	}
	need := fs.UsedBytes - target
	if a.p.All {
		need = math.MaxInt64
	}
	if need <= 0 {
		return p, nil
	}
	for i := range candidates {
		created, err := a.s.imageCreated(ctx, candidates[i].img.GetId())
		if err != nil {
			return nil, failure(err)
		}
		candidates[i].created = created
	}
	slices.SortStableFunc(candidates, func(x, y candidate) int {
		return cmp.Or(x.lastUsed.Compare(y.lastUsed), x.created.Compare(y.created), cmp.Compare(x.img.GetId(), y.img.GetId()))
	})
	var freed int64
	for _, c := range candidates {
		if freed >= need {
			break
		}
		p.Images = append(p.Images, bus.PrunedImage{ID: c.img.GetId(), Tags: c.img.GetRepoTags(), SizeBytes: int64(c.img.GetSize())})
		freed += int64(c.img.GetSize())
	}
	return p, nil
}

func (a pruneAction) execute(ctx context.Context, p *attemptPlan, _ bool) (*bus.ShimReply, error) {
	res := &bus.PruneImagesResult{
		UsedBytesBefore: p.UsedBytesBefore, TargetUsedBytes: p.TargetUsedBytes,
		KeptRunning: p.KeptRunning, KeptInUse: p.KeptInUse, KeptPinned: p.KeptPinned, KeptAllowListed: p.KeptAllowListed,
	}
	for _, img := range p.Images {
		// Check again, right before removing it, that no container uses
		// the image: one may have been created since the plan was made.
		cs, err := a.s.rt.ListContainers(ctx)
		if err != nil {
			return nil, err
		}
		inUse, running := imageUsers(cs)
		st, err := a.s.rt.ImageStatus(ctx, img.ID, false)
		if err != nil {
			return nil, err
		}
		if st.GetImage() == nil {
			// Removed by an earlier try of this attempt (or by the
			// kubelet's garbage collection).
			res.Removed = append(res.Removed, img)
			res.FreedBytes += img.SizeBytes
			continue
		}
		switch {
		case usedBy(running, st.GetImage()):
			res.KeptRunning++
			continue
		case usedBy(inUse, st.GetImage()):
			res.KeptInUse++
			continue
		}
		if err := a.s.rt.RemoveImage(ctx, img.ID); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		res.Removed = append(res.Removed, img)
		res.FreedBytes += img.SizeBytes
		if err := a.s.step("removed " + img.ID); err != nil {
			return nil, err
		}
	}
	res.EstimatedUsedBytesAfter = max(p.UsedBytesBefore-res.FreedBytes, 0)
	res.TargetReached = res.EstimatedUsedBytesAfter <= p.TargetUsedBytes
	if p.All {
		res.TargetReached = len(res.Removed) == len(p.Images)
	}
	return &bus.ShimReply{PruneImages: res}, nil
}

// imageCreated returns the creation time in an image's configuration, zero
// when the runtime does not report it. It is remembered per image ID (an
// ID is the digest of that configuration).
func (s *Shim) imageCreated(ctx context.Context, id string) (time.Time, error) {
	s.mu.Lock()
	t, ok := s.created[id]
	s.mu.Unlock()
	if ok {
		return t, nil
	}
	st, err := s.rt.ImageStatus(ctx, id, true)
	if err != nil {
		return time.Time{}, err
	}
	// containerd's verbose image status: {"info": "{\"imageSpec\": {\"created\": …}}"}.
	var info struct {
		ImageSpec struct {
			Created *time.Time `json:"created"`
		} `json:"imageSpec"`
	}
	if raw, ok := st.GetInfo()["info"]; ok && json.Unmarshal([]byte(raw), &info) == nil && info.ImageSpec.Created != nil {
		t = info.ImageSpec.Created.UTC()
	}
	s.mu.Lock()
	s.created[id] = t
	s.mu.Unlock()
	return t, nil
}

// sandboxImage returns the pod sandbox image the runtime is configured with,
// which no container lists but every pod runs: containerd reports it in its
// verbose status ("config": {"sandboxImage": …}). Runtimes that pin it
// instead (CRI's pinned flag) report nothing here.
func (s *Shim) sandboxImage(ctx context.Context) ([]string, error) {
	st, err := s.rt.Status(ctx, true)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		SandboxImage string `json:"sandboxImage"`
	}
	if raw, ok := st.GetInfo()["config"]; ok && json.Unmarshal([]byte(raw), &cfg) == nil && cfg.SandboxImage != "" {
		return []string{cfg.SandboxImage}, nil
	}
	return nil, nil
}
