package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap/zapcore"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/internal/localstack"
)

type demoOptions struct {
	stackOptions
	stepTimeout time.Duration
}

func newDemoCommand() *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show the whole loop on the local stack: a bad rollout, detected, proposed, decided, applied and verified",
		Long: `Start the local stack and narrate two cases:

  1. In namespace demo, web 1.0 runs healthy; web 2.0 rolls out and crash-loops because
     the new release needs DATABASE_URL. The maintenance agent sees it on NATS, proposes
     a rollback through MCP, the gate auto-approves it, and the controller applies and
     verifies it.
  2. The same in namespace payments, labelled tend.dev/protected=true: the gate requires
     a human. The demo approves as a second user, alice, through an Approval that the
     API server authorizes; then the rollback is applied and verified.

It ends with the audit trail and exits 0 on success, non-zero with a message if any
step does not happen within --step-timeout. Component logs go to <work-dir>/demo.log.`,
		Args: cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error {
			if o.stepTimeout < 10*time.Second {
				return fmt.Errorf("--step-timeout must be at least 10s, not %s", o.stepTimeout)
			}
			return o.Validate()
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	o.bind(cmd)
	cmd.Flags().DurationVar(&o.stepTimeout, "step-timeout", 3*time.Minute, "how long each step of the demo may take")
	_ = cmd.Flags().Set("stable-window", "10s")
	_ = cmd.Flags().Set("mcp-addr", "127.0.0.1:0")
	return cmd
}

// narrator prints the demo's story with elapsed times.
type narrator struct {
	out   io.Writer
	start time.Time
}

func (n *narrator) say(format string, args ...any) {
	fmt.Fprintf(n.out, "[%6.1fs] %s\n", time.Since(n.start).Seconds(), fmt.Sprintf(format, args...))
}

func (n *narrator) title(s string) {
	fmt.Fprintf(n.out, "\n== %s\n", s)
}

func runDemo(ctx context.Context, out io.Writer, o *demoOptions) error {
	n := &narrator{out: out, start: time.Now()}
	if err := os.MkdirAll(o.workDir, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", o.workDir, err)
	}
	logPath := filepath.Join(o.workDir, "demo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("failed to create log file: %w", err)
	}
	defer logFile.Close()
	logger := zap.New(zap.Level(zapcore.Level(-o.verbosity)), zap.ConsoleEncoder(), zap.WriteTo(logFile))
	ctrl.SetLogger(logger)

	n.title("Starting the local stack")
	st, err := localstack.Start(ctx, o.localstack(logger, n.say))
	if err != nil {
		return err
	}
	defer func() {
		n.say("Stopping the local stack")
		st.Stop()
	}()
	n.say("kubeconfig %s, MCP %s, component logs in %s", st.Kubeconfig, st.MCPURL, logPath)

	d := &demo{n: n, st: st, step: o.stepTimeout}
	var names []string
	for _, c := range []demoCase{
		{title: "Case 1: a bad rollout in an ordinary namespace", namespace: "demo"},
		{title: "Case 2: the same in a protected namespace, where a human must approve", namespace: "payments", protected: true},
	} {
		name, err := d.run(ctx, c)
		if err != nil {
			return fmt.Errorf("%s: %w", c.title, err)
		}
		names = append(names, name)
	}
	if err := d.audit(ctx, names); err != nil {
		return err
	}
	n.title(fmt.Sprintf("Demo complete in %s: detected, proposed, decided, applied and verified healthy, twice", time.Since(n.start).Round(time.Second)))
	return nil
}

type demoCase struct {
	title     string
	namespace string
	protected bool
}

type demo struct {
	n    *narrator
	st   *localstack.Stack
	step time.Duration
}

const demoApp = "web"

// run plays one case and returns the proposal's name.
func (d *demo) run(ctx context.Context, c demoCase) (string, error) {
	n, cl := d.n, d.st.Client
	n.title(c.title)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c.namespace}}
	if c.protected {
		ns.Labels = map[string]string{"tend.dev/protected": "true"}
	}
	if err := cl.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("failed to create namespace: %w", err)
	}
	dep := demoDeployment(c.namespace)
	if err := cl.Create(ctx, dep); err != nil {
		return "", fmt.Errorf("failed to create deployment: %w", err)
	}
	n.say("Deployed %s/%s: 3 replicas of %s:1.0", c.namespace, demoApp, localstack.DemoImage)
	if err := d.waitFor(ctx, "web 1.0 to become healthy", func(ctx context.Context) (bool, error) {
		return deploymentHealthy(ctx, cl, c.namespace, demoApp)
	}); err != nil {
		return "", err
	}
	n.say("web 1.0 is healthy: 3/3 pods ready (revision 1)")

	if err := cl.Get(ctx, client.ObjectKeyFromObject(dep), dep); err != nil {
		return "", fmt.Errorf("failed to get deployment: %w", err)
	}
	dep.Spec.Template.Spec.Containers[0].Image = localstack.DemoImage + ":2.0"
	if err := cl.Update(ctx, dep); err != nil {
		return "", fmt.Errorf("failed to roll out web 2.0: %w", err)
	}
	n.say("Rolling out web 2.0 (revision 2). Release 2.0 needs DATABASE_URL, and this rollout does not set it")

	var p *tendv1.Proposal
	if err := d.waitFor(ctx, "the maintenance agent to propose a fix", func(ctx context.Context) (bool, error) {
		var list tendv1.ProposalList
		if err := cl.List(ctx, &list, client.InNamespace(c.namespace)); err != nil {
			return false, err
		}
		if len(list.Items) > 0 {
			p = &list.Items[0]
			return true, nil
		}
		return false, nil
	}); err != nil {
		return "", err
	}
	// The agent often heals the rollout before a person would have looked:
	// the proposal's evidence is the record of what broke.
	n.say("Detected: %s", p.Spec.Evidence.Summary)
	n.say("Proposed: %s asked, over MCP, for %s %s (proposal %s)", p.Spec.Proposer.Username, p.Spec.Action, rollbackText(p), p.Name)

	return p.Name, d.follow(ctx, c, p.Name)
}

// follow narrates the proposal's phases until it ends, approving as a second
// user when the gate asks for a human.
func (d *demo) follow(ctx context.Context, c demoCase, name string) error {
	n, cl := d.n, d.st.Client
	key := client.ObjectKey{Namespace: c.namespace, Name: name}
	var decided, waited, approved, applied bool
	p := &tendv1.Proposal{}
	err := d.waitFor(ctx, "proposal "+name+" to finish", func(ctx context.Context) (bool, error) {
		if err := cl.Get(ctx, key, p); err != nil {
			return false, err
		}
		st := p.Status
		if st.Decision == nil && strings.HasPrefix(st.Message, "Waiting") && !waited {
			waited = true
			n.say("The controller gathers the facts the gate decides on: %s", st.Message)
		}
		if st.Decision != nil && !decided {
			decided = true
			if f := st.Decision.Facts; f != nil && f.Revision != nil {
				n.say("Facts the controller read (not the proposal's claims): %s", f.Revision.Evidence)
			}
			n.say("Gate decision: %s", decisionText(st.Decision))
		}
		if st.Phase == tendv1.PhaseAwaitingApproval && !approved {
			approved = true
			if err := d.approveAsAlice(ctx, c.namespace, name); err != nil {
				return false, err
			}
		}
		if st.Apply != nil && st.Apply.CompletedAt != nil && !applied {
			applied = true
			if len(st.Approvals) > 0 {
				n.say("Approved by %s; the controller applied it", st.Approvals[0].Approver)
			}
			n.say("Applied (server-side dry run first, field manager %s): %s → %s; verifying rollout, readiness and restarts",
				st.Apply.FieldManager, st.Apply.Before, st.Apply.After)
		}
		switch st.Phase {
		case tendv1.PhaseSucceeded:
			n.say("Verified healthy: %s", st.Message)
			return true, nil
		case tendv1.PhaseDenied, tendv1.PhaseFailed, tendv1.PhaseRolledBack, tendv1.PhaseExpired, tendv1.PhaseSuperseded:
			return false, fmt.Errorf("proposal %s ended %s: %s", name, st.Phase, st.Message)
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	if err := d.waitFor(ctx, "web to be healthy on the 1.0 template", func(ctx context.Context) (bool, error) {
		return deploymentHealthy(ctx, cl, c.namespace, demoApp)
	}); err != nil {
		return err
	}
	dep := &appsv1.Deployment{}
	if err := cl.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: demoApp}, dep); err != nil {
		return fmt.Errorf("failed to get deployment: %w", err)
	}
	n.say("Recovered: %s/%s runs %s with %d/%d pods ready (revision %s)", c.namespace, demoApp,
		dep.Spec.Template.Spec.Containers[0].Image, dep.Status.ReadyReplicas, *dep.Spec.Replicas, dep.Annotations["deployment.kubernetes.io/revision"])
	return nil
}

// approveAsAlice approves as a second, human user: a client certificate for
// alice in group tend:approvers, and the same code path as
// `tend proposals approve`.
func (d *demo) approveAsAlice(ctx context.Context, namespace, name string) error {
	if d.st.Cluster == nil {
		return errors.New("the demo approves as a second user only on the local cluster; approve with `tend proposals approve` instead")
	}
	kc, err := d.st.Cluster.UserKubeconfig("alice", []string{localstack.ApproverGroup})
	if err != nil {
		return err
	}
	ko := &kubeOptions{kubeconfig: kc}
	alice, err := ko.client()
	if err != nil {
		return err
	}
	d.n.say("On-call engineer alice (group %s) reviews it: tend proposals approve %s -n %s --kubeconfig %s", localstack.ApproverGroup, name, namespace, kc)
	a, err := decide(ctx, alice, namespace, name, tendv1.ApprovalApprove, "rollback to the last healthy revision; reviewed in the demo")
	if err != nil {
		return err
	}
	d.n.say("alice approved (Approval %s); the API server authorized her and recorded her as approver %q", a.Name, a.Spec.Approver)
	return nil
}

// audit prints the hash-chained audit trail of the demo's proposals.
func (d *demo) audit(ctx context.Context, names []string) error {
	d.n.title("Audit trail (NATS stream AUDIT, hash-chained, signed with the controller's audit key)")
	recs, err := bus.NewAuditLog(d.st.JetStream, d.st.ClusterName).Records(ctx)
	if err != nil {
		return fmt.Errorf("failed to read the audit log: %w", err)
	}
	if err := bus.VerifyChain(recs, d.st.AuditPublicKey); err != nil {
		return fmt.Errorf("the audit chain does not verify: %w", err)
	}
	// The work dir's stream keeps earlier runs' records; the chain is
	// checked whole, and this run's proposals are shown.
	shown := 0
	for _, r := range recs {
		if !slices.Contains(names, r.Object.Name) {
			continue
		}
		shown++
		fmt.Fprintf(d.n.out, "  %s  %-22s %-16s → %-16s %s\n", r.Time.UTC().Format("15:04:05"), r.Object.Namespace+"/"+r.Object.Name, r.From, r.To, r.Reason)
	}
	d.n.say("%d audit records for %s, in a chain of %d; every link and signature verifies (`tend audit verify` checks the same)", shown, strings.Join(names, ", "), len(recs))
	return nil
}

func (d *demo) waitFor(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, d.step)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		ok, err := cond(ctx)
		if err != nil && ctx.Err() == nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("timed out after %s waiting for %s (component logs: see demo.log in the work dir)", d.step, what)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func demoDeployment(namespace string) *appsv1.Deployment {
	labels := map[string]string{"app": demoApp}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: demoApp, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  demoApp,
					Image: localstack.DemoImage + ":1.0",
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
					}},
				}}},
			},
		},
	}
}

func deploymentHealthy(ctx context.Context, c client.Client, ns, name string) (bool, error) {
	d := &appsv1.Deployment{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		return false, err
	}
	want := ptr.Deref(d.Spec.Replicas, 1)
	s := d.Status
	return s.ObservedGeneration >= d.Generation && s.Replicas == want && s.UpdatedReplicas == want &&
		s.ReadyReplicas == want && s.AvailableReplicas == want, nil
}

func rollbackText(p *tendv1.Proposal) string {
	t := p.Spec.Target
	s := fmt.Sprintf("of %s %s/%s", strings.ToLower(t.Kind), t.Namespace, t.Name)
	if r := p.Spec.Parameters.Rollback; r != nil {
		s += fmt.Sprintf(" from revision %d to %d", r.FromRevision, r.ToRevision)
	}
	return s
}

func decisionText(d *tendv1.Decision) string {
	if d == nil {
		return "-"
	}
	s := string(d.Outcome)
	if d.Policy != "" {
		s += fmt.Sprintf(" (policy %s, rule %s)", d.Policy, d.Rule)
	}
	for _, r := range d.Reasons {
		s += fmt.Sprintf("; %s: %s", r.Code, r.Message)
	}
	return s
}
