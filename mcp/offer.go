package mcp

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	authzv1 "k8s.io/api/authorization/v1"

	mcpgo "github.com/mark3labs/mcp-go/mcp"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// offerTTL is how long the tools offered to one identity are remembered.
const offerTTL = 30 * time.Second

// offerCache remembers, per identity, which actions it may propose.
type offerCache struct {
	mu      sync.Mutex
	entries map[string]offerEntry
}

type offerEntry struct {
	at      time.Time
	allowed map[tendv1.Action]bool
}

// offered filters tools/list: a caller is offered the propose tool of an
// action only if it may propose that action, as the call itself is
// checked (verb propose through a relay, else create, on
// proposals.tend.dev named by the action; proposals/cluster, cluster-wide,
// for an action on cluster-scoped objects), cluster-wide or in one of
// Options.ToolNamespaces. A role that lists actions as resourceNames so
// narrows what an agent sees and may do. Read tools are always listed;
// each call is still checked on its own.
func (s *Server) offered(ctx context.Context, tools []mcpgo.Tool) []mcpgo.Tool {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return slices.DeleteFunc(tools, func(t mcpgo.Tool) bool { return s.toolActions[t.Name] != "" })
	}
	allowed := s.allowedActions(ctx, id)
	return slices.DeleteFunc(tools, func(t mcpgo.Tool) bool {
		a := s.toolActions[t.Name]
		return a != "" && !allowed[a]
	})
}

// allowedActions asks the authorizer, once per identity and offerTTL, which
// actions id may propose.
func (s *Server) allowedActions(ctx context.Context, id Identity) map[tendv1.Action]bool {
	key := id.Username + "\n" + strings.Join(id.Groups, "\n")
	now := time.Now()
	s.offers.mu.Lock()
	if e, ok := s.offers.entries[key]; ok && now.Sub(e.at) < offerTTL {
		s.offers.mu.Unlock()
		return e.allowed
	}
	s.offers.mu.Unlock()

	verb := "create"
	if s.opts.Relay != "" {
		verb = "propose"
	}
	allowed := map[tendv1.Action]bool{}
	for _, info := range tendv1.Catalogue {
	check:
		for _, sub := range subresources(info) {
			namespaces := []string{""}
			if sub == "" {
				namespaces = append(namespaces, s.opts.ToolNamespaces...)
			}
			for _, ns := range namespaces {
				attrs := authzv1.ResourceAttributes{Verb: verb, Group: tendv1.GroupVersion.Group, Resource: "proposals",
					Subresource: sub, Namespace: ns, Name: string(info.Action)}
				if s.opts.Authorizer.Authorize(ctx, id, attrs) == nil {
					allowed[info.Action] = true
					break check
				}
			}
		}
	}
	s.offers.mu.Lock()
	defer s.offers.mu.Unlock()
	if s.offers.entries == nil || len(s.offers.entries) > 1024 {
		s.offers.entries = map[string]offerEntry{}
	}
	s.offers.entries[key] = offerEntry{at: now, allowed: allowed}
	return allowed
}

// subresources are where proposing an action is checked: proposals for
// namespaced targets, proposals/cluster for cluster-scoped ones.
func subresources(info tendv1.ActionInfo) []string {
	var out []string
	for _, t := range info.Targets {
		sub := ""
		if !t.Namespaced {
			sub = tendv1.ClusterScopedSubresource
		}
		if !slices.Contains(out, sub) {
			out = append(out, sub)
		}
	}
	return out
}

// disruptionFacts describes what the controller found the change takes
// down.
func disruptionFacts(d *tendv1.DisruptionFacts) string {
	msg := fmt.Sprintf("takes down %d ready pods at once (%d%% of a workload)", d.PodsAffected, d.Percent)
	if d.PDB != "" {
		msg += fmt.Sprintf("; PodDisruptionBudget %s allows %d disruptions now", d.PDB, d.PDBAllowed)
	}
	return msg
}
