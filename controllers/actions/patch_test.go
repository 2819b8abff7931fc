package actions_test

import (
	"testing"

	. "github.com/onsi/gomega"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

func probePort(port int) tendv1.Parameters {
	return tendv1.Parameters{Patch: []tendv1.JSONPatchOperation{
		{Op: "replace", Path: "/spec/template/spec/containers/0/readinessProbe/httpGet/port", Value: jsonValue(port)},
	}}
}

func TestPatchWorkload(t *testing.T) {
	e := newEnv(t)
	web := e.deployment("web", 2)

	// A probe's port: automatic; the inverse patch is recorded.
	p := e.propose(e.proposal(tendv1.ActionPatchWorkload, web, probePort(8081)))
	done := e.waitPhase(p, tendv1.PhaseSucceeded)
	e.g.Expect(done.Status.Decision.Outcome).To(Equal(tendv1.OutcomeAutoApprove))
	e.g.Expect(done.Status.Apply.UndoState).To(ContainSubstring("8080"))
	e.get(e.g, web)
	e.g.Expect(web.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port.IntValue()).To(Equal(8081))
	e.noMoreWrites(done, web)

	e.staleIsDecidedAgain(tendv1.ActionPatchWorkload, web, probePort(8082), e.bumpTemplate(web))
	e.waitReady(web, 2)

	// A path outside the table: denied, nothing written.
	p = e.propose(e.proposal(tendv1.ActionPatchWorkload, web, tendv1.Parameters{Patch: []tendv1.JSONPatchOperation{
		{Op: "replace", Path: "/spec/replicas", Value: jsonValue(0)}}}))
	denied := e.waitPhase(p, tendv1.PhaseDenied)
	e.g.Expect(codes(denied)).To(ContainElement(policies.ReasonPatchPathNotAllowed))
	e.g.Expect(denied.Status.Apply).To(BeNil())

	// A probe on a port nothing serves: the new pods never become ready,
	// and the inverse patch brings 8081 back.
	p = e.propose(e.proposal(tendv1.ActionPatchWorkload, web, probePort(9999)))
	undone := e.waitPhase(p, tendv1.PhaseRolledBack)
	e.get(e.g, web)
	e.g.Expect(web.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port.IntValue()).To(Equal(8081))
	e.noMoreWrites(undone, web)
	e.waitReady(web, 2)
}
