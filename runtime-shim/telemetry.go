package shim

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-logr/logr"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tendops/tend/bus"
)

// publishTimeout bounds one telemetry publish.
const publishTimeout = 10 * time.Second

// reporter samples the runtime and publishes the node's telemetry. Each kind
// is sampled on its own interval and published only when it differs from
// what was last published, so a kind goes out at most once per interval.
// Every envelope has its own ID (<node>/<kind>/<instance>-<seq>), which
// JetStream uses to store a retried publish once.
type reporter struct {
	s   *Shim
	pub *bus.Publisher
	seq uint64
	// last is the hash of what was last published, per kind.
	last map[bus.Kind]string
	// statuses caches container statuses by ID while their state is the
	// same: the details of a running or exited container do not change.
	statuses map[string]cachedStatus
	// cpu is the previous CPU sample of each container.
	cpu map[string]cpuSample
}

type cachedStatus struct {
	state  runtimeapi.ContainerState
	status *runtimeapi.ContainerStatus
}

type cpuSample struct {
	coreNanos uint64
	at        int64 // nanoseconds
}

// runTelemetry samples and publishes until ctx is done.
func (s *Shim) runTelemetry(ctx context.Context) {
	r := &reporter{
		s: s, pub: bus.NewPublisher(s.opts.JS, s.opts.Cluster, source),
		last: map[bus.Kind]string{}, statuses: map[string]cachedStatus{}, cpu: map[string]cpuSample{},
	}
	ticker := func(d time.Duration) (<-chan time.Time, func()) {
		if d < 0 {
			return nil, func() {}
		}
		t := time.NewTicker(d)
		return t.C, t.Stop
	}
	stateC, stopState := ticker(s.opts.StateInterval)
	defer stopState()
	statsC, stopStats := ticker(s.opts.StatsInterval)
	defer stopStats()
	imageC, stopImage := ticker(s.opts.ImageInterval)
	defer stopImage()
	// A first sample of each kind right away.
	if stateC != nil {
		r.containers(ctx)
	}
	if imageC != nil {
		r.images(ctx)
	}
	if statsC != nil {
		r.stats(ctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-stateC:
			r.containers(ctx)
		case <-statsC:
			r.stats(ctx)
		case <-imageC:
			r.images(ctx)
		}
	}
}

// containers publishes the state of every container when it changed.
func (r *reporter) containers(ctx context.Context) {
	log := logr.FromContextOrDiscard(ctx)
	cs, err := r.s.rt.ListContainers(ctx)
	if err != nil {
		log.Error(err, "Failed to list containers for telemetry")
		return
	}
	inUse, _ := imageUsers(cs)
	r.s.use.saw(inUse, r.s.opts.Now())
	seen := make(map[string]bool, len(cs))
	list := make([]bus.RuntimeContainer, 0, len(cs))
	for _, c := range cs {
		seen[c.GetId()] = true
		cached, ok := r.statuses[c.GetId()]
		if !ok || cached.state != c.GetState() {
			st, err := r.s.rt.ContainerStatus(ctx, c.GetId(), false)
			if err != nil {
				if !errors.Is(err, ErrNotFound) {
					log.Error(err, "Failed to read a container's status for telemetry", "container", c.GetId())
				}
				continue
			}
			cached = cachedStatus{state: c.GetState(), status: st.GetStatus()}
			r.statuses[c.GetId()] = cached
		}
		list = append(list, runtimeContainer(c, cached.status))
	}
	for id := range r.statuses {
		if !seen[id] {
			delete(r.statuses, id)
		}
	}
	// What matters most first: running, then waiting, then the most
	// recently finished. What does not fit is left out from the end.
	rank := map[string]int{bus.ContainerRunning: 0, bus.ContainerCreated: 1, bus.ContainerUnknown: 2, bus.ContainerExited: 3}
	slices.SortFunc(list, func(a, b bus.RuntimeContainer) int {
		return cmp.Or(cmp.Compare(rank[a.State], rank[b.State]), b.FinishedAt.Compare(a.FinishedAt),
			cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pod, b.Pod), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	p := &bus.NodeContainers{Containers: list}
	r.publish(ctx, bus.KindContainers, p, func(e *bus.Envelope) { e.Containers = p }, func() bool {
		return shrink(&p.Containers, &p.Omitted)
	})
}

// stats publishes a CPU and memory sample of the containers.
func (r *reporter) stats(ctx context.Context) {
	stats, err := r.s.rt.ListContainerStats(ctx)
	if err != nil {
		logr.FromContextOrDiscard(ctx).Error(err, "Failed to list container stats for telemetry")
		return
	}
	seen := make(map[string]bool, len(stats))
	p := &bus.NodeContainerStats{Timestamp: r.s.opts.Now().UTC(), Containers: []bus.RuntimeContainerUsage{}}
	for _, st := range stats {
		a := st.GetAttributes()
		id := a.GetId()
		if id == "" {
			continue
		}
		seen[id] = true
		u := bus.RuntimeContainerUsage{
			ID: id, Namespace: a.GetLabels()[labelPodNamespace], Pod: a.GetLabels()[labelPodName], Name: a.GetLabels()[labelContainerName],
			MemoryWorkingSetBytes: int64(st.GetMemory().GetWorkingSetBytes().GetValue()),
			WritableLayerBytes:    int64(st.GetWritableLayer().GetUsedBytes().GetValue()),
		}
		if u.Name == "" {
			u.Name = a.GetMetadata().GetName()
		}
		if cpu := st.GetCpu(); cpu != nil && cpu.GetUsageCoreNanoSeconds() != nil {
			now := cpuSample{coreNanos: cpu.GetUsageCoreNanoSeconds().GetValue(), at: cpu.GetTimestamp()}
			u.CPUCoreNanoseconds = int64(now.coreNanos)
			if prev, ok := r.cpu[id]; ok && now.at > prev.at && now.coreNanos >= prev.coreNanos {
				u.CPUMillicores = int64((now.coreNanos - prev.coreNanos) * 1000 / uint64(now.at-prev.at))
			}
			r.cpu[id] = now
		}
		p.Containers = append(p.Containers, u)
	}
	for id := range r.cpu {
		if !seen[id] {
			delete(r.cpu, id)
		}
	}
	// The busiest first, so that what is left out matters least.
	slices.SortFunc(p.Containers, func(a, b bus.RuntimeContainerUsage) int {
		return cmp.Or(cmp.Compare(b.CPUMillicores, a.CPUMillicores), cmp.Compare(b.MemoryWorkingSetBytes, a.MemoryWorkingSetBytes), cmp.Compare(a.ID, b.ID))
	})
	r.publish(ctx, bus.KindContainerStats, p.Containers, func(e *bus.Envelope) { e.ContainerStats = p }, func() bool {
		return shrink(&p.Containers, &p.Omitted)
	})
}

// images publishes the images and the image filesystem's usage when they changed.
func (r *reporter) images(ctx context.Context) {
	log := logr.FromContextOrDiscard(ctx)
	fs, err := r.s.imageFS(ctx)
	if err != nil {
		log.Error(err, "Failed to read the image filesystem for telemetry")
	} else {
		const mib = 1 << 20
		key := [4]int64{fs.UsedBytes, fs.InodesUsed, fs.CapacityBytes / mib, fs.AvailableBytes / mib}
		r.publish(ctx, bus.KindImageFS, key, func(e *bus.Envelope) { e.ImageFS = fs }, nil)
	}
	images, err := r.s.nodeImages(ctx)
	if err != nil {
		log.Error(err, "Failed to list images for telemetry")
		return
	}
	present := make(map[string]bool, len(images))
	for _, img := range images {
		present[img.ID] = true
	}
	r.s.use.forget(present)
	r.s.forgetCreated(present)
	p := &bus.NodeImages{Images: images}
	r.publish(ctx, bus.KindImages, p, func(e *bus.Envelope) { e.Images = p }, func() bool {
		return shrink(&p.Images, &p.Omitted)
	})
}

// nodeImages lists the node's images with their use, the largest first.
func (s *Shim) nodeImages(ctx context.Context) ([]bus.RuntimeImage, error) {
	images, err := s.rt.ListImages(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := s.rt.ListContainers(ctx)
	if err != nil {
		return nil, err
	}
	inUse, running := imageUsers(cs)
	sandbox, err := s.sandboxImage(ctx)
	if err != nil {
		return nil, err
	}
	list := make([]bus.RuntimeImage, 0, len(images))
	for _, img := range images {
		list = append(list, bus.RuntimeImage{
			ID: img.GetId(), Tags: img.GetRepoTags(), Digests: img.GetRepoDigests(), SizeBytes: int64(img.GetSize()),
			Pinned: img.GetPinned() || keeps(sandbox, img), InUse: usedBy(inUse, img), Running: usedBy(running, img),
		})
	}
	// The largest first, so that what is left out matters least.
	slices.SortFunc(list, func(a, b bus.RuntimeImage) int {
		return cmp.Or(cmp.Compare(b.SizeBytes, a.SizeBytes), cmp.Compare(a.ID, b.ID))
	})
	return list, nil
}

// publish publishes a node envelope of kind unless key, what identifies its
// content, is what was last published. shrink, when the envelope is too
// large, leaves some entries out and reports whether it could.
func (r *reporter) publish(ctx context.Context, kind bus.Kind, key any, fill func(*bus.Envelope), shrink func() bool) {
	log := logr.FromContextOrDiscard(ctx)
	data, err := json.Marshal(key)
	if err != nil {
		log.Error(err, "Failed to encode telemetry", "kind", kind)
		return
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	if r.last[kind] == hash {
		return
	}
	r.seq++
	node := r.s.opts.Node
	e := &bus.Envelope{
		SchemaVersion: bus.SchemaVersion,
		ID:            fmt.Sprintf("%s/%s/%s-%d", node, kind, r.s.instance, r.seq),
		Cluster:       r.s.opts.Cluster,
		Source:        source,
		Object:        bus.ObjectRef{Kind: kind, Name: node},
		Time:          r.s.opts.Now().UTC(),
	}
	fill(e)
	for {
		_, err := bus.Encode(e)
		if err == nil {
			break
		}
		if shrink == nil || !shrink() {
			log.Error(err, "Failed to encode telemetry", "kind", kind)
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	if _, err := r.pub.Publish(ctx, e); err != nil {
		// Not remembered as published: the next sample tries again.
		log.Error(err, "Failed to publish telemetry", "kind", kind)
		return
	}
	r.last[kind] = hash
}

// shrink leaves out the last eighth of a list (at least one entry), and of
// the list's bound, and counts them in omitted.
func shrink[T any](list *[]T, omitted *int) bool {
	n := len(*list)
	if n == 0 {
		return false
	}
	keep := min(n-max(n/8, 1), bus.MaxNodeContainers)
	*omitted += n - keep
	*list = (*list)[:keep]
	return true
}

// forgetCreated drops the creation times of images that are gone.
func (s *Shim) forgetCreated(present map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.created {
		if !present[id] {
			delete(s.created, id)
		}
	}
}
