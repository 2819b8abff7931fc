package actions

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers/workload"
)

// What the workload actions share: their facts, digests and verification.

// workloadFacts are a workload's replicas and what a rollout of its pod
// template takes down at once.
func workloadFacts(obj client.Object) tendv1.Facts {
	desired, ready := workload.Replicas(obj)
	pods, pct := workload.RolloutDisruption(obj)
	return tendv1.Facts{
		TargetExists: true, TargetGeneration: obj.GetGeneration(), Replicas: desired, ReadyReplicas: ready,
		Disruption: &tendv1.DisruptionFacts{PodsAffected: pods, Percent: pct},
	}
}

// templateDigest is the digest of a workload's pod template: what the
// template actions write.
func templateDigest(obj client.Object) (string, error) {
	t, ok := workload.Template(obj)
	if !ok {
		return "", fmt.Errorf("%w: %T has no pod template", ErrInvalidParameters, obj)
	}
	return digestOf(t)
}

// rolloutVerification checks that a workload's rollout completed and that
// its current pods (want of them) are all ready, none waiting.
func rolloutVerification(obj client.Object, pods []corev1.Pod, want int32) Verification {
	done, msg := workload.Rollout(obj)
	rollout := tendv1.Check{Name: "RolloutComplete", Passed: done, Message: msg}
	ready := tendv1.Check{Name: "PodsReady", Passed: int32(len(pods)) == want}
	notReady := 0
	for i := range pods {
		pod := &pods[i]
		ok := workload.PodReady(pod)
		for _, cs := range pod.Status.ContainerStatuses {
			if cs.State.Waiting != nil {
				ok = false
			}
		}
		if !ok {
			notReady++
			ready.Passed = false
		}
	}
	ready.Message = fmt.Sprintf("%d of %d pods of the current revision ready", len(pods)-notReady, len(pods))
	return Verification{Checks: []tendv1.Check{rollout, ready}, Restarts: workload.Restarts(pods)}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
