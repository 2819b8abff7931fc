package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/testr"
	"github.com/nats-io/nkeys"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/critest"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// TestRun runs the command's wiring on a real containerd, connected to NATS
// with its node's own nkey, and has the controller restart a container
// through it.
func TestRun(t *testing.T) {
	ctrd := critest.Start(t)
	ctrd.ImportImage(critest.Registry+"/web:1", critest.ImageOptions{})
	pod := ctrd.RunPod("shop", "web-1")
	id := pod.Start("app", critest.Registry+"/web:1", 0)

	shimKey, _ := nkeys.CreateUser()
	shimPub, _ := shimKey.PublicKey()
	shimSeed, _ := shimKey.Seed()
	seedFile := filepath.Join(t.TempDir(), "node-1.nk")
	if err := os.WriteFile(seedFile, shimSeed, 0o600); err != nil {
		t.Fatal(err)
	}
	shimPerms, err := bus.ComponentPermissions(bus.ComponentShim, "prod", "node-1")
	if err != nil {
		t.Fatal(err)
	}
	ctrlPerms, err := bus.ComponentPermissions(bus.ComponentController, "prod", "")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{
		StoreDir:  t.TempDir(),
		Users:     []bus.EmbeddedUser{{Name: "controller", Password: "pw", Permissions: ctrlPerms}},
		NkeyUsers: []bus.EmbeddedNkeyUser{{PublicKey: shimPub, Permissions: shimPerms}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	auth, _ := bus.Auth{User: "controller", Password: "pw"}.Options()
	nc, js, err := bus.Connect(t.Context(), srv.URL(), "controller", auth...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	signer, _ := nkeys.CreateUser()
	signerPub, _ := signer.PublicKey()
	client, err := shimclient.New(shimclient.Options{Cluster: "prod", Conn: nc, JS: js, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}

	opts := options{
		cluster: "prod", node: "node-1", natsURL: srv.URL(), auth: bus.Auth{NKeySeedFile: seedFile},
		criEndpoint: ctrd.Endpoint, criTimeout: 10 * time.Second, controllerKey: stringList{signerPub},
		podLogRoot: ctrd.LogRoot, stateInterval: time.Second, statsInterval: time.Second, imageInterval: time.Second, maxInFlight: 4,
	}
	if err := opts.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(logr.NewContext(t.Context(), testr.New(t)))
	done := make(chan error, 1)
	go func() { done <- run(ctx, opts) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()

	// The shim answers once it is up.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := client.Status(t.Context(), "node-1", bus.StatusParams{})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shim does not answer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	res, err := client.RestartContainer(t.Context(), "node-1", shimclient.Attempt{ID: "uid-1/apply/1"},
		bus.RestartContainerParams{Target: bus.ContainerTarget{Namespace: "shop", Pod: "web-1", Container: "app"}})
	if err != nil {
		t.Fatalf("RestartContainer: %v", err)
	}
	if res.ContainerID != id {
		t.Errorf("restarted %s, want %s", res.ContainerID, id)
	}
}

func TestValidate(t *testing.T) {
	for name, o := range map[string]options{
		"no cluster":        {node: "n", controllerKey: stringList{"U"}, criTimeout: time.Second},
		"no node":           {cluster: "c", controllerKey: stringList{"U"}, criTimeout: time.Second},
		"no controller key": {cluster: "c", node: "n", criTimeout: time.Second},
		"two auth methods":  {cluster: "c", node: "n", controllerKey: stringList{"U"}, criTimeout: time.Second, auth: bus.Auth{User: "u", NKeySeedFile: "s"}},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
