package components

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/policies"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// ControllerLeaseName is the Lease controller managers elect their leader
// with, in the system namespace.
const ControllerLeaseName = "tend-controller"

// ControllerOptions configure the controller manager.
type ControllerOptions struct {
	// Config is the controller's identity on the API server.
	Config *rest.Config
	// Scheme knows tend's and Kubernetes' kinds.
	Scheme *runtime.Scheme
	// SystemNamespace is tend's namespace: gate state, leases, proposals
	// for cluster-scoped targets.
	SystemNamespace string
	// Cluster names the cluster on the bus.
	Cluster string
	// JS is the controller's NATS connection (bus.ComponentController).
	JS jetstream.JetStream
	// AuditKey signs the audit chain's records. Required.
	AuditKey ed25519.PrivateKey
	// Proposal tunes the proposal controller; Cluster and SystemNamespace
	// are set from the fields above.
	Proposal controllers.ProposalOptions
	// NotifyURL, if set, is a Slack-compatible webhook told when a proposal
	// awaits approval, fails or is rolled back.
	NotifyURL string
	// ShimSigner signs node actions for the runtime shims; without it the
	// node actions are refused (NoRuntimeShim).
	ShimSigner nkeys.KeyPair
	// MetricsAddr and HealthAddr are where /metrics and /healthz, /readyz
	// are served; "0" turns one off.
	MetricsAddr, HealthAddr string
	// PprofAddr is where Go's profiles (/debug/pprof/) are served; "" or
	// "0" turns them off.
	PprofAddr string
	// LeaderElection makes one manager of many act at a time.
	LeaderElection bool
	// Pod, if named, becomes the owner of the leader election's Lease while
	// it leads, so that the Lease goes with the component's last pod.
	Pod Pod
	// SkipNameValidation lets tests start several managers in one process.
	SkipNameValidation bool
	// Logger of the manager and its controllers.
	Logger logr.Logger
}

// Controller is a controller manager, not yet started, its gate, and its
// notifier (nil without NotifyURL).
type Controller struct {
	Manager  ctrl.Manager
	Gate     *policies.Gate
	Notifier *controllers.Notifier
}

// NewController builds the controller manager. The gate holds the
// cluster's GatePolicies and kill switch before it returns, so that no
// proposal meets an empty gate while the controllers start.
func NewController(ctx context.Context, opts ControllerOptions) (*Controller, error) {
	switch {
	case opts.Config == nil || opts.Scheme == nil:
		return nil, errors.New("components: the controller needs a REST config and a scheme")
	case opts.JS == nil:
		return nil, errors.New("components: the controller needs a NATS connection")
	case len(opts.AuditKey) != ed25519.PrivateKeySize:
		return nil, errors.New("components: the controller needs an ed25519 audit key")
	case opts.SystemNamespace == "" || opts.Cluster == "":
		return nil, errors.New("components: the controller needs its system namespace and cluster name")
	}
	mgr, err := ctrl.NewManager(opts.Config, ctrl.Options{
		Scheme: opts.Scheme,
		// The controller may read ConfigMaps only in tend's namespace.
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}: {Namespaces: map[string]cache.Config{opts.SystemNamespace: {}}},
		},
			// Nothing reads managedFields; an update of an object without
			// them leaves the server's as they are.
			DefaultTransform: cache.TransformStripManagedFields()},
		Logger:                 opts.Logger,
		Metrics:                metricsserver.Options{BindAddress: cmp.Or(opts.MetricsAddr, "0")},
		PprofBindAddress:       cmp.Or(opts.PprofAddr, "0"),
		HealthProbeBindAddress: cmp.Or(opts.HealthAddr, "0"),
		// One controller acts at a time, however many run. On shutdown a
		// reconcile in flight finishes (an apply is one write, recorded before
		// and after); one cut short is resumed by the next leader from the
		// attempt recorded in the proposal, never applied twice.
		LeaderElection:                opts.LeaderElection,
		LeaderElectionID:              ControllerLeaseName,
		LeaderElectionNamespace:       opts.SystemNamespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       ptr.To(30 * time.Second),
		Controller:                    config.Controller{SkipNameValidation: ptr.To(opts.SkipNameValidation)},
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create the controller manager: %w", err)
	}
	if err := addProbes(mgr); err != nil {
		return nil, err
	}
	if opts.LeaderElection {
		if err := addLeaseOwner(mgr, opts.SystemNamespace, ControllerLeaseName, opts.Pod); err != nil {
			return nil, err
		}
	}
	gate, err := policies.New(policies.Options{})
	if err != nil {
		return nil, fmt.Errorf("failed to create the gate: %w", err)
	}
	// Read once, before the caches run, with the controller's own identity.
	direct, err := client.New(opts.Config, client.Options{Scheme: opts.Scheme})
	if err != nil {
		return nil, fmt.Errorf("failed to create a client: %w", err)
	}
	var gps tendv1.GatePolicyList
	if err := direct.List(ctx, &gps); err != nil {
		return nil, fmt.Errorf("failed to list gate policies: %w", err)
	}
	gate.Load(gps.Items)
	// Likewise the persisted kill switch is in force before anything is decided.
	gs, err := controllers.ReadGateState(ctx, direct, opts.SystemNamespace)
	if err != nil {
		return nil, err
	}
	gate.SetKillSwitch(gs.KillSwitch)

	popts := opts.Proposal
	popts.Cluster = opts.Cluster
	popts.SystemNamespace = opts.SystemNamespace
	pr := &controllers.ProposalReconciler{
		Client:   mgr.GetClient(),
		Gate:     gate,
		Audit:    bus.NewAuditLog(opts.JS, opts.Cluster).WithKey(opts.AuditKey),
		Recorder: mgr.GetEventRecorder("tend-proposal-controller"),
		Options:  popts,
	}
	if opts.ShimSigner != nil {
		// The node actions go to the runtime shims over the controller's own
		// NATS identity (the only one that may send them), signed with a key
		// the shims trust.
		shims, err := shimclient.New(shimclient.Options{Cluster: opts.Cluster, Conn: opts.JS.Conn(), JS: opts.JS, Signer: opts.ShimSigner})
		if err != nil {
			return nil, err
		}
		pr.Shim = shims
	}
	var notifier *controllers.Notifier
	if opts.NotifyURL != "" {
		n, err := controllers.NewNotifier(controllers.NotifierOptions{URL: opts.NotifyURL})
		if err != nil {
			return nil, err
		}
		if err := controllers.RegisterNotifierMetrics(ctrlmetrics.Registry); err != nil {
			return nil, err
		}
		if err := mgr.Add(n); err != nil {
			return nil, fmt.Errorf("failed to add the notifier: %w", err)
		}
		pr.Notifier, notifier = n, n
	}
	if err := pr.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&controllers.RevisionReconciler{Client: mgr.GetClient(), HealthyWindow: popts.HealthyWindow}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&controllers.ControllerRevisionReconciler{Client: mgr.GetClient(), HealthyWindow: popts.HealthyWindow}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := mgr.Add(&controllers.RepeatCounter{Client: mgr.GetClient(), JS: opts.JS, Cluster: opts.Cluster}); err != nil {
		return nil, fmt.Errorf("failed to add the repeat counter: %w", err)
	}
	if err := mgr.Add(&controllers.FindingEvents{Client: mgr.GetClient(), JS: opts.JS, Cluster: opts.Cluster,
		Recorder: mgr.GetEventRecorder("tend-findings")}); err != nil {
		return nil, fmt.Errorf("failed to add finding events: %w", err)
	}
	if err := (&controllers.ApprovalReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("tend-approval-controller")}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&controllers.GatePolicyReconciler{Client: mgr.GetClient(), Gate: gate}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&controllers.GateStateReconciler{Client: mgr.GetClient(), Gate: gate, Namespace: opts.SystemNamespace}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := bus.Register(ctrlmetrics.Registry); err != nil {
		return nil, err
	}
	if err := controllers.RegisterAuditMetrics(ctrlmetrics.Registry); err != nil {
		return nil, err
	}
	if err := controllers.RegisterProposalMetrics(ctrlmetrics.Registry, mgr.GetClient(), nil); err != nil {
		return nil, err
	}
	return &Controller{Manager: mgr, Gate: gate, Notifier: notifier}, nil
}

// addProbes serves /healthz (the process runs) and /readyz (its caches are
// in sync) on the manager's health address.
func addProbes(mgr ctrl.Manager) error {
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("failed to add the health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("caches", func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("the informer caches are not in sync")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("failed to add the readiness check: %w", err)
	}
	return nil
}
