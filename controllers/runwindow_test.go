package controllers_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/policies"
)

// runChange is the SetResources proposal an improvement run makes for d,
// with the fingerprint that names the run's item; no expiry of its own, so
// that only the run's window can hold it.
func runChange(d *appsv1.Deployment, fp string, res corev1.ResourceList, limits corev1.ResourceList) *tendv1.Proposal {
	return &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "improve-", Namespace: d.Namespace},
		Spec: tendv1.ProposalSpec{
			Action:      tendv1.ActionSetResources,
			Target:      tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: d.Namespace, Name: d.Name, UID: d.UID, ResourceVersion: d.ResourceVersion},
			Parameters:  tendv1.Parameters{Resources: &tendv1.ResourcesParameters{Container: "app", Requests: res, Limits: limits}},
			Proposer:    tendv1.Proposer{Username: agentUser, Agent: "improvement"},
			Fingerprint: fp,
		},
	}
}

func cpu(q string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(q)}
}

// runWindowed creates a run (no run controller drives it here: the test
// writes what it lists) whose window closes at end.
func runWindowed(t *testing.T, g *WithT, ns, name string, end time.Time) *tendv1.ImprovementRun {
	t.Helper()
	s := controllers.NewRun(schedule(ns, name, nil), end.Add(-time.Hour), true)
	g.Expect(s.Spec.WindowEnd.Time.Equal(end)).To(BeTrue())
	g.Expect(kube(t).Create(t.Context(), s)).To(Succeed())
	return s
}

// list records proposal as item i's change (or its undo) in run's status,
// as the run controller does once it has proposed it.
func list(t *testing.T, g *WithT, run *tendv1.ImprovementRun, i int, p *tendv1.Proposal, undo bool) {
	t.Helper()
	g.Eventually(func() error {
		if err := kube(t).Get(t.Context(), client.ObjectKeyFromObject(run), run); err != nil {
			return err
		}
		for len(run.Status.Items) <= i {
			run.Status.Items = append(run.Status.Items, tendv1.RunItem{Analyzer: "rightsizing", Action: "SetResources", Outcome: tendv1.ItemPlanned,
				Workload: tendv1.WorkloadRef{Kind: "Deployment", Namespace: run.Namespace, Name: "elsewhere"}})
		}
		it := &run.Status.Items[i]
		it.Workload = tendv1.WorkloadRef{Kind: p.Spec.Target.Kind, Namespace: p.Spec.Target.Namespace, Name: p.Spec.Target.Name}
		if undo {
			it.UndoProposal, it.Outcome = p.Name, tendv1.ItemUndone
		} else {
			it.Proposal, it.Outcome = p.Name, tendv1.ItemProposed
		}
		run.Status.Phase = tendv1.RunCanary
		return kube(t).Status().Update(t.Context(), run)
	}).Should(Succeed())
}

func runFingerprint(run *tendv1.ImprovementRun, i int, undo bool) string {
	fp := fmt.Sprintf("improve/%s/%s/%d", run.Namespace, run.Name, i)
	if undo {
		fp += "/undo"
	}
	return fp
}

// applied waits until the proposal's change was written to its target.
func applied(t *testing.T, g *WithT, p *tendv1.Proposal) *tendv1.Proposal {
	t.Helper()
	out := &tendv1.Proposal{}
	g.Eventually(func(g Gomega) {
		g.Expect(kube(t).Get(t.Context(), client.ObjectKeyFromObject(p), out)).To(Succeed())
		g.Expect(out.Status.Phase).NotTo(Equal(tendv1.PhaseDenied), out.Status.Message)
		g.Expect(out.Status.Apply).NotTo(BeNil(), out.Status.Message)
		g.Expect(out.Status.Apply.CompletedAt).NotTo(BeNil(), out.Status.Message)
	}).Should(Succeed())
	return out
}

func reasonMessage(d *tendv1.Decision, code string) string {
	for _, r := range d.Reasons {
		if r.Code == code {
			return r.Message
		}
	}
	return ""
}

// shiftedClock is real time moved by an offset the test sets: time passes
// (the grace a run has to list a proposal runs out) and can jump.
type shiftedClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *shiftedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *shiftedClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset = time.Until(t)
}

// TestRunWindowIsEnforcedByTheGate: the gate decides an improvement run's
// change on the run's window as the run object states it, the controller
// checks it again right before applying, and an undo is never held to it.
func TestRunWindowIsEnforcedByTheGate(t *testing.T) {
	ns := newNamespace(t, nil)
	clock := &shiftedClock{}
	h := startTend(t, controllers.ProposalOptions{Now: clock.Now, RunMembershipGrace: 2 * time.Second, StableWindow: time.Hour}, ns)
	c := h.Client
	g := newG(t)
	web, api, db, cache := deployment(t, ns, "web", nil), deployment(t, ns, "api", nil), deployment(t, ns, "db", nil), deployment(t, ns, "cache", nil)
	open := runWindowed(t, g, ns, "open", clock.Now().Add(time.Hour))
	closed := runWindowed(t, g, ns, "closed", clock.Now().Add(-time.Minute))

	t.Run("a change inside its run's window applies", func(t *testing.T) {
		g := newG(t)
		p := createProposal(t, c, runChange(web, runFingerprint(open, 0, false), cpu("500m"), nil))
		list(t, g, open, 0, p, false)
		p = applied(t, g, p)
		d := p.Status.Decision
		g.Expect(d.Outcome).To(Equal(tendv1.OutcomeAutoApprove), d.Reasons)
		g.Expect(d.Facts.Run).NotTo(BeNil())
		g.Expect(d.Facts.Run.Member).To(BeTrue())
		g.Expect(d.Facts.Run.Undo).To(BeFalse())
		g.Expect(d.Facts.Run.WindowEnd.Time.Equal(open.Spec.WindowEnd.Time)).To(BeTrue(), "the window is the run object's")
	})

	t.Run("a change of a run whose window closed is denied with the reason", func(t *testing.T) {
		g := newG(t)
		p := createProposal(t, c, runChange(api, runFingerprint(closed, 0, false), cpu("500m"), nil))
		list(t, g, closed, 0, p, false)
		p = waitPhase(t, g, c, p, tendv1.PhaseDenied)
		g.Expect(reasonCodes(p.Status.Decision)).To(ContainElement(policies.ReasonOutsideRunWindow))
		g.Expect(reasonMessage(p.Status.Decision, policies.ReasonOutsideRunWindow)).To(ContainSubstring("closed at " + closed.Spec.WindowEnd.UTC().Format(time.RFC3339)))
		g.Expect(p.Status.Apply).To(BeNil())
	})

	t.Run("the run's undo is not held to the window", func(t *testing.T) {
		g := newG(t)
		p := createProposal(t, c, runChange(api, runFingerprint(closed, 0, true), cpu("300m"), nil))
		list(t, g, closed, 0, p, true)
		p = applied(t, g, p)
		g.Expect(p.Status.Decision.Facts.Run.Undo).To(BeTrue())
		g.Expect(reasonCodes(p.Status.Decision)).NotTo(ContainElement(policies.ReasonOutsideRunWindow))
	})

	t.Run("the run's undo applies after the run is gone", func(t *testing.T) {
		g := newG(t)
		gone := runWindowed(t, g, ns, "gone", clock.Now().Add(-time.Minute))
		// Limiting memory for the first time needs a human; meanwhile the
		// schedule's history limit deletes the run.
		p := createProposal(t, c, runChange(web, runFingerprint(gone, 0, true), nil, corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}))
		list(t, g, gone, 0, p, true)
		p = waitPhase(t, g, c, p, tendv1.PhaseAwaitingApproval)
		g.Expect(p.Status.Decision.Facts.Run.Undo).To(BeTrue())
		g.Expect(c.Delete(t.Context(), gone)).To(Succeed())
		approve(t, c, p, "alice", p.Status.SpecHash, tendv1.ApprovalApprove)
		applied(t, g, p)
	})

	t.Run("a proposal that names a run which does not list it gets nothing from the run's open window", func(t *testing.T) {
		g := newG(t)
		// Item 0's fingerprint, but the run lists another proposal there;
		// and an item the run does not have.
		for _, fp := range []string{runFingerprint(open, 0, false), runFingerprint(open, 7, false), runFingerprint(open, 0, true), "improve/" + ns + "/no-such-run/0"} {
			p := createProposal(t, c, runChange(db, fp, cpu("500m"), nil))
			p = waitPhase(t, g, c, p, tendv1.PhaseDenied)
			g.Expect(reasonCodes(p.Status.Decision)).To(ContainElement(policies.ReasonNotInRun), fp)
			g.Expect(p.Status.Decision.Facts.Run.Member).To(BeFalse())
			g.Expect(p.Status.Decision.Facts.Run.WindowEnd).To(BeNil(), "a stranger to the run is given no window")
			g.Expect(p.Status.Apply).To(BeNil())
		}
	})

	t.Run("a run that has ended closes its window when it ends", func(t *testing.T) {
		g := newG(t)
		stopped := runWindowed(t, g, ns, "stopped", clock.Now().Add(time.Hour))
		// The run proposed this change, then stopped (asked to, or at a
		// failed canary) before anyone approved it.
		p := createProposal(t, c, runChange(cache, runFingerprint(stopped, 0, false), nil, corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}))
		list(t, g, stopped, 0, p, false)
		p = waitPhase(t, g, c, p, tendv1.PhaseAwaitingApproval)
		ended := metav1.NewTime(clock.Now().Add(-time.Second).Truncate(time.Second))
		g.Eventually(func() error {
			if err := c.Get(t.Context(), client.ObjectKeyFromObject(stopped), stopped); err != nil {
				return err
			}
			stopped.Status.Phase, stopped.Status.CompletionTime = tendv1.RunStopped, &ended
			return c.Status().Update(t.Context(), stopped)
		}).Should(Succeed())
		approve(t, c, p, "alice", p.Status.SpecHash, tendv1.ApprovalApprove)
		p = waitPhase(t, g, c, p, tendv1.PhaseDenied)
		g.Expect(reasonCodes(p.Status.Decision)).To(Equal([]string{policies.ReasonOutsideRunWindow}))
		g.Expect(p.Status.Decision.Facts.Run.WindowEnd.Time.Equal(ended.Time)).To(BeTrue(), "the window closed when the run ended")
		g.Expect(p.Status.Apply).To(BeNil())
	})

	t.Run("an approval that arrives after the window closed does not apply", func(t *testing.T) {
		g := newG(t)
		late := runWindowed(t, g, ns, "late", clock.Now().Add(30*time.Minute))
		// Limiting memory for the first time needs a human.
		p := createProposal(t, c, runChange(cache, runFingerprint(late, 0, false), nil, corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}))
		list(t, g, late, 0, p, false)
		p = waitPhase(t, g, c, p, tendv1.PhaseAwaitingApproval)
		g.Expect(p.Status.Decision.Facts.Run.Member).To(BeTrue())
		before := &appsv1.Deployment{}
		g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(cache), before)).To(Succeed())

		clock.Set(late.Spec.WindowEnd.Add(time.Second))
		approve(t, c, p, "alice", p.Status.SpecHash, tendv1.ApprovalApprove)
		p = waitPhase(t, g, c, p, tendv1.PhaseDenied)
		g.Expect(approvers(p)).To(Equal([]string{"alice"}), "the approval counted; the window refused it")
		g.Expect(reasonCodes(p.Status.Decision)).To(Equal([]string{policies.ReasonOutsideRunWindow}))
		g.Expect(p.Status.Decision.Facts.Run.Member).To(BeTrue())
		g.Expect(p.Status.Apply).To(BeNil())
		after := &appsv1.Deployment{}
		g.Expect(c.Get(t.Context(), client.ObjectKeyFromObject(cache), after)).To(Succeed())
		g.Expect(after.Generation).To(Equal(before.Generation), "nothing was written")
	})
}
