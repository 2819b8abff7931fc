package rbac

import (
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
)

func allows(rules []rbacv1.PolicyRule, group, resource, verb string) bool {
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) {
			return true
		}
	}
	return false
}

func TestController(t *testing.T) {
	cr, role, err := Controller("ops")
	if err != nil {
		t.Fatal(err)
	}
	if cr.Name != "tend:controller" || role.Name != "tend:controller" || role.Namespace != "ops" {
		t.Errorf("ClusterRole %q, Role %s/%s; want tend:controller, ops/tend:controller", cr.Name, role.Namespace, role.Name)
	}
	// A sample of what the markers next to the actions ask for.
	for _, want := range []struct{ group, resource, verb string }{
		{"apps", "deployments", "patch"},
		{"", "pods/eviction", "create"},
		{"", "nodes", "update"},
		{"policy", "poddisruptionbudgets", "list"},
		{"batch", "jobs", "create"},
		{"autoscaling", "horizontalpodautoscalers", "update"},
		{"tend.dev", "proposals/status", "update"},
	} {
		if !allows(cr.Rules, want.group, want.resource, want.verb) {
			t.Errorf("the ClusterRole does not allow %s %s.%s", want.verb, want.resource, want.group)
		}
	}
	// Never anything the controller's code does not need.
	for _, never := range []struct{ group, resource, verb string }{
		{"", "secrets", "get"},
		{"", "configmaps", "update"},
		{"rbac.authorization.k8s.io", "clusterroles", "create"},
		{"tend.dev", "proposals", "create"},
		{"tend.dev", "approvals", "create"},
	} {
		if allows(cr.Rules, never.group, never.resource, never.verb) {
			t.Errorf("the ClusterRole allows %s %s.%s", never.verb, never.resource, never.group)
		}
	}
	if !allows(role.Rules, "", "configmaps", "update") || !allows(role.Rules, "coordination.k8s.io", "leases", "update") {
		t.Errorf("the Role %+v does not hold the gate state's ConfigMaps and the leader lease", role.Rules)
	}
	for _, r := range cr.Rules {
		if slices.Contains(r.Verbs, "*") || slices.Contains(r.Resources, "*") || slices.Contains(r.APIGroups, "*") {
			t.Errorf("wildcard rule %+v", r)
		}
	}
}
