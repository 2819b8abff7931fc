package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tendops/tend/internal/localstack"
)

// startAPIServer starts a real kube-apiserver and etcd (make tools builds
// them into bin/) for one test, stopped when it ends, and returns it with
// an administrator's client.
func startAPIServer(t *testing.T) (*envtest.Environment, client.Client) {
	t.Helper()
	ctrllog.SetLogger(logr.Discard())
	bin := os.Getenv("TEND_BIN_DIR")
	if bin == "" {
		bin = filepath.Join("..", "..", "bin")
	}
	bin, err := filepath.Abs(bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(bin, "kube-apiserver")); err != nil {
		t.Fatalf("kube-apiserver is missing from %s: run make tools (%v)", bin, err)
	}
	env := &envtest.Environment{BinaryAssetsDirectory: bin, Scheme: localstack.Scheme()}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("failed to start envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("failed to stop envtest: %v", err)
		}
	})
	admin, err := client.New(cfg, client.Options{Scheme: localstack.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return env, admin
}

// userKubeconfig writes a kubeconfig for user, whom the API server
// authenticates by a client certificate its CA signed, and returns its path.
func userKubeconfig(t *testing.T, env *envtest.Environment, user envtest.User) string {
	t.Helper()
	u, err := env.AddUser(user, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), user.Name+".kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
