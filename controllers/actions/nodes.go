package actions

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// What the node actions share.

// drainablePods are the pods a drain evicts from node: not DaemonSet pods
// (their controller puts them back), not mirror pods (the kubelet's), not
// finished or already terminating ones.
func drainablePods(ctx context.Context, c client.Reader, node string) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("failed to list pods: %w", err)
	}
	var out []corev1.Pod
	for _, pod := range list.Items {
		if pod.Spec.NodeName != node || pod.DeletionTimestamp != nil ||
			pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
			continue
		}
		if ref := metav1.GetControllerOf(&pod); ref != nil && ref.Kind == "DaemonSet" {
			continue
		}
		out = append(out, pod)
	}
	return out, nil
}

// nodeFacts are a node's readiness, whether it is cordoned and the pods a
// drain would evict.
func nodeFacts(ctx context.Context, c client.Reader, node *corev1.Node) (tendv1.Facts, []corev1.Pod, error) {
	pods, err := drainablePods(ctx, c, node.Name)
	if err != nil {
		return tendv1.Facts{}, nil, err
	}
	return tendv1.Facts{
		TargetExists: true, TargetGeneration: node.Generation,
		Node: &tendv1.NodeFacts{Ready: nodeReady(node), Unschedulable: node.Spec.Unschedulable, Pods: int32(len(pods))},
	}, pods, nil
}

// cordonUndo is the undo state of a cordon: whether the node was
// schedulable before.
type cordonUndo struct {
	Unschedulable bool `json:"unschedulable"`
}

// unschedulableDigest is the digest of what cordoning writes.
func unschedulableDigest(target client.Object) (string, error) {
	node, ok := target.(*corev1.Node)
	if !ok {
		return "", fmt.Errorf("%w: %T is not a node", ErrInvalidParameters, target)
	}
	return digestOf(node.Spec.Unschedulable)
}

// setSchedulable is the edit of cordon (unschedulable true) and uncordon.
func setSchedulable(unschedulable bool) edit {
	return func(obj client.Object) (string, string, string, error) {
		node := obj.(*corev1.Node)
		if node.Spec.Unschedulable == unschedulable {
			return "", "", "", refuse(ReasonNoChange, "node %s is already %s", node.Name, schedulability(unschedulable))
		}
		undo, _ := json.Marshal(cordonUndo{Unschedulable: node.Spec.Unschedulable})
		before := schedulability(node.Spec.Unschedulable)
		node.Spec.Unschedulable = unschedulable
		return before, schedulability(unschedulable), string(undo), nil
	}
}

// restoreSchedulable is the undo of setSchedulable.
func restoreSchedulable(obj client.Object, state string) (string, string, error) {
	var u cordonUndo
	if err := json.Unmarshal([]byte(state), &u); err != nil {
		return "", "", fmt.Errorf("%w: the apply recorded no schedulability: %v", ErrInvalidParameters, err)
	}
	node := obj.(*corev1.Node)
	before := schedulability(node.Spec.Unschedulable)
	node.Spec.Unschedulable = u.Unschedulable
	return before, schedulability(u.Unschedulable), nil
}

func schedulability(unschedulable bool) string {
	if unschedulable {
		return "cordoned"
	}
	return "schedulable"
}

// schedulabilityCheck checks a node's schedulability.
func schedulabilityCheck(node *corev1.Node, unschedulable bool) tendv1.Check {
	return tendv1.Check{Name: "Schedulability", Passed: node.Spec.Unschedulable == unschedulable,
		Message: fmt.Sprintf("node %s is %s", node.Name, schedulability(node.Spec.Unschedulable))}
}
