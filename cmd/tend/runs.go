package main

import (
	"fmt"
	"html"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
)

func newRunsCommand() *cobra.Command {
	o := &kubeOptions{}
	cmd := &cobra.Command{
		Use:     "runs",
		Aliases: []string{"run"},
		Short:   "List, show, start and stop improvement runs",
		Long: `Work with the runs of ImprovementSchedules: what each analysed, proposed, applied,
verified, undone, and saved. A run changes nothing itself: its changes are proposals
that the gate decides (see docs/improvement.md).`,
	}
	o.bind(cmd, true)
	cmd.AddCommand(newRunsListCommand(o), newRunsShowCommand(o), newRunsStartCommand(o), newRunsStopCommand(o))
	return cmd
}

func newRunsListCommand(o *kubeOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List improvement runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			opts := []client.ListOption{}
			if !all {
				ns, err := o.ns()
				if err != nil {
					return err
				}
				opts = append(opts, client.InNamespace(ns))
			}
			var list tendv1.ImprovementRunList
			if err := c.List(cmd.Context(), &list, opts...); err != nil {
				return fmt.Errorf("failed to list runs: %w", err)
			}
			printRuns(cmd.OutOrStdout(), list.Items, time.Now())
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list runs in every namespace")
	return cmd
}

func printRuns(out io.Writer, runs []tendv1.ImprovementRun, now time.Time) {
	if len(runs) == 0 {
		fmt.Fprintln(out, "No runs found.")
		return
	}
	sort.SliceStable(runs, func(i, j int) bool {
		return runs[i].Spec.ScheduledTime.After(runs[j].Spec.ScheduledTime.Time)
	})
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAMESPACE\tNAME\tSCHEDULE\tPHASE\tBATCH\tCHANGES\tSAVED CPU\tSAVED MEMORY\tAGE")
	for _, r := range runs {
		changes := 0
		for _, it := range r.Status.Items {
			if it.Action != "" {
				changes++
			}
		}
		batch := "-"
		if r.Status.Batches > 0 {
			batch = fmt.Sprintf("%d/%d", r.Status.Batch, r.Status.Batches-1)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", r.Namespace, r.Name, r.Spec.Schedule, orDash(string(r.Status.Phase)), batch, changes,
			cores(r.Status.Achieved.CPUMillicores), gib(r.Status.Achieved.MemoryBytes), duration.HumanDuration(now.Sub(r.CreationTimestamp.Time)))
	}
	_ = w.Flush()
}

func newRunsShowCommand(o *kubeOptions) *cobra.Command {
	var reportDir string
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a run: per workload the before and after and the evidence, what was applied, held, denied or undone, and the savings",
		Long: `Show a run's report. --report DIR also writes it as DIR/<run>.md, with an SVG chart per
changed container of its observed usage (the percentile and the peak the analyzer used)
against the old and the new requests.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.clientInNamespace()
			if err != nil {
				return err
			}
			run := &tendv1.ImprovementRun{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, run); err != nil {
				return fmt.Errorf("failed to get run %s/%s: %w", ns, args[0], err)
			}
			printRunReport(cmd.OutOrStdout(), run)
			if reportDir == "" {
				return nil
			}
			if err := os.MkdirAll(reportDir, 0o755); err != nil {
				return fmt.Errorf("failed to create %s: %w", reportDir, err)
			}
			var md strings.Builder
			fmt.Fprintf(&md, "# Improvement run %s/%s\n\n```\n", run.Namespace, run.Name)
			charts := map[string]string{}
			printRunReport(&md, run)
			md.WriteString("```\n")
			for i, it := range run.Status.Items {
				if it.Action != "SetResources" || it.Evidence == nil {
					continue
				}
				file := fmt.Sprintf("%s-%d.svg", run.Name, i)
				charts[file] = usageChart(it)
				fmt.Fprintf(&md, "\n## %s/%s container %s\n\n![usage against requests](%s)\n", it.Workload.Namespace, it.Workload.Name, it.Container, file)
			}
			for file, svg := range charts {
				if err := os.WriteFile(filepath.Join(reportDir, file), []byte(svg), 0o644); err != nil {
					return fmt.Errorf("failed to write %s: %w", file, err)
				}
			}
			path := filepath.Join(reportDir, run.Name+".md")
			if err := os.WriteFile(path, []byte(md.String()), 0o644); err != nil {
				return fmt.Errorf("failed to write %s: %w", path, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "\nWrote %s\n", path)
			return nil
		},
	}
	cmd.Flags().StringVar(&reportDir, "report", "", "directory to write the Markdown report and its SVG charts to")
	return cmd
}

// printRunReport writes a run's report as text.
func printRunReport(out io.Writer, run *tendv1.ImprovementRun) {
	s := run.Status
	fmt.Fprintf(out, "Run:        %s/%s (schedule %s)\n", run.Namespace, run.Name, run.Spec.Schedule)
	fmt.Fprintf(out, "Scheduled:  %s, window until %s\n", run.Spec.ScheduledTime.UTC().Format(time.RFC3339), run.Spec.WindowEnd.UTC().Format(time.RFC3339))
	fmt.Fprintf(out, "Phase:      %s", orDash(string(s.Phase)))
	if s.Batches > 0 {
		fmt.Fprintf(out, " (batch %d of %d; batch 0 is the canary)", s.Batch, s.Batches-1)
	}
	fmt.Fprintln(out)
	for _, c := range s.Conditions {
		fmt.Fprintf(out, "            %s=%s %s: %s\n", c.Type, c.Status, c.Reason, c.Message)
	}
	fmt.Fprintf(out, "Projected:  %s CPU, %s memory requested%s\n", cores(s.Projected.CPUMillicores), gib(s.Projected.MemoryBytes), money(s.Projected.Monthly))
	fmt.Fprintf(out, "Achieved:   %s CPU, %s memory requested%s\n", cores(s.Achieved.CPUMillicores), gib(s.Achieved.MemoryBytes), money(s.Achieved.Monthly))
	counts := map[tendv1.ItemOutcome]int{}
	for _, it := range s.Items {
		counts[it.Outcome]++
	}
	var parts []string
	for _, o := range []tendv1.ItemOutcome{tendv1.ItemVerified, tendv1.ItemApplied, tendv1.ItemAwaitingApproval, tendv1.ItemDenied, tendv1.ItemUndone, tendv1.ItemFailed, tendv1.ItemSkipped, tendv1.ItemPlanned, tendv1.ItemProposed, tendv1.ItemReported, tendv1.ItemNotEnoughData} {
		if counts[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[o], o))
		}
	}
	fmt.Fprintf(out, "Items:      %s\n\n", orDash(strings.Join(parts, ", ")))
	if len(s.Items) == 0 {
		return
	}
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "BATCH\tWORKLOAD\tCONTAINER\tANALYZER\tOUTCOME\tBEFORE\tAFTER\tEVIDENCE\tPROPOSAL")
	for _, it := range s.Items {
		batch := "-"
		if it.Action != "" {
			batch = fmt.Sprint(it.Batch)
		}
		prop := orDash(it.Proposal)
		if it.UndoProposal != "" {
			prop += " (undo " + it.UndoProposal + ")"
		}
		fmt.Fprintf(w, "%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", batch, strings.ToLower(it.Workload.Kind), it.Workload.Name, orDash(it.Container), it.Analyzer, it.Outcome,
			resourcesText(it.Before, it.Action), resourcesText(it.After, it.Action), evidence(it.Evidence), prop)
	}
	_ = w.Flush()
	for _, it := range s.Items {
		if it.Message != "" {
			fmt.Fprintf(out, "- %s/%s: %s\n", it.Workload.Name, orDash(it.Container), it.Message)
		}
	}
}

func resourcesText(r tendv1.Resources, action string) string {
	switch action {
	case "":
		return "-"
	case "ScaleWorkload":
		return fmt.Sprintf("%d replicas", r.Replicas)
	}
	s := fmt.Sprintf("cpu %s mem %s", milli(r.CPURequestMillicores), bin(r.MemoryRequestBytes))
	if r.MemoryLimitBytes > 0 {
		s += " limit " + bin(r.MemoryLimitBytes)
	}
	return s
}

func evidence(e *tendv1.UsageEvidence) string {
	if e == nil {
		return "-"
	}
	return fmt.Sprintf("%s %s, %d samples, cpu p%d %s peak %s, mem peak %s", e.Source, e.Window.Duration, e.Samples, e.CPUPercentile,
		milli(e.CPUPercentileMillicores), milli(e.CPUPeakMillicores), bin(e.MemoryPeakBytes))
}

func milli(v int64) string {
	if v == 0 {
		return "-"
	}
	return resource.NewMilliQuantity(v, resource.DecimalSI).String()
}

func bin(v int64) string {
	if v == 0 {
		return "-"
	}
	return resource.NewQuantity(v, resource.BinarySI).String()
}

func cores(m int64) string { return fmt.Sprintf("%.2f cores", float64(m)/1000) }
func gib(b int64) string   { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }

func money(m string) string {
	if m == "" {
		return ""
	}
	return " (" + m + " a month)"
}

// usageChart draws, per resource, the observed usage (percentile and peak)
// against the old and the new request, as horizontal bars.
func usageChart(it tendv1.RunItem) string {
	e := it.Evidence
	type bar struct {
		label string
		v     int64
		color string
	}
	groups := []struct {
		title string
		bars  []bar
		unit  func(int64) string
	}{
		{"CPU", []bar{{"old request", it.Before.CPURequestMillicores, "#999"}, {"new request", it.After.CPURequestMillicores, "#2a7"},
			{fmt.Sprintf("p%d usage", e.CPUPercentile), e.CPUPercentileMillicores, "#37c"}, {"peak usage", e.CPUPeakMillicores, "#c53"}}, milli},
		{"Memory", []bar{{"old request", it.Before.MemoryRequestBytes, "#999"}, {"new request", it.After.MemoryRequestBytes, "#2a7"},
			{"peak usage", e.MemoryPeakBytes, "#c53"}}, bin},
	}
	var b strings.Builder
	height := 30
	for _, g := range groups {
		height += 24 + 22*len(g.bars)
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="560" height="%d" font-family="sans-serif" font-size="12">`+"\n", height)
	fmt.Fprintf(&b, `<text x="10" y="18" font-weight="bold">%s</text>`+"\n", html.EscapeString(it.Workload.Name+" / "+it.Container))
	y := 30
	for _, g := range groups {
		var top int64 = 1
		for _, x := range g.bars {
			top = max(top, x.v)
		}
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+14, g.title)
		y += 24
		for _, x := range g.bars {
			w := int(float64(x.v) / float64(top) * 300)
			fmt.Fprintf(&b, `<text x="10" y="%d">%s</text><rect x="110" y="%d" width="%d" height="16" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n",
				y+12, x.label, y, w, x.color, 116+w, y+12, g.unit(x.v))
			y += 22
		}
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func newRunsStartCommand(o *kubeOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "start SCHEDULE",
		Short: "Start a run of a schedule now, outside its cron times",
		Long: `Start a run of an ImprovementSchedule now. The run copies the schedule's settings; its
window starts now. It proposes through the gate like a scheduled run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.clientInNamespace()
			if err != nil {
				return err
			}
			s := &tendv1.ImprovementSchedule{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, s); err != nil {
				return fmt.Errorf("failed to get schedule %s/%s: %w", ns, args[0], err)
			}
			run := controllers.NewRun(s, time.Now(), true)
			run.OwnerReferences = []metav1.OwnerReference{{APIVersion: tendv1.GroupVersion.String(), Kind: "ImprovementSchedule", Name: s.Name, UID: s.UID}}
			if err := c.Create(cmd.Context(), run); err != nil {
				return fmt.Errorf("failed to start a run of %s: %w", s.Name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Started run %s/%s\n", run.Namespace, run.Name)
			return nil
		},
	}
}

func newRunsStopCommand(o *kubeOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "stop NAME",
		Short: "Stop a run: it proposes nothing more; what it applied stays",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, ns, err := o.clientInNamespace()
			if err != nil {
				return err
			}
			run := &tendv1.ImprovementRun{}
			if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, run); err != nil {
				return fmt.Errorf("failed to get run %s/%s: %w", ns, args[0], err)
			}
			patch := client.MergeFrom(run.DeepCopy())
			run.Spec.Stop = true
			if err := c.Patch(cmd.Context(), run, patch); err != nil {
				return fmt.Errorf("failed to stop run %s: %w", run.Name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Asked run %s/%s to stop\n", run.Namespace, run.Name)
			return nil
		},
	}
}
