package shim

import (
	"cmp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tendops/tend/bus"
)

// The kubelet's labels on the containers it creates.
const (
	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
)

// maxText bounds the untrusted text the shim copies from the runtime into
// telemetry (exit reasons and messages).
const maxText = 1 << 10

func stateOf(s runtimeapi.ContainerState) string {
	switch s {
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return bus.ContainerCreated
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return bus.ContainerRunning
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		return bus.ContainerExited
	}
	return bus.ContainerUnknown
}

// fromNanos turns a CRI timestamp (nanoseconds since the epoch, 0 for none)
// into a time.
func fromNanos(ns int64) time.Time {
	if ns <= 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// trimID drops the runtime prefix the kubelet reports ("containerd://").
func trimID(id string) string {
	if _, after, ok := strings.Cut(id, "://"); ok {
		return after
	}
	return id
}

// clipText cuts untrusted text to at most n bytes, on a rune boundary.
func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// runtimeContainer describes a listed container, with the details of its
// status when st is not nil.
func runtimeContainer(c *runtimeapi.Container, st *runtimeapi.ContainerStatus) bus.RuntimeContainer {
	l := c.GetLabels()
	rc := bus.RuntimeContainer{
		ID:           c.GetId(),
		Namespace:    l[labelPodNamespace],
		Pod:          l[labelPodName],
		PodUID:       l[labelPodUID],
		Name:         l[labelContainerName],
		Image:        c.GetImage().GetImage(),
		ImageID:      c.GetImageRef(),
		State:        stateOf(c.GetState()),
		RestartCount: int32(c.GetMetadata().GetAttempt()),
		CreatedAt:    fromNanos(c.GetCreatedAt()),
	}
	if rc.Name == "" {
		rc.Name = c.GetMetadata().GetName()
	}
	if st != nil {
		rc.State = stateOf(st.GetState())
		rc.StartedAt = fromNanos(st.GetStartedAt())
		rc.FinishedAt = fromNanos(st.GetFinishedAt())
		if rc.State == bus.ContainerExited {
			rc.ExitCode = st.GetExitCode()
			rc.Reason = clipText(st.GetReason(), maxText)
			rc.Message = clipText(st.GetMessage(), maxText)
		}
		if rc.Image == "" {
			rc.Image = st.GetImage().GetImage()
		}
		if rc.ImageID == "" {
			rc.ImageID = st.GetImageRef()
		}
	}
	return rc
}

// ofPod reports whether c belongs to the pod namespace/name (and uid, when
// set) and, when name is set, is the container of that name.
func ofPod(c *runtimeapi.Container, namespace, pod, uid, name string) bool {
	l := c.GetLabels()
	return l[labelPodNamespace] == namespace && l[labelPodName] == pod &&
		(uid == "" || l[labelPodUID] == uid) &&
		(name == "" || l[labelContainerName] == name)
}

// newestFirst orders containers by creation, newest first.
func newestFirst(cs []*runtimeapi.Container) {
	slices.SortStableFunc(cs, func(a, b *runtimeapi.Container) int {
		return cmp.Or(cmp.Compare(b.GetCreatedAt(), a.GetCreatedAt()), cmp.Compare(a.GetId(), b.GetId()))
	})
}

// imageUsers returns the IDs of the images containers use, and of those
// running containers use.
func imageUsers(cs []*runtimeapi.Container) (inUse, running map[string]bool) {
	inUse, running = map[string]bool{}, map[string]bool{}
	for _, c := range cs {
		for _, ref := range []string{c.GetImageRef(), c.GetImage().GetImage()} {
			if ref == "" {
				continue
			}
			inUse[ref] = true
			if c.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
				running[ref] = true
			}
		}
	}
	return inUse, running
}

// usedBy reports whether one of the image's names is in users.
func usedBy(users map[string]bool, img *runtimeapi.Image) bool {
	for _, n := range imageNames(img) {
		if users[n] {
			return true
		}
	}
	return false
}

// imageNames is every name an image goes by: its ID, tags and digests.
func imageNames(img *runtimeapi.Image) []string {
	return append(append([]string{img.GetId()}, img.GetRepoTags()...), img.GetRepoDigests()...)
}

// keeps reports whether one of patterns names the image: a pattern is an
// image ID, tag or digest, or a prefix of one ending in "*".
func keeps(patterns []string, img *runtimeapi.Image) bool {
	for _, p := range patterns {
		prefix, glob := strings.CutSuffix(p, "*")
		for _, n := range imageNames(img) {
			if n == p || glob && strings.HasPrefix(n, prefix) {
				return true
			}
		}
	}
	return false
}
