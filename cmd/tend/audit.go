package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/internal/localstack"
)

type auditOptions struct {
	natsURL string
	cluster string
	workDir string
}

func (o *auditOptions) bind(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.natsURL, "nats-url", "", "NATS server with the AUDIT stream (default: the local stack's, from <work-dir>/stack.json)")
	f.StringVar(&o.cluster, "cluster", "", "cluster name on the bus (default: the local stack's, else \"local\")")
	f.StringVar(&o.workDir, "work-dir", ".tend", "work dir of the local stack started by `tend up`")
}

// resolve fills what flags left empty from the running local stack.
func (o *auditOptions) resolve() error {
	if o.natsURL != "" {
		if o.cluster == "" {
			o.cluster = "local"
		}
		return nil
	}
	info, err := localstack.ReadInfo(o.workDir)
	if err != nil {
		return err
	}
	o.natsURL = info.NATSURL
	if o.cluster == "" {
		o.cluster = info.Cluster
	}
	return nil
}

func newAuditCommand() *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify and follow the hash-chained audit log on NATS",
		Long: `Every committed proposal transition is a record on the AUDIT stream
(tend.audit.<cluster>); each record carries the hash of the one before it.`,
		PersistentPreRunE: func(*cobra.Command, []string) error { return o.resolve() },
	}
	o.bind(cmd)
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the whole chain; report the first broken record and exit non-zero",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, js, err := bus.Connect(cmd.Context(), o.natsURL, "tend-audit")
			if err != nil {
				return err
			}
			defer nc.Close()
			recs, err := bus.NewAuditLog(js, o.cluster).Records(cmd.Context())
			if err != nil {
				return err
			}
			if err := bus.VerifyChain(recs); err != nil {
				var ce *bus.ChainError
				if errors.As(err, &ce) && ce.Index < len(recs) {
					fmt.Fprintf(cmd.OutOrStdout(), "BROKEN at record %d of %d:\n  ", ce.Index+1, len(recs))
					printAuditRecord(cmd.OutOrStdout(), recs[ce.Index])
				}
				return fmt.Errorf("the audit chain of cluster %s does not verify: %w", o.cluster, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK: %d audit records of cluster %s; the hash chain verifies\n", len(recs), o.cluster)
			return nil
		},
	}
	var last int
	tail := &cobra.Command{
		Use:   "tail",
		Short: "Print the last records, then follow new ones until Ctrl-C",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, js, err := bus.Connect(cmd.Context(), o.natsURL, "tend-audit")
			if err != nil {
				return err
			}
			defer nc.Close()
			log := bus.NewAuditLog(js, o.cluster)
			recs, err := log.Records(cmd.Context())
			if err != nil {
				return err
			}
			for _, r := range recs[max(0, len(recs)-last):] {
				printAuditRecord(cmd.OutOrStdout(), r)
			}
			return log.Follow(cmd.Context(), func(r bus.AuditRecord) error {
				printAuditRecord(cmd.OutOrStdout(), r)
				return nil
			})
		},
	}
	tail.Flags().IntVarP(&last, "last", "n", 10, "how many existing records to print first")
	cmd.AddCommand(verify, tail)
	return cmd
}

func printAuditRecord(out io.Writer, r bus.AuditRecord) {
	fmt.Fprintf(out, "%s  %s/%s  %s → %s  %s  %.12s\n", r.Time.UTC().Format(time.RFC3339), r.Object.Namespace, r.Object.Name,
		orDash(r.From), r.To, r.Reason, r.Hash)
}
