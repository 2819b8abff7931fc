package scalebench

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// runInformer is the reference: a bare client-go informer cache of the
// kinds the sensor watches (and the ReplicaSets it reads), which does
// nothing with what it sees. It runs until ctx ends, in a process of its
// own, and prints "synced" once every cache has synced.
func runInformer(ctx context.Context, kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	f := informers.NewSharedInformerFactory(cs, 10*time.Hour)
	f.Core().V1().Pods().Informer()
	f.Core().V1().Nodes().Informer()
	f.Core().V1().Events().Informer()
	f.Core().V1().Services().Informer()
	f.Apps().V1().Deployments().Informer()
	f.Apps().V1().StatefulSets().Informer()
	f.Apps().V1().DaemonSets().Informer()
	f.Apps().V1().ReplicaSets().Informer()
	f.Batch().V1().Jobs().Informer()
	f.Autoscaling().V2().HorizontalPodAutoscalers().Informer()
	f.Networking().V1().NetworkPolicies().Informer()
	f.Start(ctx.Done())
	for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("the %v cache did not sync", typ)
		}
	}
	fmt.Println("synced")
	<-ctx.Done()
	f.Shutdown()
	return nil
}
