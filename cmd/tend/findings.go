package main

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/controllers"
)

func newFindingsCommand() *cobra.Command {
	o := &kubeOptions{}
	var all bool
	cmd := &cobra.Command{
		Use:   "findings",
		Short: "List the agents' findings: faults they saw and had no safe fix for",
		Long: `When no runbook has a safe fix for a fault, the maintenance agent records a finding:
what is wrong, the telemetry that shows it, and what a human could do. The controller
puts each on its object as a Warning Event (reason ` + controllers.ReasonFinding + `), which
this command lists, newest first; 'kubectl describe' shows it on the object too.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			opts := []client.ListOption{client.MatchingFields{"reason": controllers.ReasonFinding}}
			if !all {
				ns, err := o.ns()
				if err != nil {
					return err
				}
				opts = append(opts, client.InNamespace(ns))
			}
			var list corev1.EventList
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return fmt.Errorf("failed to list findings: %w", err)
			}
			printFindings(cmd.OutOrStdout(), list.Items, time.Now())
			return nil
		},
	}
	o.bind(cmd, true)
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list findings in every namespace (and about nodes)")
	return cmd
}

// eventTime is when an Event last happened, whichever API wrote it.
func eventTime(e corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

func printFindings(out io.Writer, items []corev1.Event, now time.Time) {
	if len(items) == 0 {
		fmt.Fprintln(out, "No findings.")
		return
	}
	sort.SliceStable(items, func(i, j int) bool { return eventTime(items[i]).After(eventTime(items[j])) })
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "AGE\tOBJECT\tFINDING")
	for _, e := range items {
		obj := e.InvolvedObject.Kind + "/" + e.InvolvedObject.Name
		if e.InvolvedObject.Namespace != "" {
			obj = e.InvolvedObject.Kind + "/" + e.InvolvedObject.Namespace + "/" + e.InvolvedObject.Name
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", duration.HumanDuration(now.Sub(eventTime(e))), obj, e.Message)
	}
	_ = w.Flush()
}
