package scalebench

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/internal/localstack"
)

// proposalWatch follows the agent's proposals from the API server: when
// each was created, when the gate decided it and how, and whether it was
// applied, so the storm's fault-to-proposal latency, decision rate,
// backlog and exactly-once application can be measured.
type proposalWatch struct {
	mu        sync.Mutex
	proposals map[string]*tracked // by proposal name
	// backlogPeak is the most proposals created and not yet decided at once.
	backlogPeak int
	// findings is when the first finding about each Deployment (by name)
	// or namespace ("namespace/" + name) reached the bus.
	findings map[string]time.Time
	changed  chan struct{}
}

// tracked is what the watch saw of one proposal.
type tracked struct {
	target    string
	action    tendv1.Action
	created   time.Time
	decided   time.Time
	outcome   tendv1.Outcome
	reason    string
	phase     tendv1.Phase
	appliedAt time.Time
}

// decided reports whether the gate has decided a proposal in this phase.
func decidedPhase(p tendv1.Phase) bool {
	return p != "" && p != tendv1.PhasePending
}

// appliedPhase reports whether a proposal in this phase was applied.
func appliedPhase(p tendv1.Phase) bool {
	switch p {
	case tendv1.PhaseApplying, tendv1.PhaseVerifying, tendv1.PhaseSucceeded, tendv1.PhaseFailed, tendv1.PhaseRolledBack:
		return true
	}
	return false
}

func watchProposals(b *testing.B, cfg *rest.Config) *proposalWatch {
	b.Helper()
	wc, err := client.NewWithWatch(cfg, client.Options{Scheme: localstack.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	wi, err := wc.Watch(b.Context(), &tendv1.ProposalList{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(wi.Stop)
	w := &proposalWatch{proposals: map[string]*tracked{}, findings: map[string]time.Time{}, changed: make(chan struct{}, 1)}
	go func() {
		for ev := range wi.ResultChan() {
			now := time.Now()
			p, ok := ev.Object.(*tendv1.Proposal)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			w.mu.Lock()
			t := w.proposals[p.Name]
			if t == nil {
				t = &tracked{target: p.Spec.Target.Name, action: p.Spec.Action, created: now}
				w.proposals[p.Name] = t
			}
			t.phase = p.Status.Phase
			if decidedPhase(p.Status.Phase) && t.decided.IsZero() {
				t.decided = now
				if d := p.Status.Decision; d != nil {
					t.outcome = d.Outcome
					if len(d.Reasons) > 0 {
						t.reason = d.Reasons[0].Code
					}
				}
			}
			if appliedPhase(p.Status.Phase) && t.appliedAt.IsZero() {
				t.appliedAt = now
			}
			backlog := 0
			for _, t := range w.proposals {
				if t.decided.IsZero() {
					backlog++
				}
			}
			w.backlogPeak = max(w.backlogPeak, backlog)
			w.mu.Unlock()
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}()
	return w
}

// snapshot copies what the watch saw.
func (w *proposalWatch) snapshot() []tracked {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]tracked, 0, len(w.proposals))
	for _, t := range w.proposals {
		out = append(out, *t)
	}
	return out
}

// watchFindings records the agent's findings as they reach the bus: a
// Deployment it escalated rather than proposed for, or a namespace whose
// failing Deployments it judged to share a cause.
func (w *proposalWatch) watchFindings(b *testing.B, js jetstream.JetStream) {
	b.Helper()
	cons, err := js.OrderedConsumer(b.Context(), bus.StreamFindings, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{bus.FindingsSubject(cluster)}, DeliverPolicy: jetstream.DeliverNewPolicy})
	if err != nil {
		b.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := time.Now()
		f, err := bus.DecodeFinding(m.Data())
		if err != nil {
			return
		}
		key := f.Object.Name
		switch f.Object.Kind {
		case "Deployment":
		case "Namespace":
			key = "namespace/" + f.Object.Name
		default:
			return
		}
		w.mu.Lock()
		if _, ok := w.findings[key]; !ok {
			w.findings[key] = now
		}
		w.mu.Unlock()
		select {
		case w.changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cc.Stop)
}

// acted is how the agent first answered one broken Deployment.
type acted struct {
	after    time.Duration
	proposed bool
}

// waitActed waits until the agent has answered every one of targets, with
// a proposal for it, a finding about it, or a finding about its
// namespace's shared cause, and returns how long after its break each
// answer came.
func (w *proposalWatch) waitActed(b *testing.B, brokenAt func(string) time.Time, targets []string, timeout time.Duration) []acted {
	b.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		first := map[string]time.Time{}
		for _, t := range w.proposals {
			if at, ok := first[t.target]; !ok || t.created.Before(at) {
				first[t.target] = t.created
			}
		}
		var out []acted
		for _, n := range targets {
			at, proposed := first[n]
			for _, key := range []string{n, "namespace/" + appNamespace(n)} {
				if f, ok := w.findings[key]; ok && (at.IsZero() || f.Before(at)) && !f.Before(brokenAt(n)) {
					at, proposed = f, false
				}
			}
			if !at.IsZero() {
				out = append(out, acted{after: at.Sub(brokenAt(n)), proposed: proposed})
			}
		}
		w.mu.Unlock()
		if len(out) == len(targets) {
			return out
		}
		select {
		case <-w.changed:
		case <-time.After(time.Second):
		case <-deadline:
			b.Fatalf("the agent answered %d of %d broken Deployments (a proposal or a finding) within %s", len(out), len(targets), timeout)
		}
	}
}

// waitDecided waits until the gate has decided every proposal so far, and
// fails the benchmark naming those it lost.
func (w *proposalWatch) waitDecided(b *testing.B, timeout time.Duration) {
	b.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		var pending []string
		for name, t := range w.proposals {
			if t.decided.IsZero() {
				pending = append(pending, name)
			}
		}
		w.mu.Unlock()
		if len(pending) == 0 {
			return
		}
		select {
		case <-w.changed:
		case <-time.After(time.Second):
		case <-deadline:
			slices.Sort(pending)
			b.Fatalf("%d proposals still undecided after %s (lost): %s", len(pending), timeout, strings.Join(pending, ", "))
		}
	}
}

// stormFigures is what the storm did to the proposal pipeline.
type stormFigures struct {
	proposals, decided, applied, held, denied int
	// decisionsPerSecond is decisions over the time from the first
	// proposal to the last decision.
	decisionsPerSecond float64
	backlogPeak        int
	// appliedTwice lists the targets more than one proposal was applied to.
	appliedTwice []string
	// reasons counts the first reason of held and denied decisions.
	reasons map[string]int
}

func (w *proposalWatch) figures() stormFigures {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := stormFigures{proposals: len(w.proposals), backlogPeak: w.backlogPeak, reasons: map[string]int{}}
	var first, last time.Time
	applied := map[string]int{}
	for _, t := range w.proposals {
		if first.IsZero() || t.created.Before(first) {
			first = t.created
		}
		if t.decided.IsZero() {
			continue
		}
		f.decided++
		if t.decided.After(last) {
			last = t.decided
		}
		switch t.outcome {
		case tendv1.OutcomeRequireApproval:
			f.held++
			f.reasons[t.reason]++
		case tendv1.OutcomeDeny:
			f.denied++
			f.reasons[t.reason]++
		}
		if !t.appliedAt.IsZero() {
			f.applied++
			applied[t.target]++
		}
	}
	if d := last.Sub(first).Seconds(); d > 0 {
		f.decisionsPerSecond = float64(f.decided) / d
	}
	for target, n := range applied {
		if n > 1 {
			f.appliedTwice = append(f.appliedTwice, target)
		}
	}
	sort.Strings(f.appliedTwice)
	return f
}

func (f stormFigures) String() string {
	reasons := slices.Sorted(maps.Keys(f.reasons))
	var rs []string
	for _, r := range reasons {
		rs = append(rs, fmt.Sprintf("%s %d", r, f.reasons[r]))
	}
	return fmt.Sprintf("%d proposals, %d decided (%.1f/s), %d applied, %d held for approval, %d denied, backlog peak %d; held or denied by: %s",
		f.proposals, f.decided, f.decisionsPerSecond, f.applied, f.held, f.denied, f.backlogPeak, strings.Join(rs, ", "))
}

// accountKubeconfig writes a kubeconfig that acts as one of tend's service
// accounts through the administrator's credentials, as tend up runs its
// components, so each holds only its own RBAC.
func accountKubeconfig(b *testing.B, admin, account string) string {
	b.Helper()
	cfg, err := clientcmd.LoadFromFile(admin)
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = "system:serviceaccount:" + localstack.SystemNamespace + ":" + account
	}
	path := filepath.Join(filepath.Dir(admin), account+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// agentToken writes a token of the agent's service account to a file, as
// a pod mounts it.
func agentToken(b *testing.B, admin client.Client, dir string) string {
	b.Helper()
	tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: localstack.SystemNamespace, Name: localstack.AgentAccount}}
	if err := admin.SubResource("token").Create(b.Context(), sa, tr); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "agent.token")
	if err := os.WriteFile(path, []byte(tr.Status.Token), 0o600); err != nil {
		b.Fatal(err)
	}
	return path
}
