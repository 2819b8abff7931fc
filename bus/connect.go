package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Reconnect defaults of Connect.
const (
	reconnectWait    = time.Second
	reconnectBufSize = 8 << 20
)

// Connect connects to the NATS server at url as name and checks that
// JetStream is available. The connection reconnects forever, buffering up to
// 8 MiB of outgoing data while disconnected; connection events are logged
// with the logger from ctx. extra options are applied last and can override
// these defaults, for example to add credentials or TLS.
func Connect(ctx context.Context, url, name string, extra ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	log := logr.FromContextOrDiscard(ctx).WithValues("url", url, "name", name)
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(reconnectWait),
		nats.ReconnectBufSize(reconnectBufSize),
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
	js, err := jetstream.New(nc)
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
