package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/internal/localstack"
)

type auditOptions struct {
	natsURL   string
	natsKey   string
	cluster   string
	workDir   string
	publicKey string
	system    string
	kube      kubeOptions
	// fromStack is set when the options came from the local stack's info.
	fromStack *localstack.Info
}

func (o *auditOptions) bind(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&o.natsURL, "nats-url", "", "NATS server with the AUDIT stream (default: the local stack's, from <work-dir>/stack.json)")
	f.StringVar(&o.natsKey, "nats-nkey", "", "file with the nkey seed to connect as (default: the local stack's audit reader)")
	f.StringVar(&o.cluster, "cluster", "", "cluster name on the bus (default: the local stack's, else \"local\")")
	f.StringVar(&o.workDir, "work-dir", ".tend", "work dir of the local stack started by `tend up`")
	f.StringVar(&o.publicKey, "public-key", "", "the audit key's public half (base64, or a file holding it) to verify signatures with (default: the local stack's, else the tend-audit ConfigMap)")
	f.StringVar(&o.system, "system-namespace", tendv1.DefaultSystemNamespace, "namespace of the tend-audit ConfigMap (public key and checkpoint)")
	o.kube.bind(cmd, false)
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
	o.fromStack = &info
	o.natsURL = info.NATSURL
	if o.natsKey == "" {
		o.natsKey = info.NATSKeyFile
	}
	if o.cluster == "" {
		o.cluster = info.Cluster
	}
	if o.kube.kubeconfig == "" {
		o.kube.kubeconfig = info.Kubeconfig
	}
	return nil
}

// connect connects to NATS as the audit reader.
func (o *auditOptions) connect(ctx context.Context) (*nats.Conn, jetstream.JetStream, error) {
	var extra []nats.Option
	if o.natsKey != "" {
		opts, err := bus.Auth{NKeySeedFile: o.natsKey}.Options()
		if err != nil {
			return nil, nil, err
		}
		extra = opts
	}
	return bus.Connect(ctx, o.natsURL, "tend-audit", extra...)
}

// trust finds the key to verify with and the checkpoint to compare the
// chain's head with. A key given on the command line wins; then the local
// stack's; then the tend-audit ConfigMap's. The checkpoint comes from the
// ConfigMap when the cluster can be read.
func (o *auditOptions) trust(ctx context.Context) (ed25519.PublicKey, *bus.Checkpoint, string, error) {
	var fromCluster *controllers.AuditTrust
	var clusterErr error
	if c, err := o.kube.client(); err == nil {
		t, err := controllers.ReadAuditTrust(ctx, c, o.system)
		if err == nil {
			fromCluster = &t
		} else {
			clusterErr = err
		}
	} else {
		clusterErr = err
	}
	var cp *bus.Checkpoint
	if fromCluster != nil {
		cp = fromCluster.Checkpoint
	}
	switch {
	case o.publicKey != "":
		text := o.publicKey
		if b, err := os.ReadFile(o.publicKey); err == nil {
			text = string(b)
		}
		pub, err := bus.DecodeAuditPublicKey(text)
		if err != nil {
			return nil, nil, "", fmt.Errorf("--public-key: %w", err)
		}
		return pub, cp, "--public-key", nil
	case o.fromStack != nil && o.fromStack.AuditPublicKey != "":
		pub, err := bus.DecodeAuditPublicKey(o.fromStack.AuditPublicKey)
		if err != nil {
			return nil, nil, "", fmt.Errorf("%s: %w", localstack.InfoFile(o.workDir), err)
		}
		return pub, cp, localstack.InfoFile(o.workDir), nil
	case fromCluster != nil:
		return fromCluster.PublicKey, cp, "ConfigMap " + o.system + "/" + controllers.AuditKeyName, nil
	}
	return nil, nil, "", fmt.Errorf("no audit public key: pass --public-key, or let tend read the tend-audit ConfigMap (%v)", clusterErr)
}

func newAuditCommand() *cobra.Command {
	o := &auditOptions{}
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Verify and follow the signed, hash-chained audit log on NATS",
		Long: `Every committed proposal transition is a record on the AUDIT stream
(tend.audit.<cluster>); each record carries the hash of the one before it and is
signed with the controller's audit key (ed25519). The key's public half and a
signed checkpoint of the chain's head are in the tend-audit ConfigMap of tend's
namespace.`,
		PersistentPreRunE: func(*cobra.Command, []string) error { return o.resolve() },
	}
	o.bind(cmd)
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the whole chain: links, hashes, signatures and the checkpoint; report the first break and exit non-zero",
		Long: `Reads the cluster's whole audit chain and checks that every record links to the
one before, that its hash matches its content and that the audit key signed it,
then that the chain still holds the signed checkpoint of its head. A record
appended by anyone without the key, a record changed or removed, a chain cut
short, and a deleted AUDIT stream each fail, with what was found.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			pub, cp, keySource, err := o.trust(ctx)
			if err != nil {
				return err
			}
			nc, js, err := o.connect(ctx)
			if err != nil {
				return err
			}
			defer nc.Close()
			recs, seqs, err := bus.NewAuditLog(js, o.cluster).RecordsSeq(ctx)
			if errors.Is(err, bus.ErrNoAuditStream) {
				fmt.Fprintf(out, "FAIL: the AUDIT stream does not exist on %s\n", o.natsURL)
				if cp != nil {
					fmt.Fprintf(out, "  the checkpoint says its chain held a record at stream sequence %d (%s): the stream was deleted\n", cp.Sequence, cp.Time.UTC().Format(time.RFC3339))
				}
				return fmt.Errorf("the audit log of cluster %s is gone: %w", o.cluster, err)
			}
			if err != nil {
				return err
			}
			if err := bus.VerifyChain(recs, pub); err != nil {
				var ce *bus.ChainError
				if errors.As(err, &ce) && ce.Index < len(recs) {
					fmt.Fprintf(out, "BROKEN at record %d of %d:\n  ", ce.Index+1, len(recs))
					printAuditRecord(out, recs[ce.Index])
				}
				return fmt.Errorf("the audit chain of cluster %s does not verify: %w", o.cluster, err)
			}
			head := "no checkpoint to compare the head with (the tend-audit ConfigMap could not be read or holds none)"
			if cp != nil {
				if err := bus.VerifyCheckpoint(recs, seqs, *cp, pub); err != nil {
					fmt.Fprintf(out, "FAIL: %d records verify, but %v\n", len(recs), err)
					return fmt.Errorf("the audit chain of cluster %s is incomplete: %w", o.cluster, err)
				}
				head = fmt.Sprintf("it holds the signed checkpoint at sequence %d (%s)", cp.Sequence, cp.Time.UTC().Format(time.RFC3339))
			}
			fmt.Fprintf(out, "OK: %d audit records of cluster %s; the hash chain and every signature verify (key %s, from %s); %s\n",
				len(recs), o.cluster, bus.AuditKeyID(pub), keySource, head)
			return nil
		},
	}
	var last int
	tail := &cobra.Command{
		Use:   "tail",
		Short: "Print the last records, then follow new ones until Ctrl-C",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			nc, js, err := o.connect(cmd.Context())
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
