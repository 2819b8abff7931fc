package bus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// readyTimeout bounds how long StartEmbedded waits for the server to accept connections.
const readyTimeout = 10 * time.Second

// EmbeddedOptions configures an in-process nats-server.
type EmbeddedOptions struct {
	// StoreDir is where JetStream keeps its data. Required.
	StoreDir string
	// Host to listen on. Default 127.0.0.1.
	Host string
	// Port to listen on. Default -1, a random free port.
	Port int
	// Users and NkeyUsers, when set, are the only identities the server
	// accepts, each limited to its permissions. Default: no authentication.
	Users     []EmbeddedUser
	NkeyUsers []EmbeddedNkeyUser
	// TLS, when set, makes the server require TLS with this configuration
	// (its certificate, and client certificate checks if any).
	TLS *tls.Config
}

// EmbeddedNkeyUser is a user of an embedded server identified by the
// public key of its nkey; it proves itself with the seed.
type EmbeddedNkeyUser struct {
	PublicKey   string
	Permissions Permissions
}

// EmbeddedUser is a user of an embedded server.
type EmbeddedUser struct {
	Name, Password string
	Permissions    Permissions
}

func (p Permissions) server() *server.Permissions {
	sp := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: p.PublishAllow, Deny: p.PublishDeny},
		Subscribe: &server.SubjectPermission{Allow: p.SubscribeAllow, Deny: p.SubscribeDeny},
	}
	if p.AllowResponses {
		sp.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: responseExpiry}
	}
	return sp
}

// responseExpiry is how long a component with AllowResponses may answer a
// request; the longest shim action (a restart with the longest grace
// period) fits.
const responseExpiry = 15 * time.Minute

// Embedded is a nats-server with JetStream running in this process, for
// `tend up` and tests.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a nats-server with JetStream and waits until it accepts connections.
func StartEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	if opts.StoreDir == "" {
		return nil, errors.New("bus: embedded nats-server needs a store directory")
	}
	if opts.Host == "" {
		opts.Host = "127.0.0.1"
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	sopts := &server.Options{
		ServerName: "tend-embedded",
		Host:       opts.Host,
		Port:       opts.Port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
	}
	for _, u := range opts.Users {
		sopts.Users = append(sopts.Users, &server.User{Username: u.Name, Password: u.Password, Permissions: u.Permissions.server()})
	}
	for _, u := range opts.NkeyUsers {
		sopts.Nkeys = append(sopts.Nkeys, &server.NkeyUser{Nkey: u.PublicKey, Permissions: u.Permissions.server()})
	}
	if opts.TLS != nil {
		sopts.TLS, sopts.TLSConfig, sopts.TLSTimeout = true, opts.TLS, 5
	}
	srv, err := server.NewServer(sopts)
	if err != nil {
		return nil, fmt.Errorf("failed to configure embedded nats-server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("bus: embedded nats-server on %s:%d not ready after %s", opts.Host, opts.Port, readyTimeout)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, fmt.Errorf("bus: embedded nats-server started without JetStream (store %s)", opts.StoreDir)
	}
	return &Embedded{srv: srv}, nil
}

// URL is the client URL of the server.
func (e *Embedded) URL() string {
	return e.srv.ClientURL()
}

// Port is the port the server listens on, for restarting it on the same one.
func (e *Embedded) Port() int {
	return e.srv.Addr().(*net.TCPAddr).Port
}

// Shutdown stops the server and waits until it has stopped.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
