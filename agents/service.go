package agents

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// ServiceFault is the runbook for a Service that sends traffic nowhere:
//
//   - its selector matches no pod, while exactly one workload of its
//     namespace has pods with every key of the selector and declares the
//     ports the Service targets: the selector is patched to that
//     workload's values for the same keys;
//   - its pods match, but a targetPort names a port (by name or number)
//     that none of their containers declares, while they declare exactly
//     one: the targetPort is patched to that port (by its name when it has
//     one).
//
// Each patch tests the value it replaces, so a Service changed since it was
// judged is left as it is.
type ServiceFault struct {
	// For is how long a Service must send traffic nowhere. Default 5s.
	For time.Duration
}

var _ Runbook = (*ServiceFault)(nil)

// Name implements Runbook.
func (r *ServiceFault) Name() string { return "service-fault" }

// Evaluate implements Runbook.
func (r *ServiceFault) Evaluate(m *Model, now time.Time) []Intent {
	wait := r.For
	if wait <= 0 {
		wait = 5 * time.Second
	}
	var out []Intent
	for _, key := range sortedKeys(m.Services) {
		s := m.Services[key]
		if len(s.State.Selector) == 0 || !m.lasted(s.At, wait, now) {
			continue
		}
		var matched []*Pod
		for _, p := range m.Pods {
			if p.Key.Namespace == key.Namespace && selects(s.State.Selector, p.State.Labels) {
				matched = append(matched, p)
			}
		}
		if len(matched) == 0 {
			if in := r.selector(m, s); in != nil {
				out = append(out, *in)
			}
			continue
		}
		if in := r.targetPort(s, matched); in != nil {
			out = append(out, *in)
		}
	}
	return out
}

// selector proposes the selector of the one workload the Service fits. It
// proposes only when the selector is known to match no workload: while a
// running workload of the namespace has shown no pod yet (its labels are
// unknown: it is starting, or its pods are not scheduled), or a workload's
// pods, last seen, carried the selector's labels (they are gone for now),
// the selector may be right and the pods the missing part.
func (r *ServiceFault) selector(m *Model, s *Service) *Intent {
	var fits []*Workload
	for _, wk := range sortedKeys(m.Workloads) {
		w := m.Workloads[wk]
		if wk.Namespace != s.Key.Namespace {
			continue
		}
		if w.Replicas() > 0 && len(w.PodLabels) == 0 || len(w.PodLabels) > 0 && selects(s.State.Selector, w.PodLabels) {
			return nil
		}
		if len(w.PodLabels) == 0 || w.Replicas() == 0 {
			continue
		}
		hasKeys := true
		for k := range s.State.Selector {
			if _, ok := w.PodLabels[k]; !ok {
				hasKeys = false
			}
		}
		if hasKeys && servesPorts(s.State, w.PodPorts) {
			fits = append(fits, w)
		}
	}
	if len(fits) != 1 {
		return nil
	}
	w := fits[0]
	sel := map[string]string{}
	for k := range s.State.Selector {
		sel[k] = w.PodLabels[k]
	}
	if maps.Equal(sel, s.State.Selector) {
		return nil
	}
	oldV, _ := json.Marshal(s.State.Selector)
	newV, _ := json.Marshal(sel)
	return &Intent{PatchWorkload: &wire.PatchWorkloadArgs{
		WorkloadArgs: wire.WorkloadArgs{Namespace: s.Key.Namespace, Kind: "Service", Name: s.Key.Name},
		Patch: []wire.PatchOp{
			{Op: "test", Path: "/spec/selector", Value: oldV},
			{Op: "replace", Path: "/spec/selector", Value: newV},
		},
		Common: wire.Common{
			Summary: fmt.Sprintf("Service %s/%s selects no pod; the pods of %s %s carry every key of its selector with other values and declare the ports it targets.",
				s.Key.Namespace, s.Key.Name, w.Key.Kind, w.Key.Name),
			Rationale:   fmt.Sprintf("%s %s is the only workload of the namespace the Service fits; selecting its pods' values for the same keys gives the Service its endpoints back.", w.Key.Kind, w.Key.Name),
			Risk:        "Medium",
			Telemetry:   []wire.TelemetryRef{s.Ref, w.Ref},
			Fingerprint: fmt.Sprintf("service-fault/selector/%s/%s/%s", s.Key.Namespace, s.Key.Name, wire.Digest(string(newV))[:12]),
		},
	}}
}

// servesPorts reports whether ports hold every port the Service targets
// (a targetPort by name, or by number).
func servesPorts(s *bus.ServiceState, ports []bus.ContainerPort) bool {
	for _, sp := range s.Ports {
		if !slices.ContainsFunc(ports, func(p bus.ContainerPort) bool { return targets(sp, p) }) {
			return false
		}
	}
	return true
}

// targets reports whether a Service port sends to a container port.
func targets(sp bus.ServicePort, p bus.ContainerPort) bool {
	if sp.TargetPortName != "" {
		return p.Name == sp.TargetPortName
	}
	tp := sp.TargetPort
	if tp == 0 {
		tp = sp.Port
	}
	return p.ContainerPort == tp
}

// targetPort proposes the declared port for a targetPort no pod declares.
func (r *ServiceFault) targetPort(s *Service, pods []*Pod) *Intent {
	var declared []bus.ContainerPort
	for _, p := range pods {
		for _, c := range p.State.Containers {
			for _, port := range c.Ports {
				if orDefault(port.Protocol, "TCP") == "TCP" && !slices.Contains(declared, port) {
					declared = append(declared, port)
				}
			}
		}
	}
	if len(declared) != 1 {
		// Nothing declared (nothing to judge on), or several (no one answer).
		return nil
	}
	want := declared[0]
	for i, sp := range s.State.Ports {
		if targets(sp, want) {
			continue
		}
		path := fmt.Sprintf("/spec/ports/%d/targetPort", i)
		var oldV, newV []byte
		if sp.TargetPortName != "" {
			oldV, _ = json.Marshal(sp.TargetPortName)
		} else {
			oldV, _ = json.Marshal(sp.TargetPort)
		}
		newDesc := fmt.Sprint(want.ContainerPort)
		if want.Name != "" && len(want.Name) <= 15 {
			newV, _ = json.Marshal(want.Name)
			newDesc = fmt.Sprintf("%s (%d)", want.Name, want.ContainerPort)
		} else {
			newV, _ = json.Marshal(want.ContainerPort)
		}
		refs := []wire.TelemetryRef{s.Ref}
		names := make([]string, 0, 3)
		for j, p := range pods {
			if j < 3 {
				refs = append(refs, p.Ref)
				names = append(names, p.Key.Name)
			}
		}
		return &Intent{PatchWorkload: &wire.PatchWorkloadArgs{
			WorkloadArgs: wire.WorkloadArgs{Namespace: s.Key.Namespace, Kind: "Service", Name: s.Key.Name},
			Patch: []wire.PatchOp{
				{Op: "test", Path: path, Value: oldV},
				{Op: "replace", Path: path, Value: newV},
			},
			Common: wire.Common{
				Summary: fmt.Sprintf("Service %s/%s sends port %d to target port %s, which none of its pods' containers declares (%s); they declare only %s.",
					s.Key.Namespace, s.Key.Name, sp.Port, strings.Trim(string(oldV), `"`), strings.Join(names, ", "), newDesc),
				Rationale:   "Targeting the one port the selected containers declare sends the Service's traffic where the app listens.",
				Risk:        "Medium",
				Telemetry:   refs,
				Fingerprint: fmt.Sprintf("service-fault/target-port/%s/%s/%d/%s", s.Key.Namespace, s.Key.Name, i, strings.Trim(string(newV), `"`)),
			},
		}}
	}
	return nil
}
