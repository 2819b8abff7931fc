package controllers_test

import (
	"testing"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
)

// A finding on the bus becomes a Warning Event on its object; one about an
// object that does not exist is dropped, and a malformed one changes nothing.
func TestFindingEvents(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, nil)
	js := startNATS(t)
	startManager(t, []string{ns}, func(mgr ctrl.Manager) error {
		return mgr.Add(&controllers.FindingEvents{Client: mgr.GetClient(), JS: js, Cluster: auditCluster,
			Recorder: mgr.GetEventRecorder("tend-findings"), Durable: "findings-" + ns})
	})
	c := kube(t)
	labels := map[string]string{"app": "api"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api"},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/api:1"}}}}},
	}
	g.Expect(c.Create(t.Context(), dep)).To(Succeed())
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-ingress"},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: labels}},
	}
	g.Expect(c.Create(t.Context(), np)).To(Succeed())

	pub := bus.NewFindingPublisher(js, auditCluster)
	g.Eventually(func() error {
		_, err := js.Stream(t.Context(), bus.StreamFindings)
		return err
	}).Should(Succeed())
	// The consumer delivers new findings only: wait until it exists.
	g.Eventually(func() error {
		_, err := js.Consumer(t.Context(), bus.StreamFindings, "findings-"+ns)
		return err
	}).Should(Succeed())
	_, err := js.Publish(t.Context(), bus.FindingsSubject(auditCluster), []byte(`{"not":"a finding"}`))
	g.Expect(err).NotTo(HaveOccurred())
	for _, f := range []*bus.Finding{
		{ID: "gone", Object: bus.ObjectRef{Kind: "Deployment", Namespace: ns, Name: "gone"}, Fault: "Deployment gone fails."},
		{ID: "api", Object: bus.ObjectRef{Kind: "Deployment", Namespace: ns, Name: "api"},
			// The escalate runbook's faults end without a full stop; the
			// Event still reads as two sentences.
			Fault: "Deployment api (revision 1): 1 of its pods fail; container app exits with code 1", Advice: "Read its previous logs."},
		{ID: "api-ingress", Object: bus.ObjectRef{Kind: "NetworkPolicy", Namespace: ns, Name: "api-ingress"},
			Fault: "NetworkPolicy api-ingress no longer admits 1 running pod.", Advice: "Restore the peer."},
	} {
		_, err := pub.Publish(t.Context(), f)
		g.Expect(err).NotTo(HaveOccurred())
	}
	g.Eventually(func(g Gomega) {
		var list corev1.EventList
		g.Expect(c.List(t.Context(), &list, client.InNamespace(ns))).To(Succeed())
		var got []string
		for _, e := range list.Items {
			if e.Reason == controllers.ReasonFinding {
				got = append(got, e.InvolvedObject.Kind+"/"+e.InvolvedObject.Name+": "+e.Message)
			}
		}
		g.Expect(got).To(ConsistOf("Deployment/api: Deployment api (revision 1): 1 of its pods fail; container app exits with code 1. Read its previous logs.",
			"NetworkPolicy/api-ingress: NetworkPolicy api-ingress no longer admits 1 running pod. Restore the peer."))
	}).Should(Succeed())
}
