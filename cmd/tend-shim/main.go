package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"k8s.io/klog/v2"

	"github.com/tendops/tend/bus"
	shim "github.com/tendops/tend/runtime-shim"
)

// options are the command's flags.
type options struct {
	cluster, node string
	natsURL       string
	auth          bus.Auth
	criEndpoint   string
	criTimeout    time.Duration
	controllerKey stringList
	keepImages    stringList
	hostRoot      string
	podLogRoot    string
	stateInterval time.Duration
	statsInterval time.Duration
	imageInterval time.Duration
	maxInFlight   int
	verbosity     int
}

// stringList is a flag that may be given more than once.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func (o *options) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.cluster, "cluster", "", "the cluster this node belongs to, as tend's other components name it (required)")
	fs.StringVar(&o.node, "node", os.Getenv("NODE_NAME"), "this node's name (default $NODE_NAME)")
	fs.StringVar(&o.natsURL, "nats-url", "nats://127.0.0.1:4222", "the NATS server")
	fs.StringVar(&o.auth.CredsFile, "nats-creds", "", "NATS credentials file of this node's shim user")
	fs.StringVar(&o.auth.NKeySeedFile, "nats-nkey-seed", "", "file with the nkey seed of this node's shim user")
	fs.StringVar(&o.auth.User, "nats-user", "", "NATS user (the password is read from $TEND_NATS_PASSWORD)")
	fs.StringVar(&o.auth.CAFile, "nats-ca", "", "CA file that verifies the NATS server")
	fs.StringVar(&o.auth.CertFile, "nats-cert", "", "client certificate for mutual TLS")
	fs.StringVar(&o.auth.KeyFile, "nats-key", "", "client certificate key for mutual TLS")
	fs.StringVar(&o.criEndpoint, "cri-endpoint", "unix:///run/containerd/containerd.sock", "the container runtime's CRI endpoint")
	fs.DurationVar(&o.criTimeout, "cri-timeout", 10*time.Second, "how long one CRI call may take")
	fs.Var(&o.controllerKey, "controller-key", "public nkey of the proposal controller, whose attempt tokens are accepted (repeat during a key rotation)")
	fs.Var(&o.keepImages, "keep-image", "an image PruneImages never removes: an ID, a reference, or a prefix ending in * (repeatable)")
	fs.StringVar(&o.hostRoot, "host-root", "", "where the host's filesystem is mounted, when the shim runs in a container")
	fs.StringVar(&o.podLogRoot, "pod-log-root", shim.DefaultPodLogRoot, "the host directory of pod logs; no log outside it is read")
	fs.DurationVar(&o.stateInterval, "state-interval", shim.DefaultStateInterval, "how often container states are sampled (published when they change)")
	fs.DurationVar(&o.statsInterval, "stats-interval", shim.DefaultStatsInterval, "how often container stats are sampled and published")
	fs.DurationVar(&o.imageInterval, "image-interval", shim.DefaultImageInterval, "how often images and the image filesystem are sampled (published when they change)")
	fs.IntVar(&o.maxInFlight, "max-in-flight", shim.DefaultMaxInFlight, "requests handled at once; more get a busy reply")
	fs.IntVar(&o.verbosity, "v", 0, "log verbosity")
}

// Validate reports what is wrong with the options.
func (o *options) Validate() error {
	var errs []error
	if o.cluster == "" {
		errs = append(errs, errors.New("--cluster is required"))
	}
	if o.node == "" {
		errs = append(errs, errors.New("--node (or $NODE_NAME) is required"))
	}
	if len(o.controllerKey) == 0 {
		errs = append(errs, errors.New("--controller-key is required: the shim acts only on requests the controller signed"))
	}
	if o.criTimeout <= 0 {
		errs = append(errs, errors.New("--cri-timeout must be positive"))
	}
	if _, err := o.auth.Options(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func main() {
	var opts options
	fs := flag.NewFlagSet("tend-shim", flag.ContinueOnError)
	opts.bind(fs)
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	opts.auth.Password = os.Getenv("TEND_NATS_PASSWORD")
	if err := opts.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "tend-shim:", err)
		os.Exit(2)
	}
	log := funcr.NewJSON(func(obj string) { fmt.Fprintln(os.Stderr, obj) }, funcr.Options{Verbosity: opts.verbosity, LogTimestamp: true})
	klog.SetLogger(log.WithName("cri"))
	ctx, stop := signal.NotifyContext(logr.NewContext(context.Background(), log), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts); err != nil {
		log.Error(err, "The runtime shim stopped")
		os.Exit(1)
	}
}

// run connects to NATS and the runtime and serves until ctx is done.
func run(ctx context.Context, opts options) error {
	natsOpts, err := opts.auth.Options()
	if err != nil {
		return err
	}
	connectCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	nc, js, err := bus.Connect(connectCtx, opts.natsURL, "tend-shim-"+opts.node, natsOpts...)
	cancel()
	if err != nil {
		return err
	}
	defer nc.Close()
	cri := shim.NewCRI(opts.criEndpoint, opts.criTimeout)
	defer func() { _ = cri.Close(context.WithoutCancel(ctx)) }()
	s, err := shim.New(shim.Options{
		Cluster: opts.cluster, Node: opts.node, Runtime: cri, Conn: nc, JS: js,
		TrustedKeys: opts.controllerKey, KeepImages: opts.keepImages,
		HostRoot: opts.hostRoot, PodLogRoot: opts.podLogRoot, MaxInFlight: opts.maxInFlight,
		StateInterval: opts.stateInterval, StatsInterval: opts.statsInterval, ImageInterval: opts.imageInterval,
	})
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	if err := nc.Drain(); err != nil {
		return fmt.Errorf("failed to drain the NATS connection: %w", err)
	}
	return nil
}
