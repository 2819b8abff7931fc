package localstack

import (
	"context"
	"fmt"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/api/crds"
	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/controllers/rbac"
	"github.com/tendops/tend/policies"
)

// Names of what Install creates.
const (
	SystemNamespace   = tendv1.DefaultSystemNamespace
	AgentAccount      = "tend-agent"
	ControllerAccount = "tend-controller"
	MCPAccount        = "tend-mcp"
	SensorAccount     = "tend-sensor"
	ApproverGroup     = "tend:approvers"
	// HelmRelease is the Helm release, in SystemNamespace, that owns what
	// Install installs: `helm install tend charts/tend -n tend-system`
	// adopts it rather than failing on objects it did not create.
	HelmRelease        = "tend"
	approvalPolicyName = "tend.dev-approvals"
	proposalPolicyName = "tend.dev-proposals"
)

// Install creates or updates tend's CRDs, its system namespace, the agent's
// service account and RBAC, the approvers' role, the admission policy that
// binds an Approval to its authenticated, authorized creator, and the
// default GatePolicies. It is idempotent.
func Install(ctx context.Context, c client.Client) error {
	all, err := crds.All()
	if err != nil {
		return err
	}
	for _, crd := range all {
		if err := ensure(ctx, c, crd); err != nil {
			return err
		}
	}
	if err := waitEstablished(ctx, c, all); err != nil {
		return err
	}
	for _, obj := range rbacObjects() {
		if _, ok := obj.(*corev1.Namespace); !ok {
			helmOwned(obj)
		}
		if err := ensure(ctx, c, obj); err != nil {
			return err
		}
	}
	for _, obj := range AdmissionPolicies(SystemNamespace) {
		if err := ensure(ctx, c, helmOwned(obj)); err != nil {
			return err
		}
	}
	// The gate state starts with the kill switch released; a missing one
	// means the switch is engaged (fail closed), so it is created here and
	// never overwritten: a restart keeps an engaged switch engaged.
	if err := controllers.EnsureGateState(ctx, c, SystemNamespace); err != nil {
		return err
	}
	bundle, err := policies.DefaultBundle()
	if err != nil {
		return fmt.Errorf("failed to load default policies: %w", err)
	}
	for i := range bundle {
		if err := ensure(ctx, c, helmOwned(&bundle[i])); err != nil {
			return err
		}
	}
	return nil
}

// helmOwned marks obj as the chart's object in the release HelmRelease, the
// same object the chart renders: a later `helm install` or `helm upgrade`
// of that release takes it over instead of refusing it.
func helmOwned(obj client.Object) client.Object {
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels["app.kubernetes.io/managed-by"] = "Helm"
	obj.SetLabels(labels)
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann["meta.helm.sh/release-name"] = HelmRelease
	ann["meta.helm.sh/release-namespace"] = SystemNamespace
	obj.SetAnnotations(ann)
	return obj
}

// ensure creates obj, or updates it in place when it exists.
func ensure(ctx context.Context, c client.Client, obj client.Object) error {
	desired := obj.DeepCopyObject().(client.Object)
	err := c.Create(ctx, obj)
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create %T %s: %w", obj, obj.GetName(), err)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return fmt.Errorf("failed to get %T %s: %w", obj, obj.GetName(), err)
	}
	desired.SetResourceVersion(obj.GetResourceVersion())
	if err := c.Update(ctx, desired); err != nil {
		return fmt.Errorf("failed to update %T %s: %w", obj, obj.GetName(), err)
	}
	return nil
}

func waitEstablished(ctx context.Context, c client.Client, all []*apiextensionsv1.CustomResourceDefinition) error {
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, want := range all {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKey{Name: want.Name}, crd); err != nil {
				return false, nil
			}
			established := false
			for _, cond := range crd.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					established = true
				}
			}
			if !established {
				return false, nil
			}
		}
		return true, nil
	})
}

// mcpReadable are the resources, by API group, the MCP server's read tools
// serve: what an operator or an agent reads to diagnose a workload, a node
// or the cluster's policies.
var mcpReadable = map[string][]string{
	"":                          {"pods", "services", "endpoints", "events", "configmaps", "secrets", "nodes", "namespaces", "persistentvolumeclaims", "persistentvolumes", "replicationcontrollers", "resourcequotas", "limitranges", "serviceaccounts"},
	"apps":                      {"deployments", "replicasets", "statefulsets", "daemonsets", "controllerrevisions"},
	"batch":                     {"jobs", "cronjobs"},
	"autoscaling":               {"horizontalpodautoscalers"},
	"policy":                    {"poddisruptionbudgets"},
	"networking.k8s.io":         {"networkpolicies", "ingresses", "ingressclasses"},
	"discovery.k8s.io":          {"endpointslices"},
	"storage.k8s.io":            {"storageclasses", "volumeattachments", "csidrivers", "csinodes"},
	"events.k8s.io":             {"events"},
	"metrics.k8s.io":            {"pods", "nodes"},
	"rbac.authorization.k8s.io": {"roles", "rolebindings", "clusterroles", "clusterrolebindings"},
}

// ClusterRoles gives each component exactly what it needs: the controller
// is the only one that may write workloads; the MCP server may only create
// Proposals, on its callers' behalf (the verb relay), and review tokens and
// access; the agent may only read and propose through the MCP server (the
// verb propose; it cannot create a Proposal itself); approvers may read
// proposals, approve them and create Approvals.
// charts/tend ships the same roles (a test keeps them equal).
func ClusterRoles() []*rbacv1.ClusterRole {
	controller, _ := controllerRBAC(SystemNamespace)
	read := []string{"get", "list", "watch"}
	tend := tendv1.GroupVersion.Group
	return []*rbacv1.ClusterRole{
		controller,
		{
			ObjectMeta: metav1.ObjectMeta{Name: "tend:mcp"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{tend}, Resources: []string{"proposals"}, Verbs: append([]string{"create", "relay"}, read...)},
				// Read tools serve the kinds below (no wildcard: a kind not
				// listed is refused as one the server may not read), each
				// call also authorized for its caller with a
				// SubjectAccessReview; Secret values never leave the server.
				{APIGroups: []string{""}, Resources: mcpReadable[""], Verbs: read},
				{APIGroups: []string{"apps"}, Resources: mcpReadable["apps"], Verbs: read},
				{APIGroups: []string{"batch"}, Resources: mcpReadable["batch"], Verbs: read},
				{APIGroups: []string{"autoscaling"}, Resources: mcpReadable["autoscaling"], Verbs: read},
				{APIGroups: []string{"policy"}, Resources: mcpReadable["policy"], Verbs: read},
				{APIGroups: []string{"networking.k8s.io"}, Resources: mcpReadable["networking.k8s.io"], Verbs: read},
				{APIGroups: []string{"discovery.k8s.io"}, Resources: mcpReadable["discovery.k8s.io"], Verbs: read},
				{APIGroups: []string{"storage.k8s.io"}, Resources: mcpReadable["storage.k8s.io"], Verbs: read},
				{APIGroups: []string{"events.k8s.io"}, Resources: mcpReadable["events.k8s.io"], Verbs: read},
				{APIGroups: []string{"metrics.k8s.io"}, Resources: mcpReadable["metrics.k8s.io"], Verbs: read},
				{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: mcpReadable["rbac.authorization.k8s.io"], Verbs: read},
				{APIGroups: []string{tend}, Resources: []string{"approvals", "gatepolicies", "improvementschedules"}, Verbs: read},
				{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
				{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
				{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}},
			},
		},
		{
			// The sensor watches what it reports on (the kinds and the
			// metrics its RBAC markers in controllers/sensor.go name) and
			// writes nothing but its leader Lease (SensorRole).
			ObjectMeta: metav1.ObjectMeta{Name: "tend:sensor"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"pods", "nodes", "events", "namespaces", "services"}, Verbs: read},
				{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets", "replicasets"}, Verbs: read},
				{APIGroups: []string{"batch"}, Resources: []string{"jobs", "cronjobs"}, Verbs: read},
				{APIGroups: []string{"autoscaling"}, Resources: []string{"horizontalpodautoscalers"}, Verbs: read},
				{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: read},
				{APIGroups: []string{"metrics.k8s.io"}, Resources: []string{"pods", "nodes"}, Verbs: []string{"get", "list"}},
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "tend:agent"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{tend}, Resources: []string{"proposals"}, Verbs: append([]string{"propose"}, read...)},
				{APIGroups: []string{tend}, Resources: []string{"proposals/cluster"}, Verbs: []string{"propose"}},
				{APIGroups: []string{""}, Resources: []string{"pods", "events", "nodes", "namespaces"}, Verbs: read},
				{APIGroups: []string{"apps"}, Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"}, Verbs: read},
			},
		},
		{
			// Aggregated into the built-in view, edit and admin roles: who
			// may view a namespace sees its proposals, approvals and
			// improvement schedules and runs.
			ObjectMeta: metav1.ObjectMeta{Name: "tend:aggregate-to-view", Labels: map[string]string{
				"rbac.authorization.k8s.io/aggregate-to-view": "true", "rbac.authorization.k8s.io/aggregate-to-edit": "true",
				"rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{tend}, Resources: []string{"proposals", "approvals", "improvementschedules", "improvementruns"}, Verbs: read},
			},
		},
		{
			// Aggregated into the built-in edit and admin roles: who may
			// edit a namespace may propose changes there (through the MCP
			// server; the gate decides them like any other) and manage its
			// improvement schedules and runs (tend runs start|stop).
			// Approving is not part of edit: it is tend:approver's alone.
			ObjectMeta: metav1.ObjectMeta{Name: "tend:aggregate-to-edit", Labels: map[string]string{
				"rbac.authorization.k8s.io/aggregate-to-edit": "true", "rbac.authorization.k8s.io/aggregate-to-admin": "true"}},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{tend}, Resources: []string{"proposals"}, Verbs: []string{"propose"}},
				{APIGroups: []string{tend}, Resources: []string{"improvementschedules", "improvementruns"}, Verbs: []string{"create", "update", "patch", "delete"}},
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Name: "tend:approver"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{tend}, Resources: []string{"proposals"}, Verbs: append([]string{"approve"}, read...)},
				{APIGroups: []string{tend}, Resources: []string{"proposals/cluster"}, Verbs: []string{"approve"}},
				{APIGroups: []string{tend}, Resources: []string{"approvals"}, Verbs: append([]string{"create"}, read...)},
			},
		},
	}
}

func rbacObjects() []client.Object {
	objs := []client.Object{&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}}}
	for _, sa := range []string{ControllerAccount, SensorAccount, MCPAccount, AgentAccount} {
		objs = append(objs, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: SystemNamespace, Name: sa}})
	}
	for _, r := range ClusterRoles() {
		objs = append(objs, r)
	}
	for role, sa := range map[string]string{"tend:controller": ControllerAccount, "tend:sensor": SensorAccount, "tend:mcp": MCPAccount, "tend:agent": AgentAccount} {
		objs = append(objs, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: SystemNamespace, Name: sa}},
		})
	}
	// The controller keeps the gate's switches, the audit checkpoint and
	// its leader lease in tend's namespace, and nowhere else.
	_, role := controllerRBAC(SystemNamespace)
	objs = append(objs,
		role,
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: SystemNamespace, Name: "tend:controller"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tend:controller"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: SystemNamespace, Name: ControllerAccount}},
		},
		// The sensor's leader Lease.
		SensorRole(SystemNamespace),
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: SystemNamespace, Name: "tend:sensor"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tend:sensor"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: SystemNamespace, Name: SensorAccount}},
		},
	)
	return append(objs,
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "tend:approver"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "tend:approver"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: ApproverGroup}},
		},
	)
}

// controllerRBAC is the controller's ClusterRole and its Role in namespace
// ns, as controller-gen generated them from the markers next to the code
// (controllers/rbac). role.yaml is embedded at build time and its parse is
// tested, so a failure here is a build defect.
func controllerRBAC(ns string) (*rbacv1.ClusterRole, *rbacv1.Role) {
	cr, role, err := rbac.Controller(ns)
	if err != nil {
		panic(err)
	}
	return cr, role
}

// SensorRole is the sensor's Role in tend's namespace ns: its leader
// Lease, and the Events leader election records.
func SensorRole(ns string) *rbacv1.Role {
	return &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tend:sensor"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		},
	}
}

// ControllerRole is the controller's Role in tend's namespace ns.
func ControllerRole(ns string) *rbacv1.Role {
	_, role := controllerRBAC(ns)
	return role
}

// AdmissionPolicies are the ValidatingAdmissionPolicies, with their
// bindings, that make the API server the judge of who proposes and who
// approves, for tend installed in namespace system. The local stack
// installs them; `make generate` writes them into the chart.
func AdmissionPolicies(system string) []client.Object {
	return append(approvalAdmission(system), proposalAdmission(system)...)
}

// approvalAdmission makes the API server the judge of who approves: the
// recorded approver must be the authenticated user, that user must hold the
// verb `approve` on the proposal, and the groups recorded, if any, must be
// the user's authenticated groups (compared as sets: nothing promises an
// order).
func approvalAdmission(system string) []client.Object {
	return []client.Object{
		&admissionv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: approvalPolicyName},
			Spec: admissionv1.ValidatingAdmissionPolicySpec{
				FailurePolicy: ptr.To(admissionv1.Fail),
				MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionv1.RuleWithOperations{
						Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
						Rule: admissionv1.Rule{APIGroups: []string{tendv1.GroupVersion.Group}, APIVersions: []string{"*"},
							Resources: []string{"approvals"}},
					},
				}}},
				Validations: []admissionv1.Validation{
					{
						Expression: "object.spec.approver == request.userInfo.username",
						Message:    "spec.approver must be the user creating the Approval",
						Reason:     ptr.To(metav1.StatusReasonForbidden),
					},
					{
						Expression: "authorizer.group('tend.dev').resource('proposals').namespace(object.metadata.namespace).name(object.spec.proposal).check('approve').allowed()",
						Message:    "approving needs the verb approve on this proposal (RBAC: verbs [approve] on proposals.tend.dev)",
						Reason:     ptr.To(metav1.StatusReasonForbidden),
					},
					{
						Expression: "!has(object.spec.approverGroups) || (object.spec.approverGroups.all(g, g in request.userInfo.groups) && request.userInfo.groups.all(g, g in object.spec.approverGroups))",
						Message:    "spec.approverGroups must be the groups the API server authenticated",
						Reason:     ptr.To(metav1.StatusReasonForbidden),
					},
					{
						// Proposals in the system namespace act on cluster-scoped
						// objects (nodes): approving them is a cluster-wide right.
						Expression: "object.metadata.namespace != '" + system + "' || authorizer.group('tend.dev').resource('proposals').subresource('cluster').check('approve').allowed()",
						Message:    "approving a proposal for a cluster-scoped object needs the verb approve on proposals/cluster (tend.dev) cluster-wide, through a ClusterRoleBinding",
						Reason:     ptr.To(metav1.StatusReasonForbidden),
					},
				},
			},
		},
		&admissionv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: approvalPolicyName},
			Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        approvalPolicyName,
				ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			},
		},
	}
}

// proposalAdmission makes the API server the judge of who proposes and
// what a proposal may reach:
//   - the proposer recorded is the authenticated creator, with the groups
//     the API server authenticated; only a relay (a creator holding the verb
//     relay on proposals, which tend's MCP server has) may name another
//     proposer, and then names itself in spec.proposer.via; a relayed
//     service account proposer must itself hold the verb propose where the
//     proposal acts, for the proposal's action (the resource name: a role
//     that lists actions as resourceNames narrows what it may propose);
//   - a proposal acts only on its own namespace: its target is in the
//     proposal's namespace, or is cluster-scoped and the proposal is in
//     tend's system namespace;
//   - proposing a change to a cluster-scoped object (a node) needs the
//     right cluster-wide: create (or, relayed, propose) on the subresource
//     proposals/cluster through a ClusterRoleBinding, which grants nothing
//     in any namespace.
func proposalAdmission(system string) []client.Object {
	targetNS := "(has(object.spec.target.namespace) && object.spec.target.namespace != '')"
	saProposer := "object.spec.proposer.username.startsWith('system:serviceaccount:') && object.spec.proposer.username.split(':').size() == 4"
	sa := "authorizer.serviceAccount(object.spec.proposer.username.split(':')[2], object.spec.proposer.username.split(':')[3]).group('tend.dev').resource('proposals')"
	return []client.Object{
		&admissionv1.ValidatingAdmissionPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: proposalPolicyName},
			Spec: admissionv1.ValidatingAdmissionPolicySpec{
				FailurePolicy: ptr.To(admissionv1.Fail),
				MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
					RuleWithOperations: admissionv1.RuleWithOperations{
						Operations: []admissionv1.OperationType{admissionv1.Create},
						Rule: admissionv1.Rule{APIGroups: []string{tendv1.GroupVersion.Group}, APIVersions: []string{"*"},
							Resources: []string{"proposals"}},
					},
				}}},
				Variables: []admissionv1.Variable{
					{Name: "relay", Expression: "authorizer.group('tend.dev').resource('proposals').namespace(object.metadata.namespace).check('relay').allowed()"},
					{Name: "via", Expression: "has(object.spec.proposer.via) ? object.spec.proposer.via : ''"},
				},
				Validations: []admissionv1.Validation{
					{
						Expression: "variables.relay || (object.spec.proposer.username == request.userInfo.username && variables.via == '')",
						Message:    "spec.proposer must be the user creating the Proposal; only a relay (verb relay on proposals, tend's MCP server) may propose on another's behalf",
						Reason:     ptr.To(metav1.StatusReasonForbidden),
					},
					{
						Expression: "variables.relay || !has(object.spec.proposer.groups) || (object.spec.proposer.groups.all(g, g in request.userInfo.groups) && request.userInfo.groups.all(g, g in object.spec.proposer.groups))",
						Message:    "spec.proposer.groups must be the groups the API server authenticated",
						Reason:     ptr.To(metav1.StatusReasonForbidden),
					},
					{
						Expression: "!variables.relay || variables.via == request.userInfo.username",
						Message:    "a relayed proposal names its relay, the user creating it, in spec.proposer.via",
						Reason:     ptr.To(metav1.StatusReasonForbidden),
					},
					{
						Expression: "!variables.relay || !(" + saProposer + ") || (" + targetNS + " ? " + sa + ".namespace(object.metadata.namespace).name(object.spec.action).check('propose').allowed() : " + sa + ".subresource('cluster').name(object.spec.action).check('propose').allowed())",
						Message:    "the service account named as proposer may not propose this action here (RBAC: verb propose on proposals.tend.dev, with the action as resource name when the role lists resourceNames)",
						Reason:     ptr.To(metav1.StatusReasonForbidden),
					},
					{
						Expression: targetNS + " ? object.spec.target.namespace == object.metadata.namespace : object.metadata.namespace == '" + system + "'",
						Message:    "a proposal acts only on its own namespace: its target must be in the proposal's namespace; proposals for cluster-scoped targets live in " + system,
						Reason:     ptr.To(metav1.StatusReasonForbidden),
					},
					{
						Expression: targetNS + " || variables.relay || authorizer.group('tend.dev').resource('proposals').subresource('cluster').check('create').allowed()",
						Message:    "proposing a change to a cluster-scoped object needs the verb create on proposals/cluster (tend.dev) cluster-wide, through a ClusterRoleBinding",
						Reason:     ptr.To(metav1.StatusReasonForbidden),
					},
				},
			},
		},
		&admissionv1.ValidatingAdmissionPolicyBinding{
			ObjectMeta: metav1.ObjectMeta{Name: proposalPolicyName},
			Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
				PolicyName:        proposalPolicyName,
				ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			},
		},
	}
}
