package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/tendops/tend/internal/localstack"
)

// TestStdioFindsTheLocalStacksTelemetry: `tend mcp --stdio` against the
// local stack's cluster reads telemetry from its NATS, as its MCP server,
// without flags; against another cluster it takes nothing from the stack.
func TestStdioFindsTheLocalStacksTelemetry(t *testing.T) {
	work := t.TempDir()
	kubeconfig := filepath.Join(work, "kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["stack"] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:32001"}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: "t"}
	cfg.Contexts["stack"] = &clientcmdapi.Context{Cluster: "stack", AuthInfo: "admin"}
	cfg.CurrentContext = "stack"
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	info := localstack.Info{Kubeconfig: kubeconfig, NATSURL: "nats://127.0.0.1:4999", MCPKeyFile: filepath.Join(work, "nats-keys", "mcp.nk"), Cluster: "kwok-1"}
	b, _ := json.Marshal(info)
	if err := os.WriteFile(localstack.InfoFile(work), b, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, host, wantURL, wantKey, wantCluster string
	}{
		{"the stack's cluster", "https://127.0.0.1:32001", info.NATSURL, info.MCPKeyFile, "kwok-1"},
		{"another cluster", "https://prod.example.com", "", "", "local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := &mcpOptions{stdio: true, workDir: work, cluster: "local"}
			o.fromLocalStack(tc.host)
			if o.nats.url != tc.wantURL || o.nats.auth.NKeySeedFile != tc.wantKey || o.cluster != tc.wantCluster {
				t.Errorf("nats %q, key %q, cluster %q; want %q, %q, %q", o.nats.url, o.nats.auth.NKeySeedFile, o.cluster, tc.wantURL, tc.wantKey, tc.wantCluster)
			}
		})
	}
}
