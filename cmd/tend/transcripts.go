package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tendops/tend/agents/planner"
	"github.com/tendops/tend/bus"
)

// incidentOf is the incident a proposal's agent field names ("maintenance
// incident inc-…"), "" when no planner made it.
func incidentOf(agent string) string {
	_, id, ok := strings.Cut(agent, " incident ")
	if !ok {
		return ""
	}
	return id
}

func newTranscriptsCommand() *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "transcripts",
		Short: "Read the LLM planner's transcripts: why an agent proposed what it did",
	}
	f := cmd.PersistentFlags()
	f.StringVar(&o.natsURL, "nats-url", "", "NATS server with the TRANSCRIPTS stream (default: the local stack's, from <work-dir>/stack.json)")
	f.StringVar(&o.natsKey, "nats-nkey", "", "file with the nkey seed to connect as (default: the local stack's audit reader)")
	f.StringVar(&o.cluster, "cluster", "", "cluster name on the bus (default: the local stack's, else \"local\")")
	f.StringVar(&o.workDir, "work-dir", ".tend", "work dir of the local stack started by `tend up`")
	var agent string
	var full bool
	out := &outputOptions{}
	show := &cobra.Command{
		Use:   "show INCIDENT",
		Short: "Print one incident's transcript: the model's answers, its tool calls and why the run stopped",
		Long: `Print the transcript of the planner's run on one incident: what it was told, every
model answer (with the tokens it cost), every tool call with its arguments and result
(or why the planner refused it), the proposals it made with the gate's decisions, and
why the run stopped.

A proposal made by the planner names its incident in its agent field ("maintenance
incident inc-…"); tend proposals show prints the command that reads its transcript.`,
		Args: cobra.ExactArgs(1),
		PreRunE: func(*cobra.Command, []string) error {
			if err := out.validate(); err != nil {
				return err
			}
			return o.resolve()
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			nc, js, err := o.connect(cmd.Context())
			if err != nil {
				return err
			}
			defer nc.Close()
			raw, ref, err := bus.ReadTranscript(cmd.Context(), js, o.cluster, agent, args[0])
			if err != nil {
				return err
			}
			var res planner.Result
			if err := json.Unmarshal(raw, &res); err != nil {
				return fmt.Errorf("failed to decode transcript %s #%d: %w", ref.Subject, ref.Sequence, err)
			}
			if !out.table() {
				rep, err := report("Transcript", res)
				if err != nil {
					return err
				}
				return out.print(cmd.OutOrStdout(), rep)
			}
			printTranscript(cmd.OutOrStdout(), res, ref, full)
			return nil
		},
	}
	show.Flags().StringVar(&agent, "agent", "maintenance", "the agent whose planner ran")
	show.Flags().BoolVar(&full, "full", false, "print tool results and answers whole (default: their first 400 characters)")
	out.bind(show)
	cmd.AddCommand(show)
	return cmd
}

// printTranscript prints a run for people.
func printTranscript(w io.Writer, r planner.Result, ref bus.TranscriptRef, full bool) {
	clip := func(s string) string {
		s = strings.TrimSpace(s)
		if !full && len(s) > 400 {
			return s[:400] + " […]"
		}
		return s
	}
	indent := func(s string) string { return strings.ReplaceAll(s, "\n", "\n      ") }
	fmt.Fprintf(w, "Incident:   %s\n", r.Incident)
	fmt.Fprintf(w, "Stored:     %s #%d\n", ref.Subject, ref.Sequence)
	fmt.Fprintf(w, "Outcome:    %s", r.Outcome)
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintf(w, "\nCost:       %d steps, %d tokens in, %d out, $%.4f\n", r.Steps, r.Usage.InputTokens, r.Usage.OutputTokens, r.Usage.CostUSD)
	fmt.Fprintf(w, "Proposals:  %d\n", len(r.Proposals))
	for _, p := range r.Proposals {
		fmt.Fprintf(w, "            - %s/%s: %s (%s)\n", p.Namespace, p.Name, orDash(p.Phase), orDash(p.Outcome))
	}
	fmt.Fprintf(w, "Diagnosis:  %s\n\n", orDash(indent(clip(r.Diagnosis))))
	for _, e := range r.Transcript {
		head := fmt.Sprintf("[%d] %s %s", e.Step, e.At.UTC().Format(time.TimeOnly), e.Kind)
		switch e.Kind {
		case "model":
			if e.Usage != nil {
				head += fmt.Sprintf(" (%d in, %d out)", e.Usage.InputTokens, e.Usage.OutputTokens)
			}
		case "tool", "planner":
			if e.Tool != "" {
				head += " " + e.Tool + " " + clip(e.Arguments)
			}
		}
		if e.Error {
			head += "  ERROR"
		}
		fmt.Fprintln(w, head)
		if t := clip(e.Text); t != "" {
			fmt.Fprintf(w, "      %s\n", indent(t))
		}
	}
}
