package agents

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/usage"
)

// ErrUnknownAnalyzer is returned for a name no improvement analyzer has.
var ErrUnknownAnalyzer = errors.New("agents: unknown analyzer")

// snapshotKinds are the telemetry kinds an improvement run's model needs.
var snapshotKinds = []bus.Kind{bus.KindDeployment, bus.KindStatefulSet, bus.KindDaemonSet, bus.KindPod, bus.KindService, bus.KindHPA}

// Improver runs an improvement run's analyzers: over a model folded from
// the latest telemetry of every object in the run's namespaces, and the
// usage history of its workloads. It reads; it proposes nothing.
type Improver struct {
	JS      jetstream.JetStream
	Cluster string
	Usage   usage.Source
}

// Recommend runs the named analyzers over the workloads (their namespaces
// are the scope) at now and returns their recommendations.
func (im *Improver) Recommend(ctx context.Context, analyzers []string, workloads []tendv1.WorkloadRef, params tendv1.RightsizingParams, now time.Time) ([]tendv1.RunItem, error) {
	var run []Improvement
	for _, name := range analyzers {
		a, ok := ImprovementAnalyzer(name)
		if !ok {
			return nil, fmt.Errorf("%w %q", ErrUnknownAnalyzer, name)
		}
		run = append(run, a)
	}
	scope := Scope{Workloads: map[ObjectKey]bool{}, Rightsizing: params}
	for _, w := range workloads {
		scope.Workloads[ObjectKey{w.Kind, w.Namespace, w.Name}] = true
		if !slices.Contains(scope.Namespaces, w.Namespace) {
			scope.Namespaces = append(scope.Namespaces, w.Namespace)
		}
	}
	m, err := SnapshotModel(ctx, im.JS, im.Cluster, scope.Namespaces)
	if err != nil {
		return nil, err
	}
	p := RightsizingDefaults(params)
	scope.Window = p.History.Duration
	if im.Usage != nil {
		scope.History = &namespaceHistory{src: im.Usage, from: now.Add(-p.History.Duration), to: now, loaded: map[string]*usage.History{}}
	}
	scope.Autoscaling = &busAutoscalers{js: im.JS, cluster: im.Cluster, loaded: map[string]map[string][]AutoscalerSample{}}
	var out []tendv1.RunItem
	for _, a := range run {
		items, err := a.Recommend(ctx, scope, m, now)
		if err != nil {
			return nil, fmt.Errorf("analyzer %s: %w", a.Name(), err)
		}
		out = append(out, items...)
	}
	return out, nil
}

// CPUUsage returns the CPU usage, in millicores, of the container of every
// pod of the workload in the samples of the usage source taken in
// [from, to], in time order: what a run's soak judges throttling on.
func (im *Improver) CPUUsage(ctx context.Context, w tendv1.WorkloadRef, container string, from, to time.Time) ([]int64, error) {
	if im.Usage == nil {
		return nil, nil
	}
	h, err := im.Usage.History(ctx, w.Namespace, from, to)
	if err != nil {
		return nil, err
	}
	samples, err := h.Workload(w.Kind, w.Name, container)
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(samples))
	for i, s := range samples {
		out[i] = s.CPUMillicores
	}
	return out, nil
}

// namespaceHistory reads each namespace's history once per run.
type namespaceHistory struct {
	src      usage.Source
	from, to time.Time
	mu       sync.Mutex
	loaded   map[string]*usage.History
}

func (h *namespaceHistory) Source() string { return h.src.Name() }

func (h *namespaceHistory) Samples(ctx context.Context, w ObjectKey, container string) ([]usage.Sample, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hist := h.loaded[w.Namespace]
	if hist == nil {
		var err error
		if hist, err = h.src.History(ctx, w.Namespace, h.from, h.to); err != nil {
			return nil, err
		}
		h.loaded[w.Namespace] = hist
	}
	return hist.Workload(w.Kind, w.Name, container)
}

// SnapshotModel folds the latest telemetry message of every workload, pod,
// Service and HPA of the namespaces into a model.
func SnapshotModel(ctx context.Context, js jetstream.JetStream, cluster string, namespaces []string) (*Model, error) {
	m := NewModel()
	stream, err := js.Stream(ctx, bus.StreamTelemetry)
	if err != nil {
		return nil, fmt.Errorf("failed to read the telemetry: %w", err)
	}
	var filters []string
	total := 0
	for _, ns := range namespaces {
		for _, k := range snapshotKinds {
			one := bus.StoredTelemetryFilter(cluster, k, ns, "x")
			f := strings.TrimSuffix(one, ".x") + ".*"
			info, err := stream.Info(ctx, jetstream.WithSubjectFilter(f))
			if err != nil {
				return nil, fmt.Errorf("failed to read the telemetry: %w", err)
			}
			if n := len(info.State.Subjects); n > 0 {
				filters = append(filters, f)
				total += n
			}
		}
	}
	if total == 0 {
		return m, nil
	}
	cons, err := js.OrderedConsumer(ctx, bus.StreamTelemetry, jetstream.OrderedConsumerConfig{
		FilterSubjects: filters, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to read the telemetry: %w", err)
	}
	for total > 0 {
		batch, err := cons.Fetch(min(total, 1024), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("failed to read the telemetry: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			env, err := bus.Decode(msg.Data())
			if err != nil {
				continue
			}
			d := bus.Delivery{Envelope: env, Subject: bus.ObjectSubject(msg.Subject())}
			if meta, err := msg.Metadata(); err == nil {
				d.StreamSeq = meta.Sequence.Stream
			}
			m.Observe(d)
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("failed to read the telemetry: %w", err)
		}
		if n == 0 {
			break
		}
		total -= n
	}
	// Messages come in stream order, so a pod may come before its
	// workload: give each workload its pods' labels now.
	for _, p := range m.Pods {
		if w := m.Workloads[p.Workload]; w != nil && p.State != nil && len(p.State.Labels) > 0 && w.PodLabels == nil {
			w.PodLabels = p.State.Labels
		}
	}
	return m, nil
}

// busAutoscalers reads the HPAs' history from the TELEMETRY stream: every
// state the sensor published, one namespace at a time.
type busAutoscalers struct {
	js      jetstream.JetStream
	cluster string
	mu      sync.Mutex
	loaded  map[string]map[string][]AutoscalerSample
}

func (b *busAutoscalers) States(ctx context.Context, hpa ObjectKey) ([]AutoscalerSample, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	byName, ok := b.loaded[hpa.Namespace]
	if !ok {
		byName = map[string][]AutoscalerSample{}
		err := readAll(ctx, b.js, b.cluster, bus.KindHPA, hpa.Namespace, jetstream.DeliverAllPolicy, func(env *bus.Envelope) {
			if h := env.HPA; h != nil && !h.Deleted {
				byName[env.Object.Name] = append(byName[env.Object.Name], AutoscalerSample{Time: env.Time,
					CurrentReplicas: h.CurrentReplicas, MinReplicas: max(h.MinReplicas, 1), MaxReplicas: h.MaxReplicas, HeldAtMin: heldAtMin(h)})
			}
		})
		if err != nil {
			return nil, err
		}
		b.loaded[hpa.Namespace] = byName
	}
	return byName[hpa.Name], nil
}

// readAll hands every telemetry message of one kind in a namespace, in
// stream order, to fn.
func readAll(ctx context.Context, js jetstream.JetStream, cluster string, kind bus.Kind, namespace string, policy jetstream.DeliverPolicy, fn func(*bus.Envelope)) error {
	stream, err := js.Stream(ctx, bus.StreamTelemetry)
	if err != nil {
		return fmt.Errorf("failed to read the telemetry: %w", err)
	}
	one := bus.StoredTelemetryFilter(cluster, kind, namespace, "x")
	f := strings.TrimSuffix(one, ".x") + ".*"
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(f))
	if err != nil {
		return fmt.Errorf("failed to read the telemetry: %w", err)
	}
	left := 0
	for _, n := range info.State.Subjects {
		left += int(n)
	}
	if left == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, bus.StreamTelemetry, jetstream.OrderedConsumerConfig{FilterSubjects: []string{f}, DeliverPolicy: policy})
	if err != nil {
		return fmt.Errorf("failed to read the telemetry: %w", err)
	}
	for left > 0 {
		batch, err := cons.Fetch(min(left, 1024), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return fmt.Errorf("failed to read the telemetry: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if env, err := bus.Decode(msg.Data()); err == nil {
				fn(env)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return fmt.Errorf("failed to read the telemetry: %w", err)
		}
		if n == 0 {
			return nil
		}
		left -= n
	}
	return nil
}

// heldAtMin reports whether the HPA said it wanted fewer replicas than its min.
func heldAtMin(h *bus.AutoscalerState) bool {
	for _, c := range h.Conditions {
		if c.Type == "ScalingLimited" && c.Status == "True" && c.Reason == "TooFewReplicas" {
			return true
		}
	}
	return false
}
