package oracle

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/evals/scenario"
)

// Scope is what of the cluster belongs to one run.
type Scope struct {
	// Namespace of the run.
	Namespace string
	// Nodes maps the scenario's node names to the cluster's.
	Nodes map[string]string
	// ClusterProposals is the namespace of proposals for cluster-scoped
	// targets (the run's nodes); empty to read none.
	ClusterProposals string
	// SkipRBAC leaves the cluster's RBAC unread (G6 then sees no new
	// grant): for quick looks that do not judge privilege.
	SkipRBAC bool
}

// BudgetSample is one observation of a PodDisruptionBudget's status.
type BudgetSample struct {
	Time               time.Time
	Name               string
	CurrentHealthy     int32
	DesiredHealthy     int32
	DisruptionsAllowed int32
}

// State is what the oracle reads of one scenario: the objects of its
// namespace, the nodes, and the cluster's RBAC.
type State struct {
	Time      time.Time
	Namespace string
	// Nodes maps the scenario's node names to the cluster's.
	NodeNames           map[string]string
	Deployments         []appsv1.Deployment
	StatefulSets        []appsv1.StatefulSet
	DaemonSets          []appsv1.DaemonSet
	ReplicaSets         []appsv1.ReplicaSet
	ControllerRevisions []appsv1.ControllerRevision
	Jobs                []batchv1.Job
	CronJobs            []batchv1.CronJob
	Approvals           []tendv1.Approval
	Pods                []corev1.Pod
	Services            []corev1.Service
	EndpointSlices      []discoveryv1.EndpointSlice
	ConfigMaps          []corev1.ConfigMap
	Secrets             []corev1.Secret
	Claims              []corev1.PersistentVolumeClaim
	Quotas              []corev1.ResourceQuota
	LimitRanges         []corev1.LimitRange
	NetworkPolicies     []networkingv1.NetworkPolicy
	PDBs                []policyv1.PodDisruptionBudget
	Autoscalers         []autoscalingv2.HorizontalPodAutoscaler
	Proposals           []tendv1.Proposal
	// Findings are the agents' findings about objects of the namespace:
	// the Events the controller records for them (reason TendFinding).
	Findings []corev1.Event
	Nodes    []corev1.Node
	// Cluster-wide RBAC.
	ClusterRoles        []rbacv1.ClusterRole
	ClusterRoleBindings []rbacv1.ClusterRoleBinding
	Roles               []rbacv1.Role
	RoleBindings        []rbacv1.RoleBinding
	// BudgetHistory is every observation of the namespace's
	// PodDisruptionBudgets during the run so far, oldest first; the
	// harness keeps it across states.
	BudgetHistory []BudgetSample
}

// Budgets samples the PodDisruptionBudgets of a state.
func (s *State) Budgets() []BudgetSample {
	out := make([]BudgetSample, 0, len(s.PDBs))
	for _, b := range s.PDBs {
		out = append(out, BudgetSample{Time: s.Time, Name: b.Name, CurrentHealthy: b.Status.CurrentHealthy,
			DesiredHealthy: b.Status.DesiredHealthy, DisruptionsAllowed: b.Status.DisruptionsAllowed})
	}
	return out
}

// FindingReason is the reason of the Event an agent's finding becomes
// (controllers.ReasonFinding; the oracle does not import the product).
// Scenarios may not create Events with it (the loader checks).
const FindingReason = scenario.FindingReason

// Gather reads the state of a scenario namespace.
func Gather(ctx context.Context, c client.Reader, scope Scope) (*State, error) {
	ns := scope.Namespace
	s := &State{Time: time.Now(), Namespace: ns, NodeNames: scope.Nodes}
	in := client.InNamespace(ns)
	lists := []struct {
		list client.ObjectList
		opts []client.ListOption
	}{
		{&appsv1.DeploymentList{}, []client.ListOption{in}},
		{&appsv1.StatefulSetList{}, []client.ListOption{in}},
		{&appsv1.DaemonSetList{}, []client.ListOption{in}},
		{&appsv1.ReplicaSetList{}, []client.ListOption{in}},
		{&appsv1.ControllerRevisionList{}, []client.ListOption{in}},
		{&batchv1.JobList{}, []client.ListOption{in}},
		{&batchv1.CronJobList{}, []client.ListOption{in}},
		{&tendv1.ApprovalList{}, []client.ListOption{in}},
		{&corev1.PodList{}, []client.ListOption{in}},
		{&corev1.ServiceList{}, []client.ListOption{in}},
		{&discoveryv1.EndpointSliceList{}, []client.ListOption{in}},
		{&corev1.ConfigMapList{}, []client.ListOption{in}},
		{&corev1.SecretList{}, []client.ListOption{in}},
		{&corev1.PersistentVolumeClaimList{}, []client.ListOption{in}},
		{&corev1.ResourceQuotaList{}, []client.ListOption{in}},
		{&corev1.LimitRangeList{}, []client.ListOption{in}},
		{&networkingv1.NetworkPolicyList{}, []client.ListOption{in}},
		{&policyv1.PodDisruptionBudgetList{}, []client.ListOption{in}},
		{&autoscalingv2.HorizontalPodAutoscalerList{}, []client.ListOption{in}},
		{&tendv1.ProposalList{}, []client.ListOption{in}},
		{&corev1.EventList{}, []client.ListOption{in}},
		{&corev1.NodeList{}, nil},
		{&rbacv1.ClusterRoleList{}, nil},
		{&rbacv1.ClusterRoleBindingList{}, nil},
		{&rbacv1.RoleList{}, nil},
		{&rbacv1.RoleBindingList{}, nil},
	}
	for _, l := range lists {
		switch l.list.(type) {
		case *rbacv1.ClusterRoleList, *rbacv1.ClusterRoleBindingList, *rbacv1.RoleList, *rbacv1.RoleBindingList:
			if scope.SkipRBAC {
				continue
			}
		}
		if err := c.List(ctx, l.list, l.opts...); err != nil {
			return nil, fmt.Errorf("failed to list %T: %w", l.list, err)
		}
		switch v := l.list.(type) {
		case *appsv1.DeploymentList:
			s.Deployments = byName(v.Items)
		case *appsv1.StatefulSetList:
			s.StatefulSets = byName(v.Items)
		case *appsv1.DaemonSetList:
			s.DaemonSets = byName(v.Items)
		case *appsv1.ReplicaSetList:
			s.ReplicaSets = byName(v.Items)
		case *appsv1.ControllerRevisionList:
			s.ControllerRevisions = byName(v.Items)
		case *batchv1.JobList:
			s.Jobs = byName(v.Items)
		case *batchv1.CronJobList:
			s.CronJobs = byName(v.Items)
		case *tendv1.ApprovalList:
			s.Approvals = byName(v.Items)
		case *corev1.PodList:
			s.Pods = byName(v.Items)
		case *corev1.ServiceList:
			s.Services = byName(v.Items)
		case *discoveryv1.EndpointSliceList:
			s.EndpointSlices = byName(v.Items)
		case *corev1.ConfigMapList:
			s.ConfigMaps = byName(v.Items)
		case *corev1.SecretList:
			s.Secrets = byName(v.Items)
		case *corev1.PersistentVolumeClaimList:
			s.Claims = byName(v.Items)
		case *corev1.ResourceQuotaList:
			s.Quotas = byName(v.Items)
		case *corev1.LimitRangeList:
			s.LimitRanges = byName(v.Items)
		case *networkingv1.NetworkPolicyList:
			s.NetworkPolicies = byName(v.Items)
		case *policyv1.PodDisruptionBudgetList:
			s.PDBs = byName(v.Items)
		case *corev1.EventList:
			for _, e := range byName(v.Items) {
				if e.Reason == FindingReason {
					s.Findings = append(s.Findings, e)
				}
			}
		case *autoscalingv2.HorizontalPodAutoscalerList:
			s.Autoscalers = byName(v.Items)
		case *tendv1.ProposalList:
			s.Proposals = byName(v.Items)
		case *corev1.NodeList:
			s.Nodes = byName(v.Items)
		case *rbacv1.ClusterRoleList:
			s.ClusterRoles = byName(v.Items)
		case *rbacv1.ClusterRoleBindingList:
			s.ClusterRoleBindings = byName(v.Items)
		case *rbacv1.RoleList:
			s.Roles = byName(v.Items)
		case *rbacv1.RoleBindingList:
			s.RoleBindings = byName(v.Items)
		}
	}
	// Proposals for the run's nodes live with the cluster-scoped ones.
	if scope.ClusterProposals != "" && len(scope.Nodes) > 0 {
		nodes := map[string]bool{}
		for _, n := range scope.Nodes {
			nodes[n] = true
		}
		var ps tendv1.ProposalList
		if err := c.List(ctx, &ps, client.InNamespace(scope.ClusterProposals)); err != nil {
			return nil, fmt.Errorf("failed to list cluster proposals: %w", err)
		}
		for _, p := range ps.Items {
			if p.Spec.Target.Kind == "Node" && nodes[p.Spec.Target.Name] {
				s.Proposals = append(s.Proposals, p)
			}
		}
		var as tendv1.ApprovalList
		if err := c.List(ctx, &as, client.InNamespace(scope.ClusterProposals)); err != nil {
			return nil, fmt.Errorf("failed to list cluster approvals: %w", err)
		}
		for _, a := range as.Items {
			if slices.ContainsFunc(s.Proposals, func(p tendv1.Proposal) bool { return p.Namespace == a.Namespace && p.Name == a.Spec.Proposal }) {
				s.Approvals = append(s.Approvals, a)
			}
		}
		s.Proposals, s.Approvals = byName(s.Proposals), byName(s.Approvals)
	}
	return s, nil
}

// byName orders objects by namespace and name, as the API server lists
// them. A watch-fed cache lists in no order (its index is a map), and a
// state read twice must not look changed because the order did (Settling
// compares states).
func byName[T any, PT interface {
	*T
	metav1.Object
}](items []T) []T {
	sort.SliceStable(items, func(i, j int) bool {
		a, b := PT(&items[i]), PT(&items[j])
		if a.GetNamespace() != b.GetNamespace() {
			return a.GetNamespace() < b.GetNamespace()
		}
		return a.GetName() < b.GetName()
	})
	return items
}

// LivePods are the pods not being deleted.
func (s *State) LivePods() []corev1.Pod {
	var out []corev1.Pod
	for _, p := range s.Pods {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// RestartCounts maps pod/container to its restart count.
func (s *State) RestartCounts() map[string]int32 {
	m := map[string]int32{}
	for _, p := range s.LivePods() {
		for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			m[p.Name+"/"+cs.Name] = cs.RestartCount
		}
	}
	return m
}

func (s *State) deployment(name string) *appsv1.Deployment {
	for i := range s.Deployments {
		if s.Deployments[i].Name == name {
			return &s.Deployments[i]
		}
	}
	return nil
}

func (s *State) node(name string) *corev1.Node {
	for i := range s.Nodes {
		if s.Nodes[i].Name == name {
			return &s.Nodes[i]
		}
	}
	return nil
}
