package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
)

func newStatusCommand() *cobra.Command {
	o := &kubeOptions{}
	var system string
	out := &outputOptions{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the gate's switches, the gate policies and the proposals by phase",
		Long: `Show the gate's switches (kill switch, circuit breaker), the gate policies and whether
each compiled, and how many proposals are in each phase.

-o json|yaml|jsonpath prints a cli.tend.dev/v1alpha1 Status report: killSwitch
{engaged, missing}, breaker {tripped, reason, trippedAt, resetAt}, policies [{name,
rules, ready, message}] and proposals {PHASE: count}.`,
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return out.validate() },
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			gs, err := controllers.ReadGateState(ctx, c, system)
			if err != nil {
				return err
			}
			var gps tendv1.GatePolicyList
			if err := c.List(ctx, &gps); err != nil {
				return fmt.Errorf("failed to list gate policies: %w", err)
			}
			var props tendv1.ProposalList
			if err := c.List(ctx, &props); err != nil {
				return fmt.Errorf("failed to list proposals: %w", err)
			}
			if !out.table() {
				r, err := report("Status", statusReport(gs, gps.Items, props.Items))
				if err != nil {
					return err
				}
				return out.print(cmd.OutOrStdout(), r)
			}
			printStatus(cmd.OutOrStdout(), gs, gps.Items, props.Items)
			return nil
		},
	}
	o.bind(cmd, false)
	out.bind(cmd)
	systemNamespaceFlag(cmd, &system)
	return cmd
}

func printStatus(out io.Writer, st controllers.GateState, gps []tendv1.GatePolicy, props []tendv1.Proposal) {
	ks := "released"
	switch {
	case st.Missing:
		ks = "ENGAGED: the gate state ConfigMap " + controllers.GateStateName + " is missing, so the switch counts as engaged (fail closed); `tend gate kill-switch off` creates it released"
	case st.KillSwitch:
		ks = "ENGAGED: nothing is approved automatically or applied"
	}
	fmt.Fprintf(out, "Kill switch:      %s\n", ks)
	cb := "closed"
	if st.Breaker.Tripped {
		cb = fmt.Sprintf("OPEN since %s: %s (reset with `tend gate reset-breaker`)", st.TrippedAt.Format("2006-01-02 15:04:05Z07:00"), st.Breaker.Reason)
	} else if !st.Breaker.ResetAt.IsZero() {
		cb = fmt.Sprintf("closed (last reset %s)", st.Breaker.ResetAt.Format("2006-01-02 15:04:05Z07:00"))
	}
	fmt.Fprintf(out, "Circuit breaker:  %s\n\n", cb)

	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "GATE POLICY\tRULES\tREADY\tMESSAGE")
	sort.Slice(gps, func(i, j int) bool { return gps[i].Name < gps[j].Name })
	for _, gp := range gps {
		ready, msg := "Unknown", ""
		if c := meta.FindStatusCondition(gp.Status.Conditions, controllers.ConditionReady); c != nil {
			ready, msg = string(c.Status), c.Message
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", gp.Name, len(gp.Spec.Rules), ready, msg)
	}
	if len(gps) == 0 {
		fmt.Fprintln(w, "(none: every proposal needs a human)\t\t\t")
	}
	_ = w.Flush()

	counts := map[tendv1.Phase]int{}
	for _, p := range props {
		ph := p.Status.Phase
		if ph == "" {
			ph = tendv1.PhasePending
		}
		counts[ph]++
	}
	var parts []string
	for _, ph := range []tendv1.Phase{tendv1.PhasePending, tendv1.PhaseAwaitingApproval, tendv1.PhaseApproved, tendv1.PhaseApplying,
		tendv1.PhaseVerifying, tendv1.PhaseSucceeded, tendv1.PhaseFailed, tendv1.PhaseRolledBack, tendv1.PhaseDenied,
		tendv1.PhaseExpired, tendv1.PhaseSuperseded} {
		if n := counts[ph]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", ph, n))
		}
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	fmt.Fprintf(out, "\nProposals:        %s\n", strings.Join(parts, ", "))
}

// statusJSON is what tend status -o json|yaml prints, besides apiVersion
// and kind.
type statusJSON struct {
	KillSwitch struct {
		Engaged bool `json:"engaged"`
		Missing bool `json:"missing"`
	} `json:"killSwitch"`
	Breaker struct {
		Tripped   bool       `json:"tripped"`
		Reason    string     `json:"reason,omitempty"`
		TrippedAt *time.Time `json:"trippedAt,omitempty"`
		ResetAt   *time.Time `json:"resetAt,omitempty"`
	} `json:"breaker"`
	Policies  []statusPolicy `json:"policies"`
	Proposals map[string]int `json:"proposals"`
}

type statusPolicy struct {
	Name    string `json:"name"`
	Rules   int    `json:"rules"`
	Ready   string `json:"ready"`
	Message string `json:"message,omitempty"`
}

func statusReport(st controllers.GateState, gps []tendv1.GatePolicy, props []tendv1.Proposal) statusJSON {
	var r statusJSON
	r.KillSwitch.Engaged, r.KillSwitch.Missing = st.KillSwitch, st.Missing
	r.Breaker.Tripped, r.Breaker.Reason = st.Breaker.Tripped, st.Breaker.Reason
	if st.Breaker.Tripped && !st.TrippedAt.IsZero() {
		t := st.TrippedAt.UTC()
		r.Breaker.TrippedAt = &t
	}
	if !st.Breaker.ResetAt.IsZero() {
		t := st.Breaker.ResetAt.UTC()
		r.Breaker.ResetAt = &t
	}
	sort.Slice(gps, func(i, j int) bool { return gps[i].Name < gps[j].Name })
	r.Policies = []statusPolicy{}
	for _, gp := range gps {
		sp := statusPolicy{Name: gp.Name, Rules: len(gp.Spec.Rules), Ready: "Unknown"}
		if c := meta.FindStatusCondition(gp.Status.Conditions, controllers.ConditionReady); c != nil {
			sp.Ready, sp.Message = string(c.Status), c.Message
		}
		r.Policies = append(r.Policies, sp)
	}
	r.Proposals = map[string]int{}
	for _, p := range props {
		ph := p.Status.Phase
		if ph == "" {
			ph = tendv1.PhasePending
		}
		r.Proposals[string(ph)]++
	}
	return r
}
