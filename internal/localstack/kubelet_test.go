package localstack

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

// TestResolveEnv checks the kubelet's rules for a container's environment:
// envFrom first, then env, the last definition of a name winning; values
// from ConfigMaps; Secret values never disclosed; missing sources and keys
// are CreateContainerConfigError unless optional.
func TestResolveEnv(t *testing.T) {
	ns := "shop"
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "app"}, Data: map[string]string{"DATABASE_URL": "postgres://db:5432", "MODE": "prod"}}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "creds"}, Data: map[string][]byte{"PASSWORD": []byte("hunter2")}}
	c := fake.NewClientBuilder().WithScheme(Scheme()).WithObjects(cm, sec).Build()
	pod := func(env []corev1.EnvVar, from ...corev1.EnvFromSource) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web-1"},
			Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "web", Env: env, EnvFrom: from}}}}
	}
	s := func(v string) *string { return &v }
	cmRef := func(name, key string, optional bool) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: ptr.To(optional)}}
	}
	tests := []struct {
		name    string
		pod     *corev1.Pod
		want    map[string]*string
		wantErr string
	}{
		{"the last of two entries wins", pod([]corev1.EnvVar{{Name: "DATABASE_URL", Value: "postgres://db"}, {Name: "DATABASE_URL", Value: "postgres://db-old"}}),
			map[string]*string{"DATABASE_URL": s("postgres://db-old")}, ""},
		{"env overrides envFrom", pod([]corev1.EnvVar{{Name: "MODE", Value: "debug"}}, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}}),
			map[string]*string{"DATABASE_URL": s("postgres://db:5432"), "MODE": s("debug")}, ""},
		{"envFrom with a prefix, and a Secret's values undisclosed", pod(nil,
			corev1.EnvFromSource{Prefix: "APP_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "app"}}},
			corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}}}),
			map[string]*string{"APP_DATABASE_URL": s("postgres://db:5432"), "APP_MODE": s("prod"), "PASSWORD": nil}, ""},
		{"valueFrom a ConfigMap key, and $(VAR) expanded", pod([]corev1.EnvVar{{Name: "DB", ValueFrom: cmRef("app", "DATABASE_URL", false)}, {Name: "DSN", Value: "$(DB)/shop?x=$$(DB)"}}),
			map[string]*string{"DB": s("postgres://db:5432"), "DSN": s("postgres://db:5432/shop?x=$(DB)")}, ""},
		{"fieldRef", pod([]corev1.EnvVar{{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}}),
			map[string]*string{"POD": s("web-1")}, ""},
		{"a missing key", pod([]corev1.EnvVar{{Name: "DB", ValueFrom: cmRef("app", "db-url", false)}}), nil, "couldn't find key db-url in ConfigMap shop/app"},
		{"a missing optional key", pod([]corev1.EnvVar{{Name: "DB", ValueFrom: cmRef("app", "db-url", true)}}), map[string]*string{}, ""},
		{"a missing ConfigMap", pod([]corev1.EnvVar{{Name: "DB", ValueFrom: cmRef("gone", "x", false)}}), nil, `configmap "gone" not found`},
		{"a missing Secret", pod(nil, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "gone"}}}), nil, `secret "gone" not found`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveEnv(t.Context(), c, tt.pod)
			if tt.wantErr != "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || ce.Error() != tt.wantErr {
					t.Fatalf("error = %v, want a ConfigError %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got["web"]); diff != "" {
				t.Fatalf("env (-want +got):\n%s", diff)
			}
		})
	}
}
