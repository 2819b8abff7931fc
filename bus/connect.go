package bus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reconnect defaults of Connect.
const (
	reconnectWait = time.Second
	// ReconnectBufSize bounds what a connection buffers while it reconnects;
	// a publish that does not fit fails at once instead of growing memory.
	ReconnectBufSize = 8 << 20
	// publishAckTimeout bounds the wait for an asynchronous publish's ack.
	publishAckTimeout = 10 * time.Second
)

// Auth is how a component proves who it is to an external NATS server, and
// how it checks the server. Empty fields are not used.
type Auth struct {
	// CredsFile is a NATS credentials file (user JWT and nkey seed).
	CredsFile string
	// NKeySeedFile is a file holding an nkey seed, for servers configured
	// with nkey users.
	NKeySeedFile string
	// CAFile verifies the server's certificate; CertFile and KeyFile are
	// the client certificate for mutual TLS.
	CAFile, CertFile, KeyFile string
	// User and Password, for servers with plain users (the embedded one).
	User, Password string
}

// ErrAuth is wrapped by the errors Auth.Options returns for a bad combination.
var ErrAuth = errors.New("bus: invalid NATS authentication options")

// Options turns a into connection options. TLS is required as soon as a CA
// or a client certificate is given.
func (a Auth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	methods := 0
	for _, set := range []bool{a.CredsFile != "", a.NKeySeedFile != "", a.User != ""} {
		if set {
			methods++
		}
	}
	switch {
	case methods > 1:
		return nil, fmt.Errorf("%w: use one of a creds file, an nkey seed or a user", ErrAuth)
	case (a.CertFile == "") != (a.KeyFile == ""):
		return nil, fmt.Errorf("%w: a client certificate needs both a cert and a key file", ErrAuth)
	case a.Password != "" && a.User == "":
		return nil, fmt.Errorf("%w: a password needs a user", ErrAuth)
	}
	switch {
	case a.CredsFile != "":
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	case a.NKeySeedFile != "":
		opt, err := nats.NkeyOptionFromSeed(a.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("failed to read nkey seed %s: %w", a.NKeySeedFile, err)
		}
		opts = append(opts, opt)
	case a.User != "":
		opts = append(opts, nats.UserInfo(a.User, a.Password))
	}
	// Secure sets the TLS config, so it comes before what adds to it.
	if a.CAFile != "" || a.CertFile != "" {
		opts = append(opts, nats.Secure(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if a.CAFile != "" {
		opts = append(opts, nats.RootCAs(a.CAFile))
	}
	if a.CertFile != "" {
		opts = append(opts, nats.ClientCert(a.CertFile, a.KeyFile))
	}
	return opts, nil
}

// Connect connects to the NATS server at url as name and checks that
// JetStream is available. The connection reconnects forever, buffering up to
// ReconnectBufSize (8 MiB) of outgoing data while disconnected, after which
// publishes fail at once; connection events are logged with the logger from
// ctx. extra options are applied last and can override these defaults, for
// example to add credentials or TLS from Auth.Options.
func Connect(ctx context.Context, url, name string, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	log := logr.FromContextOrDiscard(ctx).WithValues("url", url, "name", name)
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectBufSize(ReconnectBufSize),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Info("Disconnected from NATS", "error", err.Error())
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("Reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error(err, "NATS error", "subject", sub.Subject)
				return
			}
			log.Error(err, "NATS error")
		}),
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("failed to connect to NATS at %s: %w", url, err)
	}
	if deadline, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(deadline)))
	}
	nc, err := nats.Connect(url, append(opts, extra...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to connect to NATS at %s: %w", url, err)
	}
	// An asynchronous publish whose acknowledgement is lost, for example
	// to a server restart, fails after publishAckTimeout instead of
	// holding its place forever.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(publishAckTimeout), jetstream.WithPublishAsyncMaxPending(MaxPendingPublishes))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("failed to create JetStream client: %w", err)
	}
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("JetStream is not available at %s: %w", url, err)
	}
	return nc, js, nil
}
