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
	"github.com/tendops/tend/mcp/wire"
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
	// reads are the read tools with checks (readChecks) the identity may use.
	reads map[string]bool
}

// readChecks are the rights that make a read tool of use to a caller: any
// one of them, cluster-wide or in one of the namespaces tools are offered
// for. A read tool of any kind (list_resources, get_resource, get_events,
// get_telemetry) has none and is always offered; every call is checked on
// its own whatever was offered.
var readChecks = map[string]authzv1.ResourceAttributes{
	wire.ToolGetLogs:         {Verb: "get", Resource: "pods", Subresource: "log"},
	wire.ToolListProposals:   {Verb: "list", Group: tendv1.GroupVersion.Group, Resource: "proposals"},
	wire.ToolGetProposal:     {Verb: "get", Group: tendv1.GroupVersion.Group, Resource: "proposals"},
	wire.ToolExplainDecision: {Verb: "get", Group: tendv1.GroupVersion.Group, Resource: "proposals"},
	wire.ToolGetPolicies:     {Verb: "list", Group: tendv1.GroupVersion.Group, Resource: "gatepolicies"},
}

// clusterOnly are the read tools whose resource is cluster-scoped.
var clusterOnly = map[string]bool{wire.ToolGetPolicies: true}

// offered filters tools/list: a caller is offered the propose tool of an
// action only if it may propose that action, as the call itself is
// checked (verb propose through a relay, else create, on
// proposals.tend.dev named by the action; proposals/cluster, cluster-wide,
// for an action on cluster-scoped objects), cluster-wide or in one of
// Options.ToolNamespaces. A role that lists actions as resourceNames so
// narrows what an agent sees and may do. A read tool that needs a right
// (readChecks) is offered to a caller that holds it somewhere it could use
// it; each call is still checked on its own.
func (s *Server) offered(ctx context.Context, tools []mcpgo.Tool) []mcpgo.Tool {
	id, ok := IdentityFrom(ctx)
	if !ok {
		return slices.DeleteFunc(tools, func(t mcpgo.Tool) bool {
			_, checked := readChecks[t.Name]
			return s.toolActions[t.Name] != "" || checked
		})
	}
	e := s.offer(ctx, id)
	return slices.DeleteFunc(tools, func(t mcpgo.Tool) bool {
		if a := s.toolActions[t.Name]; a != "" {
			return !e.allowed[a]
		}
		_, checked := readChecks[t.Name]
		return checked && !e.reads[t.Name]
	})
}

// offer asks the authorizer, once per identity and offerTTL, which actions
// id may propose and which read tools it may use.
func (s *Server) offer(ctx context.Context, id Identity) offerEntry {
	key := id.Username + "\n" + strings.Join(id.Groups, "\n")
	now := time.Now()
	s.offers.mu.Lock()
	if e, ok := s.offers.entries[key]; ok && now.Sub(e.at) < offerTTL {
		s.offers.mu.Unlock()
		return e
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
	reads := map[string]bool{}
	namespaces := append([]string{"", s.opts.ClusterProposalNamespace}, s.opts.ToolNamespaces...)
	for name, attrs := range readChecks {
		for _, ns := range namespaces {
			if ns != "" && clusterOnly[name] {
				break
			}
			attrs.Namespace = ns
			if s.opts.Authorizer.Authorize(ctx, id, attrs) == nil {
				reads[name] = true
				break
			}
		}
	}
	e := offerEntry{at: now, allowed: allowed, reads: reads}
	s.offers.mu.Lock()
	defer s.offers.mu.Unlock()
	if s.offers.entries == nil || len(s.offers.entries) > 1024 {
		s.offers.entries = map[string]offerEntry{}
	}
	s.offers.entries[key] = e
	return e
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
