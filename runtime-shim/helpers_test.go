package shim

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/critest"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

const (
	testCluster = "prod"
	testNode    = "node-1"
	otherNode   = "node-2"
)

// env is a real containerd and an embedded NATS server with authentication
// on: every component has its own user with exactly bus.ComponentPermissions,
// plus "rogue", a user allowed to publish shim requests that does not hold
// the controller's signing key (a misconfigured or stolen identity).
type env struct {
	t        *testing.T
	ctrd     *critest.Containerd
	srv      *bus.Embedded
	signer   nkeys.KeyPair // the controller's
	ctrlNC   *nats.Conn
	ctrlJS   jetstream.JetStream
	client   *shimclient.Client
	keepImgs []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctrd := critest.Start(t)
	var users []bus.EmbeddedUser
	for _, u := range []struct {
		name string
		c    bus.Component
		node string
	}{
		{"controller", bus.ComponentController, ""},
		{"agent", bus.ComponentAgent, ""},
		{"shim-" + testNode, bus.ComponentShim, testNode},
		{"shim-" + otherNode, bus.ComponentShim, otherNode},
	} {
		p, err := bus.ComponentPermissions(u.c, testCluster, u.node)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, bus.EmbeddedUser{Name: u.name, Password: "pw-" + u.name, Permissions: p})
	}
	users = append(users, bus.EmbeddedUser{Name: "rogue", Password: "pw-rogue", Permissions: bus.Permissions{
		PublishAllow: []string{"$JS.API.INFO", "tend.shim.>"}, SubscribeAllow: []string{"_INBOX.>"},
	}})
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir(), Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	e := &env{t: t, ctrd: ctrd, srv: srv}
	e.ctrlNC, e.ctrlJS = e.connect("controller")
	if err := bus.EnsureStreams(t.Context(), e.ctrlJS, bus.StreamsConfig{}); err != nil {
		t.Fatalf("the controller cannot set up the streams and the shim's stores: %v", err)
	}
	e.signer, err = nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	e.client, err = shimclient.New(shimclient.Options{Cluster: testCluster, Conn: e.ctrlNC, JS: e.ctrlJS, Signer: e.signer})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// connect connects as one of the env's users.
func (e *env) connect(user string, extra ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	e.t.Helper()
	auth, err := bus.Auth{User: user, Password: "pw-" + user}.Options()
	if err != nil {
		e.t.Fatal(err)
	}
	nc, js, err := bus.Connect(e.t.Context(), e.srv.URL(), user, append(auth, extra...)...)
	if err != nil {
		e.t.Fatalf("connect as %s: %v", user, err)
	}
	e.t.Cleanup(nc.Close)
	return nc, js
}

// running is a shim serving in the background.
type running struct {
	shim   *Shim
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

// shimOptions are the options of a test shim of node on the env's containerd.
func (e *env) shimOptions(node string) Options {
	pub, err := e.signer.PublicKey()
	if err != nil {
		e.t.Fatal(err)
	}
	return Options{
		Cluster: testCluster, Node: node,
		Runtime:     NewCRI(e.ctrd.Endpoint, 10*time.Second),
		TrustedKeys: []string{pub},
		KeepImages:  e.keepImgs,
		PodLogRoot:  e.ctrd.LogRoot,
		// Telemetry is tested on its own.
		StateInterval: -1, StatsInterval: -1, ImageInterval: -1,
	}
}

// startShim starts a shim as its node's user.
func (e *env) startShim(opts Options, hook func(step string) error) *running {
	e.t.Helper()
	nc, js := e.connect("shim-" + opts.Node)
	opts.Conn, opts.JS = nc, js
	s, err := New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	s.afterStep = hook
	ctx, cancel := context.WithCancel(logr.NewContext(context.Background(), testr.New(e.t)))
	r := &running{shim: s, nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Start(ctx) }()
	select {
	case <-s.serving:
	case err := <-r.done:
		e.t.Fatalf("the shim stopped at start: %v", err)
	case <-time.After(10 * time.Second):
		e.t.Fatal("the shim did not subscribe in 10s")
	}
	e.t.Cleanup(func() { r.stop(e.t) })
	return r
}

// stop stops the shim and closes its connection.
func (r *running) stop(t *testing.T) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("shim: %v", err)
		}
		r.done <- nil
	case <-time.After(30 * time.Second):
		t.Error("the shim did not stop in 30s")
	}
	r.nc.Close()
}

// crash stops a shim whose handler a hook stopped, as a dead process
// would: its connection goes away without draining.
func (r *running) crash() {
	r.nc.Close()
	r.cancel()
}

// attempt is a fresh attempt.
func attempt(t *testing.T) shimclient.Attempt {
	return shimclient.Attempt{ID: "uid-" + t.Name() + "/apply/" + time.Now().Format("150405.000000000"), Proposal: "shop/" + t.Name()}
}

// wantCode checks that err is a shim error reply with code.
func wantCode(t *testing.T, err error, code bus.ShimErrorCode) {
	t.Helper()
	var se *shimclient.Error
	if !errors.As(err, &se) || se.Code != code {
		t.Fatalf("got %v, want a %s error reply", err, code)
	}
}

var errCrash = errors.New("crashed by the test")

// waitCrash waits until a test hook stopped a shim's handler.
func waitCrash(t *testing.T, crashed <-chan struct{}) {
	t.Helper()
	select {
	case <-crashed:
	case <-time.After(time.Minute):
		t.Fatal("the shim did not reach the step the test stops it at")
	}
}
