package mcp

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ErrUnauthenticated means the caller presented no valid credentials.
var ErrUnauthenticated = errors.New("mcp: unauthenticated")

// ErrForbidden means the caller may not make this call.
var ErrForbidden = errors.New("mcp: forbidden")

// Identity is an authenticated caller as the Kubernetes API server knows it.
type Identity struct {
	Username string
	UID      string
	Groups   []string
	Extra    map[string]authzv1.ExtraValue
}

// Authenticator turns a bearer token into an identity.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// Authorizer decides whether an identity may act on a resource.
type Authorizer interface {
	Authorize(ctx context.Context, id Identity, attrs authzv1.ResourceAttributes) error
}

// TokenReviewAuthenticator authenticates tokens with the API server's
// TokenReview API and remembers the answers briefly, as the kube-apiserver's
// webhook token authenticator does: a valid token for TTL, an invalid one
// for DeniedTTL. A failure to ask is not remembered.
type TokenReviewAuthenticator struct {
	Client client.Client
	// TTL of a cached positive review; 10s when zero, none when negative.
	TTL time.Duration
	// DeniedTTL of a cached negative review; 2s when zero (at most
	// MaxDeniedTTL), none when negative.
	DeniedTTL time.Duration

	once    sync.Once
	answers *cache.LRUExpireCache
}

type tokenAnswer struct {
	id  Identity
	err error
}

var _ Authenticator = (*TokenReviewAuthenticator)(nil)

// Authenticate implements Authenticator.
func (a *TokenReviewAuthenticator) Authenticate(ctx context.Context, token string) (Identity, error) {
	if token == "" {
		return Identity{}, ErrUnauthenticated
	}
	a.once.Do(func() { a.answers = cache.NewLRUExpireCache(authzCacheSize) })
	key := sha256.Sum256([]byte(token))
	if v, ok := a.answers.Get(key); ok {
		ans := v.(tokenAnswer)
		return ans.id, ans.err
	}
	tr := &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: token}}
	if err := a.Client.Create(ctx, tr); err != nil {
		return Identity{}, fmt.Errorf("failed to review token: %w", err)
	}
	if !tr.Status.Authenticated {
		err := fmt.Errorf("%w: %s", ErrUnauthenticated, tr.Status.Error)
		if ttl := a.DeniedTTL; ttl >= 0 {
			if ttl == 0 {
				ttl = DefaultDeniedTTL
			}
			a.answers.Add(key, tokenAnswer{err: err}, min(ttl, MaxDeniedTTL))
		}
		return Identity{}, err
	}
	id := Identity{Username: tr.Status.User.Username, UID: tr.Status.User.UID, Groups: tr.Status.User.Groups}
	if len(tr.Status.User.Extra) > 0 {
		id.Extra = make(map[string]authzv1.ExtraValue, len(tr.Status.User.Extra))
		for k, v := range tr.Status.User.Extra {
			id.Extra[k] = authzv1.ExtraValue(v)
		}
	}
	if ttl := a.TTL; ttl >= 0 {
		if ttl == 0 {
			ttl = 10 * time.Second
		}
		a.answers.Add(key, tokenAnswer{id: id}, ttl)
	}
	return id, nil
}

// SubjectAccessReviewAuthorizer asks the API server, for every call, whether
// the caller may perform it.
type SubjectAccessReviewAuthorizer struct {
	Client client.Client
}

var _ Authorizer = (*SubjectAccessReviewAuthorizer)(nil)

// Authorize implements Authorizer.
func (a *SubjectAccessReviewAuthorizer) Authorize(ctx context.Context, id Identity, attrs authzv1.ResourceAttributes) error {
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		ResourceAttributes: &attrs,
		User:               id.Username,
		UID:                id.UID,
		Groups:             id.Groups,
		Extra:              id.Extra,
	}}
	if err := a.Client.Create(ctx, sar); err != nil {
		return fmt.Errorf("failed to review access: %w", err)
	}
	if !sar.Status.Allowed || sar.Status.Denied {
		return forbidden(id, attrs)
	}
	return nil
}

// refuseTokens authenticates no token.
type refuseTokens struct{}

func (refuseTokens) Authenticate(context.Context, string) (Identity, error) {
	return Identity{}, ErrUnauthenticated
}

type identityKey struct{}

func withIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the authenticated caller of a tool call.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok && id.Username != ""
}

// authenticate wraps an HTTP handler: no valid bearer token, no service.
// The challenge points at the protected resource metadata (RFC 9728),
// which says what kind of token to bring.
func authenticate(a Authenticator, metadata func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		challenge := fmt.Sprintf(`Bearer realm="tend", resource_metadata=%q`, metadata(r))
		// The scheme is case-insensitive (RFC 6750, RFC 9110).
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
			w.Header().Set("WWW-Authenticate", challenge)
			http.Error(w, "missing bearer token", http.StatusUnauthorized)
			return
		}
		id, err := a.Authenticate(r.Context(), strings.TrimSpace(token))
		if err != nil {
			w.Header().Set("WWW-Authenticate", challenge+`, error="invalid_token"`)
			status := http.StatusUnauthorized
			if !errors.Is(err, ErrUnauthenticated) {
				status = http.StatusServiceUnavailable
			}
			http.Error(w, "authentication failed", status)
			return
		}
		next.ServeHTTP(w, r.WithContext(withIdentity(r.Context(), id)))
	})
}

// Self returns the identity the API server authenticates c's credentials
// as, with the SelfSubjectReview API. `tend mcp --stdio` serves one user, the
// owner of the kubeconfig, and this is how it learns who that is.
func Self(ctx context.Context, c client.Client) (Identity, error) {
	r := &authnv1.SelfSubjectReview{}
	if err := c.Create(ctx, r); err != nil {
		return Identity{}, fmt.Errorf("failed to ask the API server who the kubeconfig user is: %w", err)
	}
	u := r.Status.UserInfo
	if u.Username == "" {
		return Identity{}, fmt.Errorf("%w: the API server did not name the kubeconfig user", ErrUnauthenticated)
	}
	id := Identity{Username: u.Username, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		id.Extra = make(map[string]authzv1.ExtraValue, len(u.Extra))
		for k, v := range u.Extra {
			id.Extra[k] = authzv1.ExtraValue(v)
		}
	}
	return id, nil
}

// SelfAuthorizer asks the API server, with SelfSubjectAccessReview, whether
// the client's own credentials may perform a call. It serves `tend mcp
// --stdio`, where the client acts as the one caller; it refuses any other
// identity.
type SelfAuthorizer struct {
	Client client.Client
	// Self is the identity of Client's credentials.
	Self Identity
}

var _ Authorizer = (*SelfAuthorizer)(nil)

// Authorize implements Authorizer.
func (a *SelfAuthorizer) Authorize(ctx context.Context, id Identity, attrs authzv1.ResourceAttributes) error {
	if id.Username != a.Self.Username {
		return fmt.Errorf("%w: this server acts only for %s, not %s", ErrForbidden, a.Self.Username, id.Username)
	}
	r := &authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}}
	if err := a.Client.Create(ctx, r); err != nil {
		return fmt.Errorf("failed to review access: %w", err)
	}
	if !r.Status.Allowed || r.Status.Denied {
		return forbidden(id, attrs)
	}
	return nil
}

func forbidden(id Identity, attrs authzv1.ResourceAttributes) error {
	what := attrs.Verb + " " + attrs.Resource
	if attrs.Subresource != "" {
		what += "/" + attrs.Subresource
	}
	if attrs.Group != "" {
		what += "." + attrs.Group
	}
	if attrs.Namespace != "" {
		what += " in namespace " + attrs.Namespace
	}
	return fmt.Errorf("%w: %s may not %s", ErrForbidden, id.Username, what)
}
