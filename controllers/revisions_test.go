package controllers_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/controllers"
	wl "github.com/tendops/tend/controllers/workload"
)

// The revision reconciler records, once, that a Deployment's revision ran
// healthy for its window, and never records one that crash-loops; the
// record stays when a later rollout scales the revision down.
func TestRevisionReconcilerRecordsHealthyRevisions(t *testing.T) {
	g := newG(t)
	ns := newNamespace(t, nil)
	startManager(t, []string{ns}, func(mgr ctrl.Manager) error {
		return (&controllers.RevisionReconciler{Client: mgr.GetClient(), HealthyWindow: 2 * time.Second}).SetupWithManager(mgr)
	})
	c := kube(t)
	w := newUnrolled(t, c, ns, "web")
	w.Rollout(true)
	recorded := func(version string) func(g Gomega) string {
		return func(g Gomega) string {
			for _, rs := range w.ReplicaSets() {
				if rs.Spec.Template.Spec.Containers[0].Image == w.image(version) {
					live := &appsv1.ReplicaSet{}
					g.Expect(c.Get(context.Background(), client.ObjectKeyFromObject(&rs), live)).To(Succeed())
					return live.Annotations[wl.AnnotationRanHealthy]
				}
			}
			return ""
		}
	}
	// Not before its window: ready just now.
	g.Consistently(recorded("v1")).WithTimeout(time.Second).Should(BeEmpty())
	g.Eventually(recorded("v1")).Should(Not(BeEmpty()))

	w.Update(func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = w.image("v2") })
	w.Rollout(false)
	g.Consistently(recorded("v2")).WithTimeout(4 * time.Second).Should(BeEmpty())
	g.Expect(recorded("v1")(g)).NotTo(BeEmpty(), "the record of v1 went with its scale-down")
}
