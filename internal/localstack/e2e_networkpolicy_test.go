package localstack

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestNetworkPolicyFindingEndToEnd runs the network-policy runbook through
// the whole loop on the local stack: the sensor publishes a NetworkPolicy
// that admits the client to web, then its change to admit only pods no pod
// is; the agent records a finding, and the controller puts it on the policy
// as a Warning Event naming the client. Nothing is proposed.
func TestNetworkPolicyFindingEndToEnd(t *testing.T) {
	g := NewWithT(t)
	ctx := t.Context()
	st := startE2E(t, "e2e-netpol", 1)
	c := st.Client

	ns := "shop"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	web, caller := map[string]string{"app": "web"}, map[string]string{"app": "client"}
	policy := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-ingress"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: web},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{
				{PodSelector: &metav1.LabelSelector{MatchLabels: caller}}}}},
		},
	}
	g.Expect(c.Create(ctx, policy)).To(Succeed())
	deployment := func(name string, labels map[string]string, ports ...corev1.ContainerPort) *appsv1.Deployment {
		d := newDemoDeployment(ns, name, "1.4", 1)
		d.Spec.Template.Spec.Containers[0].Ports = ports
		return d
	}
	deps := []*appsv1.Deployment{
		deployment("web", web, corev1.ContainerPort{Name: "http", ContainerPort: 8080}),
		deployment("client", caller),
	}
	for _, d := range deps {
		g.Expect(c.Create(ctx, d)).To(Succeed())
	}
	g.Expect(c.Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec:       corev1.ServiceSpec{Selector: web, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	})).To(Succeed())
	g.Eventually(func(g Gomega) {
		for _, d := range deps {
			got := &appsv1.Deployment{}
			g.Expect(c.Get(ctx, client.ObjectKeyFromObject(d), got)).To(Succeed())
			g.Expect(got.Status.ReadyReplicas).To(Equal(int32(1)), "Deployment %s", d.Name)
		}
	}).WithTimeout(2 * time.Minute).Should(Succeed())

	// The fault: the policy now admits only role=admin pods, which no pod is.
	g.Expect(c.Get(ctx, client.ObjectKeyFromObject(policy), policy)).To(Succeed())
	policy.Spec.Ingress[0].From[0].PodSelector.MatchLabels = map[string]string{"role": "admin"}
	g.Expect(c.Update(ctx, policy)).To(Succeed())

	var found []string
	g.Eventually(func(g Gomega) {
		found = findingEvents(g, c, ns, "NetworkPolicy", "web-ingress")
		g.Expect(found).To(ConsistOf(And(ContainSubstring("cuts callers off"), ContainSubstring("(Deployment client) it admitted as pods app=client"),
			ContainSubstring("to pods role=admin"))))
	}).WithTimeout(time.Minute).WithPolling(time.Second).Should(Succeed())
	t.Logf("Finding on NetworkPolicy %s/web-ingress: %s", ns, found[0])
	expectNoProposals(g, c, ns)
}
