package workload

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestRolloutDisruption(t *testing.T) {
	deploy := func(replicas, ready int32, strategy appsv1.DeploymentStrategy) *appsv1.Deployment {
		return &appsv1.Deployment{
			Spec:   appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Strategy: strategy},
			Status: appsv1.DeploymentStatus{ReadyReplicas: ready},
		}
	}
	unavailable := func(v intstr.IntOrString) appsv1.DeploymentStrategy {
		return appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &v}}
	}
	recreate := appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
	tests := []struct {
		name        string
		obj         client.Object
		pods, share int32
	}{
		{"rolling, default 25% of 4", deploy(4, 4, appsv1.DeploymentStrategy{}), 1, 25},
		{"rolling, 25% of 1 rounds down", deploy(1, 1, appsv1.DeploymentStrategy{}), 0, 0},
		{"rolling, 2 of 4 unavailable at once", deploy(4, 4, unavailable(intstr.FromInt32(2))), 2, 50},
		{"rolling, pods already down use the budget", deploy(4, 3, unavailable(intstr.FromInt32(2))), 1, 25},
		{"rolling, budget spent by broken pods", deploy(4, 1, unavailable(intstr.FromInt32(2))), 0, 0},
		{"recreate takes down every ready pod", deploy(3, 3, recreate), 3, 100},
		{"recreate of a partly ready workload", deploy(4, 1, recreate), 1, 25},
		{"nothing ready, nothing lost", deploy(3, 0, recreate), 0, 0},
		{"scaled to zero", deploy(0, 0, recreate), 0, 0},
		{"statefulset, one at a time", &appsv1.StatefulSet{Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](3)}, Status: appsv1.StatefulSetStatus{ReadyReplicas: 3}}, 1, 33},
		{"statefulset on delete", &appsv1.StatefulSet{
			Spec:   appsv1.StatefulSetSpec{Replicas: ptr.To[int32](2), UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}},
			Status: appsv1.StatefulSetStatus{ReadyReplicas: 2}}, 2, 100},
		{"daemonset, one at a time", &appsv1.DaemonSet{Status: appsv1.DaemonSetStatus{DesiredNumberScheduled: 5, NumberReady: 5}}, 1, 20},
		{"not a workload", &appsv1.ReplicaSet{}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pods, share := RolloutDisruption(tt.obj)
			if pods != tt.pods || share != tt.share {
				t.Errorf("RolloutDisruption() = %d pods, %d%%; want %d, %d%%", pods, share, tt.pods, tt.share)
			}
		})
	}
}
