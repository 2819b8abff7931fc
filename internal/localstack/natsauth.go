package localstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/tendops/tend/bus"
)

// natsIdentities are the local stack's NATS users: one nkey per component,
// each limited to bus.ComponentPermissions. The embedded server accepts no
// one else: an anonymous client, or one with another key, cannot connect.
type natsIdentities struct {
	url  string
	keys map[bus.Component]nkeys.KeyPair
	// shims are the runtime shims' keys, one per node, each limited to
	// its own node.
	shims map[string]nkeys.KeyPair
}

// localComponents are the components the local stack runs or serves: the
// controller manager (proposal controller, audit), the sensor, the agents,
// the MCP server, the Alertmanager ingest, and the audit reader the CLI uses.
var localComponents = []bus.Component{bus.ComponentController, bus.ComponentSensor, bus.ComponentAgent, bus.ComponentMCP, bus.ComponentIngest, bus.ComponentAuditReader}

// newNATSIdentities makes a key for every local component, and one for the
// runtime shim of each of shimNodes.
func newNATSIdentities(shimNodes []string) (*natsIdentities, error) {
	ids := &natsIdentities{keys: map[bus.Component]nkeys.KeyPair{}, shims: map[string]nkeys.KeyPair{}}
	for _, c := range localComponents {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("failed to create the NATS key of %s: %w", c, err)
		}
		ids.keys[c] = kp
	}
	for _, n := range shimNodes {
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			return nil, fmt.Errorf("shim node %q: %s", n, strings.Join(errs, "; "))
		}
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("failed to create the NATS key of the shim of %s: %w", n, err)
		}
		ids.shims[n] = kp
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
	for n, kp := range ids.shims {
		perms, err := bus.ComponentPermissions(bus.ComponentShim, cluster, n)
		if err != nil {
			return nil, err
		}
		pub, err := kp.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("failed to read the NATS key of the shim of %s: %w", n, err)
		}
		users = append(users, bus.EmbeddedNkeyUser{PublicKey: pub, Permissions: perms})
	}
	return users, nil
}

// connectShim connects to the server as the runtime shim of node.
func (ids *natsIdentities) connectShim(ctx context.Context, node string) (*nats.Conn, jetstream.JetStream, error) {
	kp, ok := ids.shims[node]
	if !ok {
		return nil, nil, fmt.Errorf("localstack: no shim identity for node %s (list it in Options.ShimNodes)", node)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, nil, fmt.Errorf("failed to read the NATS key of the shim of %s: %w", node, err)
	}
	return bus.Connect(ctx, ids.url, "tend-shim-"+node, nats.Nkey(pub, kp.Sign))
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
	return writeSeedOf(dir, string(c), ids.keys[c])
}

// writeShimSeeds writes each shim's seed to dir as shim-<node>.nk, for a
// tend-shim process (--nats-nkey-seed) to connect as its node's shim.
func (ids *natsIdentities) writeShimSeeds(dir string) error {
	for n, kp := range ids.shims {
		if _, err := writeSeedOf(dir, "shim-"+n, kp); err != nil {
			return err
		}
	}
	return nil
}

// writeSeedOf writes kp's seed to dir/<name>.nk, readable by its owner only.
func writeSeedOf(dir, name string, kp nkeys.KeyPair) (string, error) {
	seed, err := kp.Seed()
	if err != nil {
		return "", fmt.Errorf("failed to read the NATS key of %s: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("failed to create %s: %w", dir, err)
	}
	path := filepath.Join(dir, name+".nk")
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		return "", fmt.Errorf("failed to write the NATS key of %s: %w", name, err)
	}
	return path, nil
}

// loadOrCreateShimSigner reads the nkey the controller signs runtime shim
// requests with from path, or creates it there (readable by its owner
// only): the shims' --controller-key stays valid across restarts of the
// stack.
func loadOrCreateShimSigner(path string) (nkeys.KeyPair, error) {
	seed, err := os.ReadFile(path)
	if err == nil {
		kp, err := nkeys.FromSeed(seed)
		if err != nil {
			return nil, fmt.Errorf("failed to read the shim signing key %s: %w", path, err)
		}
		return kp, nil
	}
	if !os.IsNotExist(err) {
		return nil, fmt.Errorf("failed to read the shim signing key %s: %w", path, err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("failed to create the shim signing key: %w", err)
	}
	if seed, err = kp.Seed(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, seed, 0o600); err != nil {
		return nil, fmt.Errorf("failed to write the shim signing key %s: %w", path, err)
	}
	return kp, nil
}
