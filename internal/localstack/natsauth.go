package localstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/tendops/tend/bus"
)

// natsIdentities are the local stack's NATS users: one nkey per component,
// each limited to bus.ComponentPermissions. The embedded server accepts no
// one else: an anonymous client, or one with another key, cannot connect.
type natsIdentities struct {
	url  string
	keys map[bus.Component]nkeys.KeyPair
}

// localComponents are the components the local stack runs or serves: the
// controller manager (sensor, proposal controller, audit), the agents, the
// MCP server, the Alertmanager ingest, and the audit reader the CLI uses.
var localComponents = []bus.Component{bus.ComponentController, bus.ComponentAgent, bus.ComponentMCP, bus.ComponentIngest, bus.ComponentAuditReader}

// newNATSIdentities makes a key for every local component.
func newNATSIdentities() (*natsIdentities, error) {
	ids := &natsIdentities{keys: map[bus.Component]nkeys.KeyPair{}}
	for _, c := range localComponents {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("failed to create the NATS key of %s: %w", c, err)
		}
		ids.keys[c] = kp
	}
	return ids, nil
}

// users are the embedded server's users.
func (ids *natsIdentities) users(cluster string) ([]bus.EmbeddedNkeyUser, error) {
	var users []bus.EmbeddedNkeyUser
	for _, c := range localComponents {
		perms, err := bus.ComponentPermissions(c, cluster, "")
		if err != nil {
			return nil, err
		}
		pub, err := ids.keys[c].PublicKey()
		if err != nil {
			return nil, fmt.Errorf("failed to read the NATS key of %s: %w", c, err)
		}
		users = append(users, bus.EmbeddedNkeyUser{PublicKey: pub, Permissions: perms})
	}
	return users, nil
}

// connect connects to the server as component c.
func (ids *natsIdentities) connect(ctx context.Context, c bus.Component) (*nats.Conn, jetstream.JetStream, error) {
	kp := ids.keys[c]
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the NATS key of %s: %w", c, err)
	}
	return bus.Connect(ctx, ids.url, "tend-"+string(c), nats.Nkey(pub, kp.Sign))
}

// writeSeed writes c's seed to dir, readable by its owner only, for a CLI
// command to connect as c, and returns the file's path.
func (ids *natsIdentities) writeSeed(dir string, c bus.Component) (string, error) {
	seed, err := ids.keys[c].Seed()
	if err != nil {
		return "", fmt.Errorf("failed to read the NATS key of %s: %w", c, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("failed to create %s: %w", dir, err)
	}
	path := filepath.Join(dir, string(c)+".nk")
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		return "", fmt.Errorf("failed to write the NATS key of %s: %w", c, err)
	}
	return path, nil
}
