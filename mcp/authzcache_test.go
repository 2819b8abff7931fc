package mcp_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/tendops/tend/mcp"
)

// rbac is an authorizer whose rules the test changes, as an administrator
// changes RoleBindings; it can also fail to answer, as an unreachable API
// server does.
type rbac struct {
	mu      sync.Mutex
	allowed map[string]bool // "user verb resource"
	down    bool
}

func (r *rbac) set(rule string, allowed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.allowed[rule] = allowed
}

func (r *rbac) Authorize(_ context.Context, id mcp.Identity, attrs authzv1.ResourceAttributes) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return errors.New("failed to review access: connection refused")
	}
	rule := id.Username + " " + attrs.Verb + " " + attrs.Resource
	for _, g := range id.Groups {
		if r.allowed[g+" "+attrs.Verb+" "+attrs.Resource] {
			return nil
		}
	}
	if !r.allowed[rule] {
		return fmt.Errorf("%w: %s", mcp.ErrForbidden, rule)
	}
	return nil
}

func TestCachingAuthorizer(t *testing.T) {
	get := authzv1.ResourceAttributes{Verb: "get", Resource: "pods", Namespace: "team", Name: "web-1"}
	alice := mcp.Identity{Username: "alice"}
	allowed := func(a mcp.Authorizer, id mcp.Identity) bool {
		t.Helper()
		err := a.Authorize(t.Context(), id, get)
		if err != nil && !errors.Is(err, mcp.ErrForbidden) {
			t.Fatalf("Authorize: %v", err)
		}
		return err == nil
	}

	t.Run("a granted right takes effect within the denied TTL, a revoked one within the authorized TTL", func(t *testing.T) {
		rules := &rbac{allowed: map[string]bool{}}
		clk := clocktesting.NewFakeClock(time.Now())
		a := mcp.NewCachingAuthorizerWithClock(rules, 10*time.Second, 2*time.Second, clk)
		if allowed(a, alice) {
			t.Fatal("allowed before any grant")
		}
		rules.set("alice get pods", true)
		if allowed(a, alice) {
			t.Error("the denial was not remembered")
		}
		clk.Step(2*time.Second + time.Millisecond)
		if !allowed(a, alice) {
			t.Error("still denied after the denied TTL")
		}
		rules.set("alice get pods", false)
		clk.Step(9 * time.Second)
		if !allowed(a, alice) {
			t.Error("the allowed answer was not remembered")
		}
		clk.Step(time.Second + time.Millisecond)
		if allowed(a, alice) {
			t.Error("still allowed after the authorized TTL")
		}
	})

	t.Run("a denial is never remembered longer than MaxDeniedTTL", func(t *testing.T) {
		rules := &rbac{allowed: map[string]bool{}}
		clk := clocktesting.NewFakeClock(time.Now())
		a := mcp.NewCachingAuthorizerWithClock(rules, time.Hour, time.Hour, clk)
		_ = allowed(a, alice)
		rules.set("alice get pods", true)
		clk.Step(mcp.MaxDeniedTTL + time.Millisecond)
		if !allowed(a, alice) {
			t.Errorf("denied %s after the grant", mcp.MaxDeniedTTL)
		}
	})

	t.Run("answers are per identity and request", func(t *testing.T) {
		rules := &rbac{allowed: map[string]bool{"alice get pods": true}}
		a := mcp.NewCachingAuthorizerWithClock(rules, time.Hour, time.Second, clocktesting.NewFakeClock(time.Now()))
		if !allowed(a, alice) {
			t.Fatal("alice denied")
		}
		for _, id := range []mcp.Identity{{Username: "bob"}, {Username: "alice-"}, {Username: "alic", Groups: []string{"e"}}} {
			if allowed(a, id) {
				t.Errorf("%+v took alice's answer", id)
			}
		}
		if err := a.Authorize(t.Context(), alice, authzv1.ResourceAttributes{Verb: "delete", Resource: "pods", Namespace: "team", Name: "web-1"}); !errors.Is(err, mcp.ErrForbidden) {
			t.Errorf("delete took get's answer: %v", err)
		}
		// A group's right is its members', and only theirs.
		rules.set("ops get pods", true)
		if !allowed(a, mcp.Identity{Username: "carol", Groups: []string{"ops"}}) || allowed(a, mcp.Identity{Username: "carol"}) {
			t.Error("group answers mixed up")
		}
	})

	t.Run("a failure to ask is not remembered", func(t *testing.T) {
		rules := &rbac{allowed: map[string]bool{"alice get pods": true}, down: true}
		a := mcp.NewCachingAuthorizerWithClock(rules, time.Hour, time.Hour, clocktesting.NewFakeClock(time.Now()))
		if err := a.Authorize(t.Context(), alice, get); err == nil || errors.Is(err, mcp.ErrForbidden) {
			t.Fatalf("Authorize while down = %v, want the failure", err)
		}
		rules.mu.Lock()
		rules.down = false
		rules.mu.Unlock()
		if !allowed(a, alice) {
			t.Error("the failure was remembered")
		}
	})
}
