package oracle

import rbacv1 "k8s.io/api/rbac/v1"

type rbacRule struct{ verbs, resources, groups []string }

func rules(rs []rbacv1.PolicyRule) []rbacRule {
	out := make([]rbacRule, len(rs))
	for i, r := range rs {
		out[i] = rbacRule{verbs: r.Verbs, resources: r.Resources, groups: r.APIGroups}
	}
	return out
}
