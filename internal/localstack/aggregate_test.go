package localstack

import (
	"context"
	"fmt"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestBuiltInRolesIncludeTend binds users to the built-in view and edit
// roles in a namespace and asks the API server what they may do there:
// view reads proposals, approvals and improvement schedules; edit also
// proposes and manages schedules; neither approves, which stays
// tend:approver's.
func TestBuiltInRolesIncludeTend(t *testing.T) {
	st := attackStack(t)
	ctx := t.Context()
	ns := "aggregate-" + fmt.Sprint(time.Now().UnixNano()%100000)
	if err := st.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = st.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	})
	for user, role := range map[string]string{"viewer": "view", "editor": "edit"} {
		if err := st.Client.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	may := func(user, verb, resource string) (bool, error) {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: user,
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Group: "tend.dev", Resource: resource, Verb: verb}}}
		if err := st.Client.Create(ctx, sar); err != nil {
			return false, err
		}
		return sar.Status.Allowed, nil
	}
	cases := []struct {
		user, verb, resource string
		want                 bool
	}{
		{"viewer", "list", "proposals", true},
		{"viewer", "get", "approvals", true},
		{"viewer", "watch", "improvementschedules", true},
		{"viewer", "list", "improvementruns", true},
		{"viewer", "create", "improvementruns", false},
		{"viewer", "propose", "proposals", false},
		{"viewer", "create", "improvementschedules", false},
		{"editor", "list", "proposals", true},
		{"editor", "propose", "proposals", true},
		{"editor", "update", "improvementschedules", true},
		{"editor", "create", "improvementruns", true},
		{"editor", "approve", "proposals", false},
		{"editor", "create", "approvals", false},
		{"editor", "create", "proposals", false},
	}
	// The aggregation controller fills the built-in roles shortly after
	// the labelled roles exist.
	deadline := time.Now().Add(time.Minute)
	for {
		var wrong []string
		for _, c := range cases {
			got, err := may(c.user, c.verb, c.resource)
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				wrong = append(wrong, fmt.Sprintf("%s %s %s: allowed=%v, want %v", c.user, c.verb, c.resource, got, c.want))
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the built-in roles do not include tend's as they should:\n%v", wrong)
		}
		time.Sleep(time.Second)
	}
}
