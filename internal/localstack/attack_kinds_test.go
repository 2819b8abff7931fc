package localstack

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/mcp/wire"
)

// Kind spelling: a caller allowed to read Secrets asks the MCP server for
// one by every spelling the API server resolves (the kind in any case, the
// plural, the singular resource name) and lists them: the value never
// comes back, plain or base64, and every spelling names the same kind.
func TestAttackKindSpellingNeverRevealsSecrets(t *testing.T) {
	st := attackStack(t)
	g := newG(t)
	ctx := t.Context()
	ns := attackNamespace(t, st, nil)
	const value = "s3cr3t-value-that-must-never-leave"
	g.Expect(st.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db"},
		StringData: map[string]string{"password": value},
	})).To(Succeed())

	// A reader with every read right in the namespace, Secrets included.
	g.Expect(st.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"}})).To(Succeed())
	g.Expect(st.Client.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "read-all"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"get", "list"}}}})).To(Succeed())
	g.Expect(st.Client.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-all"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: "reader"}}})).To(Succeed())
	tools, err := agents.DialTools(ctx, st.MCPURL, "attack-reader", serviceAccountToken(st.Client, ns, "reader"))
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = tools.Close() })

	leaked := func(v any) bool {
		b, _ := json.Marshal(v)
		s := string(b)
		return strings.Contains(s, value) || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte(value)))
	}
	for _, kind := range []string{"Secret", "secret", "SECRET", "sEcReT", "secrets", "Secrets"} {
		var got wire.Resource
		g.Expect(tools.Call(ctx, wire.ToolGetResource, wire.GetResourceArgs{APIVersion: "v1", Kind: kind, Namespace: ns, Name: "db"}, &got)).To(Succeed(), kind)
		g.Expect(leaked(got)).To(BeFalse(), "get_resource kind %q returned the secret's value", kind)
		g.Expect(got.Object["kind"]).To(Equal("Secret"), kind)
		g.Expect(got.Object["data"]).To(HaveKeyWithValue("password", "<redacted>"), kind)

		var list wire.ResourceList
		g.Expect(tools.Call(ctx, wire.ToolListResources, wire.ListResourcesArgs{APIVersion: "v1", Kind: kind, Namespace: ns}, &list)).To(Succeed(), kind)
		g.Expect(list.Kind).To(Equal("Secret"), kind)
		g.Expect(list.Items).NotTo(BeEmpty(), kind)
		g.Expect(leaked(list)).To(BeFalse(), "list_resources kind %q returned the secret's value", kind)
	}
}
