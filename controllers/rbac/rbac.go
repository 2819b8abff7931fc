package rbac

import (
	_ "embed"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// roleYAML is controller-gen's output: the controller's ClusterRole, and
// its Role in tend's namespace (tend-system in the markers).
//
//go:embed role.yaml
var roleYAML string

// Controller returns the controller's ClusterRole and its Role in
// namespace ns, which replaces the namespace the markers name.
func Controller(ns string) (*rbacv1.ClusterRole, *rbacv1.Role, error) {
	var cr *rbacv1.ClusterRole
	var role *rbacv1.Role
	for _, doc := range strings.Split(roleYAML, "\n---\n") {
		doc = strings.TrimPrefix(strings.TrimSpace(doc), "---")
		if strings.TrimSpace(doc) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, nil, fmt.Errorf("rbac: role.yaml: %w", err)
		}
		switch tm.Kind {
		case "ClusterRole":
			cr = &rbacv1.ClusterRole{}
			if err := yaml.UnmarshalStrict([]byte(doc), cr); err != nil {
				return nil, nil, fmt.Errorf("rbac: role.yaml: %w", err)
			}
		case "Role":
			role = &rbacv1.Role{}
			if err := yaml.UnmarshalStrict([]byte(doc), role); err != nil {
				return nil, nil, fmt.Errorf("rbac: role.yaml: %w", err)
			}
			role.Namespace = ns
		default:
			return nil, nil, fmt.Errorf("rbac: role.yaml holds a %q", tm.Kind)
		}
	}
	if cr == nil || role == nil {
		return nil, nil, fmt.Errorf("rbac: role.yaml lacks the controller's ClusterRole or Role; run make generate")
	}
	cr.TypeMeta, role.TypeMeta = metav1.TypeMeta{}, metav1.TypeMeta{}
	return cr, role, nil
}
