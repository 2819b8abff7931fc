package shim

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/critest"
)

// telemetryLog collects the node envelopes stored in the TELEMETRY stream.
type telemetryLog struct {
	mu  sync.Mutex
	got []*bus.Envelope
}

func (l *telemetryLog) of(kind bus.Kind) []*bus.Envelope {
	l.mu.Lock()
	defer l.mu.Unlock()
	var es []*bus.Envelope
	for _, e := range l.got {
		if e.Object.Kind == kind {
			es = append(es, e)
		}
	}
	return es
}

// eventually waits until the latest envelope of kind satisfies ok (for a test).
func (l *telemetryLog) eventually(t *testing.T, kind bus.Kind, what string, ok func(*bus.Envelope) bool) *bus.Envelope {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if es := l.of(kind); len(es) > 0 && ok(es[len(es)-1]) {
			return es[len(es)-1]
		}
		if time.Now().After(deadline) {
			es := l.of(kind)
			var last *bus.Envelope
			if len(es) > 0 {
				last = es[len(es)-1]
			}
			t.Fatalf("no %s envelope with %s in 20s; the last: %+v", kind, what, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func consumeNodeTelemetry(t *testing.T, e *env) *telemetryLog {
	t.Helper()
	var filters []string
	for _, k := range bus.NodeKinds {
		filters = append(filters, bus.StoredTelemetryFilter(testCluster, k, "", testNode))
	}
	cons, err := e.ctrlJS.OrderedConsumer(t.Context(), bus.StreamTelemetry, jetstream.OrderedConsumerConfig{FilterSubjects: filters})
	if err != nil {
		t.Fatal(err)
	}
	l := &telemetryLog{}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		env, err := bus.Decode(m.Data())
		if err != nil {
			t.Errorf("the shim published an envelope that does not decode: %v", err)
			return
		}
		if env.ID != m.Headers().Get(jetstream.MsgIDHeader) {
			t.Errorf("envelope %s was published with Nats-Msg-Id %q", env.ID, m.Headers().Get(jetstream.MsgIDHeader))
		}
		l.mu.Lock()
		l.got = append(l.got, env)
		l.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return l
}

func findContainer(e *bus.Envelope, id string) *bus.RuntimeContainer {
	for i, c := range e.Containers.Containers {
		if c.ID == id {
			return &e.Containers.Containers[i]
		}
	}
	return nil
}

// TestTelemetry runs the shim on a real containerd and reads what it
// publishes: container states with restarts and exit details, stats, images
// with their use, and the image filesystem; each kind only when it changed.
func TestTelemetry(t *testing.T) {
	e := newEnv(t)
	web := e.ctrd.ImportImage(critest.Registry+"/web:1", critest.ImageOptions{})
	old := e.ctrd.ImportImage(critest.Registry+"/old:1", critest.ImageOptions{ExtraBytes: 1 << 20})
	pod := e.ctrd.RunPod("shop", "web-1")
	first := pod.Start("app", critest.Registry+"/web:1", 0)
	log := consumeNodeTelemetry(t, e)
	opts := e.shimOptions(testNode)
	interval := 200 * time.Millisecond
	opts.StateInterval, opts.StatsInterval, opts.ImageInterval = interval, interval, interval
	start := time.Now()
	e.startShim(opts, nil)

	log.eventually(t, bus.KindContainers, "the container running", func(env *bus.Envelope) bool {
		c := findContainer(env, first)
		return c != nil && c.State == bus.ContainerRunning && c.Namespace == "shop" && c.Pod == "web-1" &&
			c.PodUID == pod.UID && c.Name == "app" && c.ImageID == web && !c.StartedAt.IsZero()
	})
	log.eventually(t, bus.KindContainerStats, "its memory and CPU", func(env *bus.Envelope) bool {
		for _, u := range env.ContainerStats.Containers {
			if u.ID == first && u.Pod == "web-1" && u.MemoryWorkingSetBytes > 0 && u.CPUCoreNanoseconds > 0 {
				return true
			}
		}
		return false
	})
	images := log.eventually(t, bus.KindImages, "the images and their use", func(env *bus.Envelope) bool { return len(env.Images.Images) == 3 })
	for _, img := range images.Images.Images {
		switch img.ID {
		case web:
			if !img.InUse || !img.Running || img.SizeBytes <= 0 || !slices.Contains(img.Tags, critest.Registry+"/web:1") {
				t.Errorf("web:1 %+v: want in use by a running container", img)
			}
		case old:
			if img.InUse || img.Running || img.Pinned || img.SizeBytes < 1<<20 {
				t.Errorf("old:1 %+v: want unused, at least 1 MiB", img)
			}
		default:
			if !img.Pinned || !slices.Contains(img.Tags, critest.PauseImage) {
				t.Errorf("%+v: want the pinned sandbox image", img)
			}
		}
	}
	fs := log.eventually(t, bus.KindImageFS, "usage", func(env *bus.Envelope) bool { return env.ImageFS.UsedBytes > 0 })
	if fs.ImageFS.CapacityBytes <= 0 || fs.ImageFS.Mountpoint == "" {
		t.Errorf("image filesystem %+v: want its mountpoint and capacity", fs.ImageFS)
	}

	// An exit, with its details, then the restart.
	waitForLog(t, e.ctrd, first, "started") // it exits 0 on SIGTERM from now on
	e.ctrd.StopContainer(first)
	log.eventually(t, bus.KindContainers, "the container exited", func(env *bus.Envelope) bool {
		c := findContainer(env, first)
		return c != nil && c.State == bus.ContainerExited && c.ExitCode == 0 && c.Reason == "Completed" && !c.FinishedAt.IsZero()
	})
	second := pod.Restart("app")
	log.eventually(t, bus.KindContainers, "the next container running", func(env *bus.Envelope) bool {
		c := findContainer(env, second)
		return c != nil && c.State == bus.ContainerRunning && c.RestartCount == 1 && findContainer(env, first) != nil
	})

	// Nothing changes now: no more container or image envelopes, although
	// the shim samples them every interval.
	time.Sleep(3 * interval)
	before := len(log.of(bus.KindContainers)) + len(log.of(bus.KindImages))
	time.Sleep(10 * interval)
	if after := len(log.of(bus.KindContainers)) + len(log.of(bus.KindImages)); after != before {
		t.Errorf("%d container and image envelopes while nothing changed, want none", after-before)
	}
	// At most one per interval.
	if n, most := len(log.of(bus.KindContainers)), int(time.Since(start)/interval)+1; n > most {
		t.Errorf("%d containers envelopes in %s, more than one per %s", n, time.Since(start), interval)
	}
}
