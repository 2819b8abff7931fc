package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/itchyny/gojq"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// SimulatorOptions configure the node-side simulators kwok's stages cannot
// express: the kubelet's environment resolution and a local-path volume
// provisioner.
type SimulatorOptions struct {
	// Faults the cluster's stages were rendered with: with a FaultWait
	// among them, the stages leave it to the Simulator to classify pods
	// (see StagesYAML).
	Faults []Fault
	// Logger for the simulators; discards when zero.
	Logger logr.Logger
}

// Simulator runs the node-side simulators next to a kwok cluster:
//
//   - EnvResolver, the kubelet's part of starting a container that reads
//     other objects: it resolves each container's environment (envFrom and
//     env, ConfigMaps and Secrets, the last definition of a name winning,
//     $(VAR) references expanded) and records it in the pod's
//     EnvConditionType condition, or why it cannot (a missing ConfigMap,
//     Secret or key: CreateContainerConfigError);
//   - LocalPathProvisioner, which provisions a node-local volume for every
//     claim of the LocalPathStorageClass once the scheduler picked a node.
type Simulator struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// StartSimulator starts the simulators against the cluster cfg points at
// and returns once their caches have synced. Stop stops them.
func StartSimulator(ctx context.Context, cfg *rest.Config, opts SimulatorOptions) (*Simulator, error) {
	if opts.Logger.GetSink() == nil {
		opts.Logger = logr.Discard()
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 Scheme(),
		Logger:                 opts.Logger,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return nil, fmt.Errorf("failed to create the simulators' manager: %w", err)
	}
	er := &EnvResolver{Client: mgr.GetClient()}
	if c, err := compile(opts.Faults); err != nil {
		return nil, err
	} else if c.assisted {
		q, err := gojq.Parse(c.classify)
		if err != nil {
			return nil, fmt.Errorf("failed to parse the classifier: %w", err)
		}
		if er.classify, err = gojq.Compile(q); err != nil {
			return nil, fmt.Errorf("failed to compile the classifier: %w", err)
		}
	}
	if err := er.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	lp := &LocalPathProvisioner{Client: mgr.GetClient()}
	if err := lp.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, fmt.Errorf("failed to create the simulators' client: %w", err)
	}
	if err := EnsureLocalPathStorageClass(ctx, c); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Simulator{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = mgr.Start(runCtx)
	}()
	syncCtx, cancelSync := context.WithTimeout(ctx, time.Minute)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		s.Stop()
		return nil, errors.New("localstack: the simulators' caches did not sync within a minute")
	}
	return s, nil
}

// Stop stops the simulators and waits for them.
func (s *Simulator) Stop() {
	s.cancel()
	<-s.done
}

// EnvResolver is the simulated kubelet's environment resolution. A
// container's environment is resolved when it is about to start, so a
// pod's is resolved again until all of its containers run; a running
// container keeps the environment it started with, as a real one does, even
// when a ConfigMap it read changes later.
type EnvResolver struct {
	Client client.Client
	// classify, if set, also classifies each pod when its environment is
	// resolved and records the verdict in its SimulatedStateType condition.
	classify *gojq.Code
}

var _ reconcile.Reconciler = (*EnvResolver)(nil)

// SetupWithManager registers the resolver: pods, and the ConfigMaps and
// Secrets they may read.
func (r *EnvResolver) SetupWithManager(mgr ctrl.Manager) error {
	podsOf := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
		var pods corev1.PodList
		if err := mgr.GetClient().List(ctx, &pods, client.InNamespace(o.GetNamespace())); err != nil {
			return nil
		}
		var out []reconcile.Request
		for _, p := range pods.Items {
			if !envFrozen(&p) {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)})
			}
		}
		return out
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("simulated-kubelet-env").
		For(&corev1.Pod{}).
		Watches(&corev1.ConfigMap{}, podsOf).
		Watches(&corev1.Secret{}, podsOf).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// Reconcile resolves one pod's environment.
func (r *EnvResolver) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil || pod.Status.Phase == corev1.PodSucceeded ||
		pod.Status.Phase == corev1.PodFailed || envFrozen(pod) {
		return reconcile.Result{}, nil
	}
	status, reason, message := corev1.ConditionTrue, "Resolved", ""
	err := CheckVolumes(ctx, r.Client, pod)
	var env ResolvedEnv
	if err == nil {
		env, err = ResolveEnv(ctx, r.Client, pod)
	}
	if err != nil {
		var cfgErr *ConfigError
		if !errors.As(err, &cfgErr) {
			return reconcile.Result{}, err
		}
		status, reason, message = corev1.ConditionFalse, cfgErr.Reason, cfgErr.Error()
	} else {
		b, err := json.Marshal(env)
		if err != nil {
			return reconcile.Result{}, fmt.Errorf("failed to encode the environment: %w", err)
		}
		message = string(b)
	}
	conds := []corev1.PodCondition{{Type: EnvConditionType, Status: status, Reason: reason, Message: message, LastTransitionTime: metav1.Now()}}
	if r.classify != nil {
		verdict, err := r.verdict(pod, conds[0])
		if err != nil {
			return reconcile.Result{}, err
		}
		conds = append(conds, corev1.PodCondition{Type: SimulatedStateType, Status: corev1.ConditionTrue, Reason: verdict, LastTransitionTime: metav1.Now()})
	}
	same := 0
	for _, want := range conds {
		for _, c := range pod.Status.Conditions {
			if c.Type == want.Type && c.Status == want.Status && c.Reason == want.Reason && c.Message == want.Message {
				same++
			}
		}
	}
	if same == len(conds) {
		return reconcile.Result{}, nil
	}
	patch := map[string]any{"status": map[string]any{"conditions": conds}}
	b, err := json.Marshal(patch)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.Client.Status().Patch(ctx, pod, client.RawPatch(types.StrategicMergePatchType, b)); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	return reconcile.Result{}, nil
}

// verdict classifies a pod as its stages would, with its environment
// condition as it is about to be recorded.
func (r *EnvResolver) verdict(pod *corev1.Pod, env corev1.PodCondition) (string, error) {
	p := pod.DeepCopy()
	p.Status.Conditions = slices.DeleteFunc(p.Status.Conditions, func(c corev1.PodCondition) bool { return c.Type == EnvConditionType })
	p.Status.Conditions = append(p.Status.Conditions, env)
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	var in any
	if err := json.Unmarshal(b, &in); err != nil {
		return "", err
	}
	v, ok := r.classify.Run(in).Next()
	if !ok {
		return "", errors.New("localstack: the classifier yields nothing")
	}
	if err, isErr := v.(error); isErr {
		return "", fmt.Errorf("failed to classify pod %s: %w", pod.Name, err)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("localstack: the classifier yields %v, not a name", v)
	}
	return s, nil
}

// envFrozen reports whether a pod's containers all run with the
// environment already recorded: a running container keeps it.
func envFrozen(p *corev1.Pod) bool {
	resolved := slices.ContainsFunc(p.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == EnvConditionType && c.Status == corev1.ConditionTrue
	})
	if !resolved || len(p.Status.ContainerStatuses) != len(p.Spec.Containers) {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

// ConfigError is why the kubelet cannot start a pod's containers, in the
// kubelet's words; Reason is the containers' waiting reason:
// CreateContainerConfigError (a missing ConfigMap, Secret or key of the
// environment) or ContainerCreating (a volume it cannot mount).
type ConfigError struct {
	Reason string
	msg    string
}

func (e *ConfigError) Error() string { return e.msg }

func configError(format string, args ...any) *ConfigError {
	return &ConfigError{Reason: "CreateContainerConfigError", msg: fmt.Sprintf(format, args...)}
}

// CheckVolumes checks that the ConfigMaps and Secrets a pod mounts exist
// (and the keys it picks from them), as the kubelet must before it starts
// any container: a missing one that is not optional keeps the pod in
// ContainerCreating (FailedMount).
func CheckVolumes(ctx context.Context, c client.Reader, pod *corev1.Pod) error {
	type source struct {
		kind, name string
		optional   bool
		keys       []string
		volume     string
	}
	var sources []source
	keysOf := func(items []corev1.KeyToPath) []string {
		var ks []string
		for _, it := range items {
			ks = append(ks, it.Key)
		}
		return ks
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.ConfigMap != nil:
			sources = append(sources, source{"configmap", v.ConfigMap.Name, ptr.Deref(v.ConfigMap.Optional, false), keysOf(v.ConfigMap.Items), v.Name})
		case v.Secret != nil:
			sources = append(sources, source{"secret", v.Secret.SecretName, ptr.Deref(v.Secret.Optional, false), keysOf(v.Secret.Items), v.Name})
		case v.Projected != nil:
			for _, ps := range v.Projected.Sources {
				if ps.ConfigMap != nil {
					sources = append(sources, source{"configmap", ps.ConfigMap.Name, ptr.Deref(ps.ConfigMap.Optional, false), keysOf(ps.ConfigMap.Items), v.Name})
				}
				if ps.Secret != nil {
					sources = append(sources, source{"secret", ps.Secret.Name, ptr.Deref(ps.Secret.Optional, false), keysOf(ps.Secret.Items), v.Name})
				}
			}
		}
	}
	for _, src := range sources {
		var obj client.Object = &corev1.ConfigMap{}
		if src.kind == "secret" {
			obj = &corev1.Secret{}
		}
		err := c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: src.name}, obj)
		switch {
		case apierrors.IsNotFound(err) && src.optional:
			continue
		case apierrors.IsNotFound(err):
			return &ConfigError{Reason: "ContainerCreating", msg: fmt.Sprintf("MountVolume.SetUp failed for volume %q : %s %q not found", src.volume, src.kind, src.name)}
		case err != nil:
			return fmt.Errorf("failed to get %s %s: %w", src.kind, src.name, err)
		}
		for _, k := range src.keys {
			var ok bool
			switch o := obj.(type) {
			case *corev1.ConfigMap:
				_, ok = o.Data[k]
				if !ok {
					_, ok = o.BinaryData[k]
				}
			case *corev1.Secret:
				_, ok = o.Data[k]
			}
			if !ok && !src.optional {
				return &ConfigError{Reason: "ContainerCreating", msg: fmt.Sprintf("MountVolume.SetUp failed for volume %q : configmap references non-existent config key: %s", src.volume, k)}
			}
		}
	}
	return nil
}

// ResolvedEnv maps container name to variable to value; a nil value is one
// the simulator does not disclose (it came from a Secret).
type ResolvedEnv map[string]map[string]*string

// ResolveEnv resolves the environment of every container of a pod, init
// containers included, as the kubelet does: envFrom sources in order, then
// env entries in order, a later definition of a name replacing an earlier
// one; $(VAR) references to variables defined before are expanded. A
// ConfigMap, Secret or key that is missing and not optional is a
// *ConfigError.
func ResolveEnv(ctx context.Context, c client.Reader, pod *corev1.Pod) (ResolvedEnv, error) {
	out := ResolvedEnv{}
	cms := map[string]*corev1.ConfigMap{}
	secrets := map[string]*corev1.Secret{}
	getCM := func(name string) (*corev1.ConfigMap, error) {
		if cm, ok := cms[name]; ok {
			return cm, nil
		}
		cm := &corev1.ConfigMap{}
		err := c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: name}, cm)
		if apierrors.IsNotFound(err) {
			cm = nil
		} else if err != nil {
			return nil, fmt.Errorf("failed to get ConfigMap %s: %w", name, err)
		}
		cms[name] = cm
		return cm, nil
	}
	getSecret := func(name string) (*corev1.Secret, error) {
		if s, ok := secrets[name]; ok {
			return s, nil
		}
		s := &corev1.Secret{}
		err := c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: name}, s)
		if apierrors.IsNotFound(err) {
			s = nil
		} else if err != nil {
			return nil, fmt.Errorf("failed to get Secret %s: %w", name, err)
		}
		secrets[name] = s
		return s, nil
	}
	for _, ctr := range append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...) {
		env := map[string]*string{}
		for _, ef := range ctr.EnvFrom {
			switch {
			case ef.ConfigMapRef != nil:
				cm, err := getCM(ef.ConfigMapRef.Name)
				if err != nil {
					return nil, err
				}
				if cm == nil {
					if ptr.Deref(ef.ConfigMapRef.Optional, false) {
						continue
					}
					return nil, configError("configmap %q not found", ef.ConfigMapRef.Name)
				}
				for k, v := range cm.Data {
					env[ef.Prefix+k] = ptr.To(v)
				}
			case ef.SecretRef != nil:
				s, err := getSecret(ef.SecretRef.Name)
				if err != nil {
					return nil, err
				}
				if s == nil {
					if ptr.Deref(ef.SecretRef.Optional, false) {
						continue
					}
					return nil, configError("secret %q not found", ef.SecretRef.Name)
				}
				for k := range s.Data {
					env[ef.Prefix+k] = nil
				}
				for k := range s.StringData {
					env[ef.Prefix+k] = nil
				}
			}
		}
		for _, e := range ctr.Env {
			if e.ValueFrom == nil {
				env[e.Name] = ptr.To(expand(e.Value, env))
				continue
			}
			vf := e.ValueFrom
			switch {
			case vf.ConfigMapKeyRef != nil:
				ref := vf.ConfigMapKeyRef
				cm, err := getCM(ref.Name)
				if err != nil {
					return nil, err
				}
				optional := ptr.Deref(ref.Optional, false)
				if cm == nil {
					if optional {
						continue
					}
					return nil, configError("configmap %q not found", ref.Name)
				}
				v, ok := cm.Data[ref.Key]
				if !ok && !optional {
					return nil, configError("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
				}
				if ok {
					env[e.Name] = ptr.To(v)
				}
			case vf.SecretKeyRef != nil:
				ref := vf.SecretKeyRef
				s, err := getSecret(ref.Name)
				if err != nil {
					return nil, err
				}
				optional := ptr.Deref(ref.Optional, false)
				switch {
				case s == nil && optional:
				case s == nil:
					return nil, configError("secret %q not found", ref.Name)
				default:
					_, inData := s.Data[ref.Key]
					_, inString := s.StringData[ref.Key]
					if !inData && !inString && !optional {
						return nil, configError("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
					}
					if inData || inString {
						env[e.Name] = nil
					}
				}
			case vf.FieldRef != nil:
				env[e.Name] = ptr.To(fieldValue(pod, vf.FieldRef.FieldPath))
			case vf.ResourceFieldRef != nil:
				env[e.Name] = ptr.To(resourceValue(&ctr, vf.ResourceFieldRef))
			}
		}
		out[ctr.Name] = env
	}
	return out, nil
}

// expand replaces $(NAME) with the value of a variable defined before, as
// the kubelet does; $$ escapes a $, and an unknown reference stays as it is.
func expand(s string, env map[string]*string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok && v != nil {
				b.WriteString(*v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func fieldValue(p *corev1.Pod, path string) string {
	switch path {
	case "metadata.name":
		return p.Name
	case "metadata.namespace":
		return p.Namespace
	case "metadata.uid":
		return string(p.UID)
	case "spec.nodeName":
		return p.Spec.NodeName
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName
	case "status.podIP":
		return p.Status.PodIP
	case "status.hostIP":
		return p.Status.HostIP
	}
	for _, m := range []struct {
		prefix string
		values map[string]string
	}{{"metadata.labels['", p.Labels}, {"metadata.annotations['", p.Annotations}} {
		if strings.HasPrefix(path, m.prefix) && strings.HasSuffix(path, "']") {
			return m.values[strings.TrimSuffix(strings.TrimPrefix(path, m.prefix), "']")]
		}
	}
	return ""
}

func resourceValue(c *corev1.Container, ref *corev1.ResourceFieldSelector) string {
	name, kind, _ := strings.Cut(ref.Resource, ".")
	list := c.Resources.Limits
	if name == "requests" {
		list = c.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(kind)]
	if !ok {
		return "0"
	}
	div := resource.MustParse("1")
	if !ref.Divisor.IsZero() {
		div = ref.Divisor
	}
	if kind == "cpu" {
		return fmt.Sprint((q.MilliValue() + div.MilliValue() - 1) / div.MilliValue())
	}
	return fmt.Sprint((q.Value() + div.Value() - 1) / div.Value())
}

// The local-path storage class and provisioner.
const (
	// LocalPathStorageClass is the StorageClass whose claims the simulator
	// provisions, like rancher's local-path-provisioner: a node-local
	// volume, bound when the first pod that uses the claim is scheduled.
	LocalPathStorageClass = "local-path"
	// LocalPathProvisionerName is its provisioner.
	LocalPathProvisionerName = "tend.dev/local-path"

	selectedNodeAnnotation  = "volume.kubernetes.io/selected-node"
	provisionedByAnnotation = "pv.kubernetes.io/provisioned-by"
)

// EnsureLocalPathStorageClass creates the local-path StorageClass (not the
// default class) if it is missing.
func EnsureLocalPathStorageClass(ctx context.Context, c client.Client) error {
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: LocalPathStorageClass},
		Provisioner:       LocalPathProvisionerName,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
	}
	if err := c.Create(ctx, sc); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create StorageClass %s: %w", LocalPathStorageClass, err)
	}
	return nil
}

// LocalPathProvisioner provisions the claims of LocalPathStorageClass: when
// the scheduler has picked a node for the first pod that uses a claim
// (WaitForFirstConsumer), it creates a hostPath PersistentVolume pinned to
// that node and pre-bound to the claim, and the real PV controller binds
// them; a released volume it provisioned is deleted.
type LocalPathProvisioner struct {
	Client client.Client
}

var _ reconcile.Reconciler = (*LocalPathProvisioner)(nil)

// SetupWithManager registers the provisioner on claims and on volumes.
func (p *LocalPathProvisioner) SetupWithManager(mgr ctrl.Manager) error {
	if err := ctrl.NewControllerManagedBy(mgr).Named("simulated-local-path").For(&corev1.PersistentVolumeClaim{}).Complete(p); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("simulated-local-path-reclaim").For(&corev1.PersistentVolume{}).
		Complete(reconcile.Func(p.reclaim))
}

// Reconcile provisions one claim.
func (p *LocalPathProvisioner) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	if err := p.Client.Get(ctx, req.NamespacedName, pvc); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	node := pvc.Annotations[selectedNodeAnnotation]
	if ptr.Deref(pvc.Spec.StorageClassName, "") != LocalPathStorageClass || pvc.Spec.VolumeName != "" || node == "" || pvc.DeletionTimestamp != nil {
		return reconcile.Result{}, nil
	}
	n := &corev1.Node{}
	if err := p.Client.Get(ctx, client.ObjectKey{Name: node}, n); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	hostname := n.Labels[corev1.LabelHostname]
	if hostname == "" {
		hostname = n.Name
	}
	name := "pvc-" + string(pvc.UID)
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{provisionedByAnnotation: LocalPathProvisionerName}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: pvc.Spec.Resources.Requests[corev1.ResourceStorage]},
			AccessModes:                   pvc.Spec.AccessModes,
			VolumeMode:                    pvc.Spec.VolumeMode,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              LocalPathStorageClass,
			ClaimRef: &corev1.ObjectReference{APIVersion: "v1", Kind: "PersistentVolumeClaim", Namespace: pvc.Namespace,
				Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: "/var/lib/tend/local-path/" + name, Type: ptr.To(corev1.HostPathDirectoryOrCreate)}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname}}},
			}}}},
		},
	}
	if err := p.Client.Create(ctx, pv); err != nil && !apierrors.IsAlreadyExists(err) {
		return reconcile.Result{}, fmt.Errorf("failed to create PersistentVolume %s: %w", name, err)
	}
	return reconcile.Result{}, nil
}

// reclaim deletes a released volume the provisioner made.
func (p *LocalPathProvisioner) reclaim(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	pv := &corev1.PersistentVolume{}
	if err := p.Client.Get(ctx, req.NamespacedName, pv); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if pv.Annotations[provisionedByAnnotation] != LocalPathProvisionerName || pv.Status.Phase != corev1.VolumeReleased ||
		pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return reconcile.Result{}, nil
	}
	return reconcile.Result{}, client.IgnoreNotFound(p.Client.Delete(ctx, pv))
}
