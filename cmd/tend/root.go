package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/tendops/tend/internal/localstack"
	"github.com/tendops/tend/mcp/wire"
)

// version is tend's release, the one the MCP server reports to clients.
var version = wire.Version

// kubeOptions are the flags that choose a cluster, an identity and a
// namespace: kubectl's own (cli-runtime's ConfigFlags), so --kubeconfig,
// --context, --as, --as-group, --token, --server and the rest mean what they
// mean to kubectl. Only --cluster is left out: on tend's bus commands it
// names the cluster on the bus.
type kubeOptions struct {
	// kubeconfig, when set before use, is the kubeconfig file to read (for
	// callers that hold one, such as the demo).
	kubeconfig string
	flags      *genericclioptions.ConfigFlags
}

func (o *kubeOptions) bind(cmd *cobra.Command, namespaced bool) {
	o.flags = newConfigFlags(namespaced)
	o.flags.AddFlags(cmd.PersistentFlags())
}

func newConfigFlags(namespaced bool) *genericclioptions.ConfigFlags {
	f := genericclioptions.NewConfigFlags(true)
	f.ClusterName = nil
	if !namespaced {
		f.Namespace = nil
	}
	return f
}

func (o *kubeOptions) configFlags() *genericclioptions.ConfigFlags {
	if o.flags == nil {
		o.flags = newConfigFlags(false)
	}
	if o.kubeconfig != "" {
		o.flags.KubeConfig = &o.kubeconfig
	}
	return o.flags
}

func (o *kubeOptions) loader() clientcmd.ClientConfig {
	return o.configFlags().ToRawKubeConfigLoader()
}

func (o *kubeOptions) restConfig() (*rest.Config, error) {
	cfg, err := o.configFlags().ToRESTConfig()
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

// clientInNamespace is client and ns together, for commands about one
// namespace's objects.
func (o *kubeOptions) clientInNamespace() (client.Client, string, error) {
	c, err := o.client()
	if err != nil {
		return nil, "", err
	}
	ns, err := o.ns()
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

func (o *kubeOptions) ns() (string, error) {
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
		// As a kubectl plugin (kubectl-tend on the PATH), usage reads
		// "kubectl tend ...".
		root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl tend"}
	}
	root.SetVersionTemplate("{{.DisplayName}} {{.Version}}\n")
	root.AddCommand(newUpCommand(), newDemoCommand(), newProposalsCommand(), newStatusCommand(), newGateCommand(), newAuditCommand(), newPolicyCommand(), newEvalCommand(), newMCPCommand(), newVersionCommand(), newDoctorCommand(), newFindingsCommand(), newTranscriptsCommand(), newRunsCommand(), newControllerCommand(), newSensorCommand(), newAgentCommand())
	refuseUnknownSubcommands(root)
	return root
}

// refuseUnknownSubcommands makes every command that only groups others
// fail on a word it does not know, with cobra's suggestions, instead of
// printing its help and exiting 0. With no word it prints its help.
func refuseUnknownSubcommands(cmd *cobra.Command) {
	for _, sub := range cmd.Commands() {
		refuseUnknownSubcommands(sub)
	}
	if !cmd.HasSubCommands() || cmd.Runnable() || !cmd.HasParent() {
		// The root already refuses unknown commands.
		return
	}
	// Args are checked before any PersistentPreRunE, so a mistyped word is
	// refused before a group's setup (such as finding a local stack) runs.
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
		c.SuggestionsMinimumDistance = 2
		if s := c.SuggestionsFor(args[0]); len(s) > 0 {
			msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
		}
		return fmt.Errorf("%s\nRun '%s --help' for usage", msg, c.CommandPath())
	}
	cmd.RunE = func(c *cobra.Command, _ []string) error { return c.Help() }
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
