package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tendops/tend/internal/localstack"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// kubeOptions are the flags that choose a cluster and a namespace.
type kubeOptions struct {
	kubeconfig    string
	context       string
	namespace     string
	allNamespaces bool
}

func (o *kubeOptions) bind(cmd *cobra.Command, namespaced bool) {
	cmd.PersistentFlags().StringVar(&o.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	cmd.PersistentFlags().StringVar(&o.context, "context", "", "kubeconfig context to use")
	if namespaced {
		cmd.PersistentFlags().StringVarP(&o.namespace, "namespace", "n", "", "namespace (default: the kubeconfig context's namespace)")
	}
}

func (o *kubeOptions) loader() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.kubeconfig != "" {
		rules.ExplicitPath = o.kubeconfig
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: o.context})
}

func (o *kubeOptions) restConfig() (*rest.Config, error) {
	cfg, err := o.loader().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("failed to load kubeconfig: %w", err)
	}
	return cfg, nil
}

func (o *kubeOptions) client() (client.Client, error) {
	cfg, err := o.restConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: localstack.Scheme()})
	if err != nil {
		return nil, fmt.Errorf("failed to create client: %w", err)
	}
	return c, nil
}

func (o *kubeOptions) ns() (string, error) {
	if o.namespace != "" {
		return o.namespace, nil
	}
	ns, _, err := o.loader().Namespace()
	if err != nil {
		return "", fmt.Errorf("failed to read the namespace from kubeconfig: %w", err)
	}
	return ns, nil
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "tend",
		Short: "Autonomous operations for Kubernetes, with agents that propose and a gate that decides",
		Long: `tend watches a cluster's telemetry on NATS. Maintenance agents heal what breaks by
proposing changes through MCP tools; a policy gate auto-approves, asks a human, or
denies; the proposal controller applies what was approved, verifies it, and rolls it
back if it made things worse. Every step is recorded.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	if strings.HasPrefix(filepath.Base(os.Args[0]), "kubectl-") {
		root.Use = "kubectl tend"
	}
	root.AddCommand(newUpCommand(), newDemoCommand(), newProposalsCommand(), newStatusCommand(), newGateCommand(), newAuditCommand(), newPolicyCommand(), newEvalCommand(), newMCPCommand(), newFindingsCommand())
	return root
}

// newLogger returns a console logger at the given verbosity (0: info).
func newLogger(verbosity int) logr.Logger {
	return zap.New(zap.UseDevMode(false), zap.Level(zapcore.Level(-verbosity)), zap.ConsoleEncoder(), zap.WriteTo(os.Stderr))
}

// defaultBinDir is the directory of the running binary when it holds the
// tools (bin/tend next to bin/kube-apiserver), else ./bin.
func defaultBinDir() string {
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		if _, err := os.Stat(filepath.Join(dir, "kwokctl")); err == nil {
			return dir
		}
	}
	return "bin"
}
