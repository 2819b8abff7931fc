package components

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Pod names the pod a component runs in (the downward API's metadata.name
// and metadata.uid).
type Pod struct {
	Name string
	UID  types.UID
}

// leaseOwner makes the elected leader's pod the owner of the component's
// Lease, which leader election creates at run time: when no pod of the
// component is left (the release is uninstalled), the garbage collector
// deletes the Lease with them instead of leaving it behind. It runs once
// per leadership, on the leader only.
type leaseOwner struct {
	reader client.Reader
	writer client.Client
	lease  client.ObjectKey
	pod    Pod
}

var _ manager.LeaderElectionRunnable = (*leaseOwner)(nil)

func (l *leaseOwner) NeedLeaderElection() bool { return true }

func (l *leaseOwner) Start(ctx context.Context) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		lease := &coordinationv1.Lease{}
		if err := l.reader.Get(ctx, l.lease, lease); err != nil {
			return err
		}
		lease.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: l.pod.Name, UID: l.pod.UID}}
		return l.writer.Update(ctx, lease)
	})
	if err != nil {
		// The Lease then outlives the component; leadership is unaffected.
		ctrl.LoggerFrom(ctx).Error(err, "Failed to make the leader's pod the owner of its Lease", "lease", l.lease)
	}
	return nil
}

// addLeaseOwner adds a leaseOwner to mgr when pod names one.
func addLeaseOwner(mgr manager.Manager, namespace, lease string, pod Pod) error {
	if pod.Name == "" || pod.UID == "" {
		return nil
	}
	if err := mgr.Add(&leaseOwner{reader: mgr.GetAPIReader(), writer: mgr.GetClient(), lease: client.ObjectKey{Namespace: namespace, Name: lease}, pod: pod}); err != nil {
		return fmt.Errorf("failed to add the Lease's owner: %w", err)
	}
	return nil
}
