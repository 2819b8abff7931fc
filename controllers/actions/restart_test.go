package actions_test

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

func TestRestartWorkload(t *testing.T) {
	e := newEnv(t)
	web := e.deployment("web", 2)

	// Applied once, verified when every pod runs the restarted template and
	// is ready; repeated reconciles write nothing.
	p := e.propose(e.proposal(tendv1.ActionRestartWorkload, web, tendv1.Parameters{}))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	e.get(e.g, web)
	e.g.Expect(web.Spec.Template.Annotations).To(HaveKey("kubectl.kubernetes.io/restartedAt"))
	e.g.Expect(done.Status.Apply.ResultingGeneration).To(Equal(web.Generation))
	e.noMoreWrites(done, web)

	// A target changed since the proposal is decided again.
	e.staleIsDecidedAgain(tendv1.ActionRestartWorkload, web, tendv1.Parameters{}, e.bumpTemplate(web))
	e.waitReady(web, 2)

	// New pods that cannot start fail the verification; a restart cannot
	// be undone, so the proposal ends Failed and nothing is written again.
	e.breakConfig()
	p = e.propose(e.proposal(tendv1.ActionRestartWorkload, web, tendv1.Parameters{}))
	failed := e.waitPhase(p, tendv1.PhaseFailed)
	e.g.Expect(failed.Status.Apply).NotTo(BeNil())
	e.g.Expect(failed.Status.Message).To(ContainSubstring("cannot be undone"))
	e.noMoreWrites(failed, &appsv1.Deployment{ObjectMeta: web.ObjectMeta})
}
