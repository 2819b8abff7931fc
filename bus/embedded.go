package bus

import (
	"errors"
	"fmt"
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
}

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
	srv, err := server.NewServer(&server.Options{
		ServerName: "tend-embedded",
		Host:       opts.Host,
		Port:       opts.Port,
		JetStream:  true,
		StoreDir:   opts.StoreDir,
		NoSigs:     true,
	})
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

// Shutdown stops the server and waits until it has stopped.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}
