package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	authorizationclient "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/bus"
)

// DefaultMetricsInterval is the default of Sensor.MetricsInterval.
const DefaultMetricsInterval = 30 * time.Second

// discoveryTimeout bounds the discovery and access checks at setup.
const discoveryTimeout = 30 * time.Second

// metricsGroupVersion is the resource metrics API that metrics-server serves.
var metricsGroupVersion = schema.GroupVersion{Group: "metrics.k8s.io", Version: "v1beta1"}

// apiAccess answers whether the API server serves a resource and the
// sensor's identity may read it.
type apiAccess struct {
	disc  discovery.DiscoveryInterface
	authz authorizationclient.SelfSubjectAccessReviewInterface
}

func newAPIAccess(cfg *rest.Config) (*apiAccess, error) {
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create discovery client: %w", err)
	}
	authz, err := authorizationclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("failed to create authorization client: %w", err)
	}
	return &apiAccess{disc: disc, authz: authz.SelfSubjectAccessReviews()}, nil
}

// readable reports whether group/version/resource is served and the verbs
// are allowed on it in every namespace, and if not, why.
func (a *apiAccess) readable(ctx context.Context, group, version, resource string, verbs ...string) (bool, string, error) {
	if len(verbs) == 0 {
		verbs = []string{"list", "watch"}
	}
	gv := schema.GroupVersion{Group: group, Version: version}.String()
	list, err := a.disc.ServerResourcesForGroupVersion(gv)
	if apierrors.IsNotFound(err) {
		return false, gv + " is not served", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("failed to discover %s: %w", gv, err)
	}
	served := false
	for _, r := range list.APIResources {
		if r.Name == resource {
			served = true
		}
	}
	if !served {
		return false, fmt.Sprintf("%s %s is not served", gv, resource), nil
	}
	for _, verb := range verbs {
		review, err := a.authz.Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Group: group, Version: version, Resource: resource, Verb: verb},
		}}, metav1.CreateOptions{})
		if err != nil {
			return false, "", fmt.Errorf("failed to check access to %s %s: %w", gv, resource, err)
		}
		if !review.Status.Allowed {
			return false, fmt.Sprintf("not allowed to %s %s %s", verb, gv, resource), nil
		}
	}
	return true, "", nil
}

// setupMetrics adds the metrics.k8s.io sampler when the API is served and
// readable.
func (s *Sensor) setupMetrics(ctx context.Context, mgr ctrl.Manager, api *apiAccess, log logr.Logger) error {
	for _, r := range []string{"pods", "nodes"} {
		ok, why, err := api.readable(ctx, metricsGroupVersion.Group, metricsGroupVersion.Version, r, "list")
		if err != nil {
			return err
		}
		if !ok {
			log.Info("Not sampling resource usage", "reason", why)
			return nil
		}
	}
	if err := mgr.Add(&metricsSampler{sensor: s, reader: mgr.GetAPIReader(), log: log.WithName("metrics")}); err != nil {
		return fmt.Errorf("failed to add the metrics sampler: %w", err)
	}
	s.watching = append(s.watching, bus.KindPodMetrics, bus.KindNodeMetrics)
	return nil
}

// metricsSampler lists pod and node metrics every MetricsInterval and
// publishes each sample. metrics.k8s.io cannot be watched, so it is read on
// a schedule, outside any reconcile.
type metricsSampler struct {
	sensor *Sensor
	reader client.Reader
	log    logr.Logger
}

// NeedLeaderElection is true: one sensor samples at a time.
func (m *metricsSampler) NeedLeaderElection() bool { return true }

// Start samples until ctx is done. A failed sample is logged and the next
// one is tried at the next tick.
func (m *metricsSampler) Start(ctx context.Context) error {
	t := time.NewTicker(m.sensor.MetricsInterval)
	defer t.Stop()
	for {
		if err := m.sample(ctx); err != nil && ctx.Err() == nil {
			m.log.Error(err, "Failed to sample resource usage")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (m *metricsSampler) sample(ctx context.Context) error {
	var errs []error
	for _, k := range []struct {
		kind bus.Kind
		list string
	}{{bus.KindPodMetrics, "PodMetricsList"}, {bus.KindNodeMetrics, "NodeMetricsList"}} {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(metricsGroupVersion.WithKind(k.list))
		if err := m.reader.List(ctx, list); err != nil {
			errs = append(errs, fmt.Errorf("failed to list %s: %w", k.list, err))
			continue
		}
		for i := range list.Items {
			env, err := usageEnvelope(k.kind, &list.Items[i])
			if err != nil {
				m.log.V(1).Info("Skipping a malformed metrics sample", "error", err.Error())
				continue
			}
			if err := m.sensor.Publisher.PublishAsync(ctx, env, nil); err != nil {
				errs = append(errs, err)
				break
			}
		}
	}
	return errors.Join(errs...)
}

// usageEnvelope converts a PodMetrics or NodeMetrics object to an envelope.
// Its ID is per object and sample time, so a sample read twice is
// published once.
func usageEnvelope(kind bus.Kind, u *unstructured.Unstructured) (*bus.Envelope, error) {
	ts, err := time.Parse(time.RFC3339, stringField(u, "timestamp"))
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s: bad timestamp: %w", kind, u.GetNamespace(), u.GetName(), err)
	}
	sample := &bus.UsageSample{Timestamp: ts}
	if w := stringField(u, "window"); w != "" {
		d, err := time.ParseDuration(w)
		if err != nil {
			return nil, fmt.Errorf("%s %s/%s: bad window: %w", kind, u.GetNamespace(), u.GetName(), err)
		}
		sample.WindowSeconds = d.Seconds()
	}
	switch kind {
	case bus.KindNodeMetrics:
		usage, _, _ := unstructured.NestedStringMap(u.Object, "usage")
		if sample.CPUMillicores, sample.MemoryBytes, err = quantities(usage); err != nil {
			return nil, fmt.Errorf("node metrics %s: %w", u.GetName(), err)
		}
	case bus.KindPodMetrics:
		containers, _, err := unstructured.NestedSlice(u.Object, "containers")
		if err != nil {
			return nil, fmt.Errorf("pod metrics %s/%s: %w", u.GetNamespace(), u.GetName(), err)
		}
		for _, c := range containers {
			cm, ok := c.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("pod metrics %s/%s: a container is not an object", u.GetNamespace(), u.GetName())
			}
			name, _, _ := unstructured.NestedString(cm, "name")
			usage, _, _ := unstructured.NestedStringMap(cm, "usage")
			cpu, mem, err := quantities(usage)
			if err != nil {
				return nil, fmt.Errorf("pod metrics %s/%s container %s: %w", u.GetNamespace(), u.GetName(), name, err)
			}
			sample.Containers = append(sample.Containers, bus.ContainerUsage{Name: name, CPUMillicores: cpu, MemoryBytes: mem})
			sample.CPUMillicores += cpu
			sample.MemoryBytes += mem
		}
	default:
		return nil, fmt.Errorf("sensor: %s is not a metrics kind", kind)
	}
	sum := sha256.Sum256([]byte(string(kind) + "/" + u.GetNamespace() + "/" + u.GetName()))
	env := &bus.Envelope{
		ID:     fmt.Sprintf("%s-%s-%d", kind, hex.EncodeToString(sum[:12]), ts.Unix()),
		Object: bus.ObjectRef{Kind: kind, Namespace: u.GetNamespace(), Name: u.GetName()},
		Time:   ts,
		Usage:  sample,
	}
	return env, nil
}

func stringField(u *unstructured.Unstructured, field string) string {
	v, _, _ := unstructured.NestedString(u.Object, field)
	return v
}

// quantities reads the cpu (in millicores) and memory (in bytes) of a usage map.
func quantities(usage map[string]string) (cpu, mem int64, err error) {
	if v, ok := usage["cpu"]; ok {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return 0, 0, fmt.Errorf("bad cpu %q: %w", v, err)
		}
		cpu = q.MilliValue()
	}
	if v, ok := usage["memory"]; ok {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return 0, 0, fmt.Errorf("bad memory %q: %w", v, err)
		}
		mem = q.Value()
	}
	return cpu, mem, nil
}
