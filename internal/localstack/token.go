package localstack

import (
	"context"
	"fmt"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// serviceAccountToken returns a token source for a service account, using
// the TokenRequest API and renewing the token well before it expires.
func serviceAccountToken(c client.Client, namespace, name string) func(ctx context.Context) (string, error) {
	var (
		mu      sync.Mutex
		token   string
		renewAt time.Time
	)
	return func(ctx context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if token != "" && time.Now().Before(renewAt) {
			return token, nil
		}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
		tr := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
		if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
			return "", fmt.Errorf("failed to request a token for %s/%s: %w", namespace, name, err)
		}
		token = tr.Status.Token
		life := time.Until(tr.Status.ExpirationTimestamp.Time)
		renewAt = time.Now().Add(life * 8 / 10)
		return token, nil
	}
}
