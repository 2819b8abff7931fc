package agents

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// ProbeFault is the runbook for a probe that checks a port its container
// does not declare (by name, or by number when the container declares its
// ports), while the workload's pods are not ready: the probe can never
// pass. When the container declares exactly one port, it proposes pointing
// the probe at it (by name when it has one), with a test of the port it
// replaces. It never removes a probe, and it leaves a probe on a declared
// port alone (the path it checks is the app's business).
type ProbeFault struct {
	// FailFor is how long a pod of the workload must be not ready.
	// Default 4s.
	FailFor time.Duration
}

var _ Runbook = (*ProbeFault)(nil)

// Name implements Runbook.
func (r *ProbeFault) Name() string { return "probe-fault" }

// Evaluate implements Runbook.
func (r *ProbeFault) Evaluate(m *Model, now time.Time) []Intent {
	failFor := r.FailFor
	if failFor <= 0 {
		failFor = 4 * time.Second
	}
	var out []Intent
	for _, key := range sortedKeys(m.Workloads) {
		w := m.Workloads[key]
		if w.Healthy {
			continue
		}
		var template []bus.ContainerState
		if w.Deployment != nil {
			template = w.Deployment.Template
		} else {
			template = w.State.Template
		}
		var stuck *Pod
		for _, p := range m.PodsOf(key) {
			if w.Deployment != nil && p.State.Revision != w.Deployment.Revision {
				continue
			}
			if !p.State.Ready && !p.NotReadySince.IsZero() && m.lasted(p.NotReadySince, failFor, now) && podRunsTemplate(p.State, template) {
				stuck = p
				break
			}
		}
		if stuck == nil {
			continue
		}
		if in := r.judge(w, template, stuck); in != nil {
			out = append(out, *in)
		}
	}
	return out
}

// podRunsTemplate reports whether a pod's containers declare what the
// template declares (the pod is of the current template).
func podRunsTemplate(st *bus.PodState, template []bus.ContainerState) bool {
	if len(st.Containers) != len(template) {
		return false
	}
	for i, c := range st.Containers {
		if c.Name != template[i].Name || c.Image != template[i].Image {
			return false
		}
	}
	return true
}

func (r *ProbeFault) judge(w *Workload, template []bus.ContainerState, p *Pod) *Intent {
	for i, c := range template {
		var tcp []bus.ContainerPort
		for _, port := range c.Ports {
			if orDefault(port.Protocol, "TCP") == "TCP" {
				tcp = append(tcp, port)
			}
		}
		if len(tcp) == 0 {
			continue
		}
		for _, probe := range []struct {
			field string
			p     *bus.Probe
		}{{"readinessProbe", c.Readiness}, {"livenessProbe", c.Liveness}, {"startupProbe", c.Startup}} {
			pr := probe.p
			if pr == nil || (pr.Handler != bus.ProbeHTTPGet && pr.Handler != bus.ProbeTCPSocket) || declares(tcp, pr) {
				continue
			}
			if len(tcp) != 1 {
				return nil
			}
			want := tcp[0]
			path := fmt.Sprintf("/spec/template/spec/containers/%d/%s/%s/port", i, probe.field, pr.Handler)
			var oldV, newV []byte
			if pr.PortName != "" {
				oldV, _ = json.Marshal(pr.PortName)
			} else {
				oldV, _ = json.Marshal(pr.Port)
			}
			desc := fmt.Sprint(want.ContainerPort)
			if want.Name != "" {
				newV, _ = json.Marshal(want.Name)
				desc = fmt.Sprintf("%s (%d)", want.Name, want.ContainerPort)
			} else {
				newV, _ = json.Marshal(want.ContainerPort)
			}
			key := w.Key.Namespace + "/" + w.Key.Name
			return &Intent{PatchWorkload: &wire.PatchWorkloadArgs{
				WorkloadArgs: wire.WorkloadArgs{Namespace: w.Key.Namespace, Kind: w.Key.Kind, Name: w.Key.Name},
				Patch: []wire.PatchOp{
					{Op: "test", Path: path, Value: oldV},
					{Op: "replace", Path: path, Value: newV},
				},
				Common: wire.Common{
					Summary: fmt.Sprintf("The %s of container %s of %s %s checks port %s, which the container does not declare; it declares only %s, and pod %s is not ready.",
						probe.field, textName(c.Name), w.Key.Kind, key, strings.Trim(string(oldV), `"`), desc, p.Key.Name),
					Rationale:   "A probe on a port the container does not serve can never pass; pointing it at the port the container declares keeps the probe and lets it see the app.",
					Risk:        "Low",
					Telemetry:   []wire.TelemetryRef{w.Ref, p.Ref},
					Fingerprint: fmt.Sprintf("probe-fault/%s/%s/%s/%d/%s/%s", strings.ToLower(w.Key.Kind), w.Key.Namespace, w.Key.Name, i, probe.field, strings.Trim(string(oldV), `"`)),
				},
			}}
		}
	}
	return nil
}

// declares reports whether ports hold the probe's port.
func declares(ports []bus.ContainerPort, p *bus.Probe) bool {
	for _, port := range ports {
		if (p.PortName != "" && port.Name == p.PortName) || (p.PortName == "" && port.ContainerPort == p.Port) {
			return true
		}
	}
	return false
}
