package components

import (
	"cmp"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/config"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
)

// SensorLeaseName is the Lease sensors elect their leader with: one sensor
// publishes at a time, so that telemetry is not doubled.
const SensorLeaseName = "tend-sensor"

// SensorOptions configure a sensor of its own.
type SensorOptions struct {
	// Config is the sensor's identity on the API server: it lists and
	// watches the kinds it observes, and reads metrics.k8s.io.
	Config *rest.Config
	Scheme *runtime.Scheme
	// SystemNamespace holds the leader election Lease.
	SystemNamespace string
	// Cluster names the cluster on the bus.
	Cluster string
	// JS is the sensor's NATS connection (bus.ComponentSensor).
	JS jetstream.JetStream
	// MetricsAddr and HealthAddr are where /metrics and /healthz, /readyz
	// are served; "0" turns one off.
	MetricsAddr, HealthAddr string
	// PprofAddr is where Go's profiles (/debug/pprof/) are served; "" or
	// "0" turns them off.
	PprofAddr string
	// LeaderElection makes one sensor of many publish at a time.
	LeaderElection bool
	// Pod, if named, becomes the owner of the leader election's Lease while
	// it leads, so that the Lease goes with the component's last pod.
	Pod                Pod
	SkipNameValidation bool
	Logger             logr.Logger
}

// NewSensor builds a manager that runs the sensor alone, not yet started.
func NewSensor(opts SensorOptions) (ctrl.Manager, error) {
	switch {
	case opts.Config == nil || opts.Scheme == nil:
		return nil, errors.New("components: the sensor needs a REST config and a scheme")
	case opts.JS == nil:
		return nil, errors.New("components: the sensor needs a NATS connection")
	case opts.SystemNamespace == "" || opts.Cluster == "":
		return nil, errors.New("components: the sensor needs its system namespace and cluster name")
	}
	mgr, err := ctrl.NewManager(opts.Config, ctrl.Options{
		Scheme: opts.Scheme,
		// The sensor's cache is its own: it keeps of each object only what
		// the sensor reports (AddSensor on a shared manager does not slim).
		Cache:                         cache.Options{DefaultTransform: controllers.SensorCacheTransform()},
		Logger:                        opts.Logger,
		Metrics:                       metricsserver.Options{BindAddress: cmp.Or(opts.MetricsAddr, "0")},
		PprofBindAddress:              cmp.Or(opts.PprofAddr, "0"),
		HealthProbeBindAddress:        cmp.Or(opts.HealthAddr, "0"),
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              SensorLeaseName,
		LeaderElectionNamespace:       opts.SystemNamespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       ptr.To(10 * time.Second),
		Controller:                    config.Controller{SkipNameValidation: ptr.To(opts.SkipNameValidation)},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create the sensor's manager: %w", err)
	}
	if err := addProbes(mgr); err != nil {
		return nil, err
	}
	if opts.LeaderElection {
		if err := addLeaseOwner(mgr, opts.SystemNamespace, SensorLeaseName, opts.Pod); err != nil {
			return nil, err
		}
	}
	if err := bus.Register(ctrlmetrics.Registry); err != nil {
		return nil, err
	}
	if err := AddSensor(mgr, opts.JS, opts.Cluster); err != nil {
		return nil, err
	}
	return mgr, nil
}

// AddSensor adds the sensor to mgr: it publishes what mgr's informers see,
// as the sensor, over js. It leaves mgr's cache as it is: a manager of its
// own slims its cache with controllers.SensorCacheTransform (NewSensor), a
// shared one keeps whole objects for its other readers.
func AddSensor(mgr ctrl.Manager, js jetstream.JetStream, cluster string) error {
	return (&controllers.Sensor{Client: mgr.GetClient(), Publisher: bus.NewPublisher(js, cluster, "sensor")}).SetupWithManager(mgr)
}
