package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"slices"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
)

// Cache lifetimes of authorization answers, after the kube-apiserver's
// webhook authorizer: an allowed answer is remembered longer than a denied
// one, so that a right granted takes effect within seconds and a right
// revoked within AuthorizedTTL.
const (
	DefaultAuthorizedTTL = 10 * time.Second
	DefaultDeniedTTL     = 2 * time.Second
	// MaxDeniedTTL bounds DeniedTTL: a caller just granted a right is never
	// refused for longer than this.
	MaxDeniedTTL = 5 * time.Second
	// authzCacheSize bounds the answers remembered; the least recently
	// used goes first.
	authzCacheSize = 8192
)

// CachingAuthorizer remembers the answers of another Authorizer for a short
// time, per identity and request. Only answers are remembered (allowed, or
// ErrForbidden); a failure to ask is not, so the next call asks again.
type CachingAuthorizer struct {
	next                     Authorizer
	authorizedTTL, deniedTTL time.Duration
	answers                  *cache.LRUExpireCache
}

var _ Authorizer = (*CachingAuthorizer)(nil)

// NewCachingAuthorizer caches next's answers: allowed ones for authorized,
// denied ones for denied (at most MaxDeniedTTL). A zero TTL takes its
// default; a negative one turns that kind of caching off.
func NewCachingAuthorizer(next Authorizer, authorized, denied time.Duration) *CachingAuthorizer {
	return newCachingAuthorizer(next, authorized, denied, clock.RealClock{})
}

func newCachingAuthorizer(next Authorizer, authorized, denied time.Duration, clk clock.Clock) *CachingAuthorizer {
	if authorized == 0 {
		authorized = DefaultAuthorizedTTL
	}
	if denied == 0 {
		denied = DefaultDeniedTTL
	}
	return &CachingAuthorizer{next: next, authorizedTTL: authorized, deniedTTL: min(denied, MaxDeniedTTL), answers: cache.NewLRUExpireCacheWithClock(authzCacheSize, clk)}
}

type authzAnswer struct{ err error }

// Authorize implements Authorizer.
func (a *CachingAuthorizer) Authorize(ctx context.Context, id Identity, attrs authzv1.ResourceAttributes) error {
	key := authzKey(id, attrs)
	if v, ok := a.answers.Get(key); ok {
		return v.(authzAnswer).err
	}
	err := a.next.Authorize(ctx, id, attrs)
	switch {
	case err == nil && a.authorizedTTL > 0:
		a.answers.Add(key, authzAnswer{}, a.authorizedTTL)
	case errors.Is(err, ErrForbidden) && a.deniedTTL > 0:
		a.answers.Add(key, authzAnswer{err: err}, a.deniedTTL)
	}
	return err
}

// authzKey identifies a request: every field of the identity and of the
// attributes, each length-prefixed so no two requests share a key.
func authzKey(id Identity, attrs authzv1.ResourceAttributes) [32]byte {
	h := sha256.New()
	count := func(n int) {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		h.Write(b[:])
	}
	field := func(s string) {
		count(len(s))
		h.Write([]byte(s))
	}
	field(id.Username)
	field(id.UID)
	groups := slices.Clone(id.Groups)
	slices.Sort(groups)
	count(len(groups))
	for _, g := range groups {
		field(g)
	}
	keys := make([]string, 0, len(id.Extra))
	for k := range id.Extra {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	count(len(keys))
	for _, k := range keys {
		field(k)
		count(len(id.Extra[k]))
		for _, v := range id.Extra[k] {
			field(v)
		}
	}
	for _, s := range []string{attrs.Namespace, attrs.Verb, attrs.Group, attrs.Version, attrs.Resource, attrs.Subresource, attrs.Name} {
		field(s)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
