package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
)

// systemNamespaceFlag binds --system-namespace, where tend keeps its state.
func systemNamespaceFlag(cmd *cobra.Command, ns *string) {
	cmd.PersistentFlags().StringVar(ns, "system-namespace", tendv1.DefaultSystemNamespace, "namespace of tend's components and gate state")
}

func newGateCommand() *cobra.Command {
	o := &kubeOptions{}
	var system string
	cmd := &cobra.Command{
		Use:   "gate",
		Short: "Operate the policy gate's switches: the kill switch and the circuit breaker",
		Long: `The gate's switches live in the ConfigMap tend-gate of tend's namespace, so every
controller replica and every operator sees the same state.

  kill-switch on     nothing is approved automatically and nothing is applied, within a second;
                     automatic approvals not yet applied are withdrawn and go back to the gate
  kill-switch off    release it
  reset-breaker      close a tripped circuit breaker; failures before the reset stop counting`,
	}
	o.bind(cmd, false)
	systemNamespaceFlag(cmd, &system)

	kill := &cobra.Command{
		Use:       "kill-switch on|off",
		Short:     "Engage or release the kill switch",
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		ValidArgs: []string{"on", "off"},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			if err := controllers.UpdateGateState(cmd.Context(), c, system, func(d map[string]string) {
				d[controllers.KeyKillSwitch] = args[0]
			}); err != nil {
				return err
			}
			if args[0] == "on" {
				fmt.Fprintln(cmd.OutOrStdout(), "Kill switch engaged: nothing is approved automatically or applied until `tend gate kill-switch off`.")
			} else {
				fmt.Fprintln(cmd.OutOrStdout(), "Kill switch released.")
			}
			return nil
		},
	}
	reset := &cobra.Command{
		Use:   "reset-breaker",
		Short: "Close a tripped circuit breaker",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			now := time.Now().UTC().Format(time.RFC3339)
			if err := controllers.UpdateGateState(cmd.Context(), c, system, func(d map[string]string) {
				d[controllers.KeyBreakerTripped] = "false"
				d[controllers.KeyBreakerReason] = ""
				d[controllers.KeyBreakerResetAt] = now
			}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Circuit breaker closed at %s; failures and proposals before it no longer count.\n", now)
			return nil
		},
	}
	cmd.AddCommand(kill, reset)
	return cmd
}
