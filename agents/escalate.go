package agents

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// Escalate is the last runbook: a workload whose pods still fail after
// After, a node that stays NotReady or under pressure, or an autoscaler
// that cannot scale its target, gets a finding for a human when no runbook
// before it proposed a fix for the object (the agent holds an object one
// runbook proposed for). A finding names the fault, cites the telemetry
// and says what a human could do; it changes nothing.
type Escalate struct {
	// After is how long a fault must last. Default 30s: longer than every
	// runbook's own window, so that a fix comes first when there is one.
	After time.Duration
}

var _ Runbook = (*Escalate)(nil)

// Name implements Runbook.
func (r *Escalate) Name() string { return "escalate" }

// Evaluate implements Runbook.
func (r *Escalate) Evaluate(m *Model, now time.Time) []Intent {
	after := r.After
	if after <= 0 {
		after = 30 * time.Second
	}
	var out []Intent
	for _, key := range sortedKeys(m.Workloads) {
		w := m.Workloads[key]
		if w.Healthy {
			continue
		}
		var failing []*Pod
		for _, p := range m.PodsOf(key) {
			if !p.FailingSince.IsZero() && m.lasted(p.FailingSince, after, now) {
				failing = append(failing, p)
			}
		}
		if len(failing) == 0 {
			continue
		}
		p := failing[0]
		detail, _ := podFailure(p.State)
		fault, advice, code := diagnose(p.State)
		refs := []wire.TelemetryRef{w.Ref}
		for i, fp := range failing {
			if i < 5 {
				refs = append(refs, fp.Ref)
			}
		}
		revision := ""
		if w.Deployment != nil {
			revision = fmt.Sprintf(" (revision %d)", w.Deployment.Revision)
		}
		out = append(out, Intent{Finding: &Finding{
			Kind: key.Kind, Namespace: key.Namespace, Name: key.Name,
			Fault: fmt.Sprintf("%s %s/%s%s: %d of its pods fail (%s: %s); %s", key.Kind, key.Namespace, key.Name, revision,
				len(failing), p.Key.Name, detail, fault),
			Advice:      advice + " No runbook has a safe fix: no earlier revision ran healthy, or the cause is outside the pod template.",
			Evidence:    refs,
			Fingerprint: fmt.Sprintf("escalate/%s/%s/%s/%s%s", key.Kind, key.Namespace, key.Name, code, revision),
		}})
	}
	for _, key := range sortedKeys(m.Autoscalers) {
		h := m.Autoscalers[key]
		st := h.State
		c := condition(st.Conditions, "AbleToScale")
		if c == nil || c.Status != "False" || h.UnableSince.IsZero() || !m.lasted(h.UnableSince, after, now) {
			continue
		}
		if _, ok := m.Workloads[ObjectKey{st.Target.Kind, key.Namespace, st.Target.Name}]; ok {
			continue
		}
		target := "(invalid name)"
		if validObject("", st.Target.Name) && reasonCode(st.Target.Kind) != "" {
			target = st.Target.Kind + " " + st.Target.Name
		}
		out = append(out, Intent{Finding: &Finding{
			Kind: "HorizontalPodAutoscaler", Namespace: key.Namespace, Name: key.Name,
			Fault:       fmt.Sprintf("Autoscaler %s/%s cannot scale: it targets %s, which the telemetry does not show (AbleToScale=False, %s).", key.Namespace, key.Name, target, orDefault(reasonCode(c.Reason), "no reason")),
			Advice:      "Point its scaleTargetRef at the workload it should scale; tend does so itself only for the workload it last kept healthy.",
			Evidence:    []wire.TelemetryRef{h.Ref},
			Fingerprint: fmt.Sprintf("escalate/hpa/%s/%s/%s", key.Namespace, key.Name, wire.Digest(target)[:12]),
		}})
	}
	return out
}

// imageRef is the shape of an image reference; anything else is not
// repeated in a finding.
var imageRef = regexp.MustCompile(`^[a-z0-9][a-z0-9._/:@-]{0,254}$`)

// diagnose says what a failing pod's typed facts show, what a human could
// do, and a short code for the fingerprint.
func diagnose(st *bus.PodState) (fault, advice, code string) {
	if c := scheduled(st); c != nil && c.Status == "False" && reasonCode(c.Reason) == "Unschedulable" {
		return "the scheduler finds no node for it",
			"Check its node selector, affinity, tolerations and requests against the nodes, and the namespace's quota; uncordon or add a node that fits.", "unschedulable"
	}
	for _, list := range [][]bus.ContainerState{st.InitContainers, st.Containers} {
		for _, c := range list {
			if _, failing := containerFailure(c, false); !failing {
				continue
			}
			name := textName(c.Name)
			switch {
			case pullFailure(c):
				img := "its image"
				if imageRef.MatchString(c.Image) && !strings.Contains(c.Image, "..") {
					img = "image " + c.Image
				}
				return fmt.Sprintf("container %s cannot pull %s", name, img),
					"Push the image, fix its name or tag, or give the pod the pull secret it needs.", "image-pull"
			case oomKilled(c):
				return fmt.Sprintf("container %s is OOMKilled", name),
					"Raise its memory limit to its working set, or find what makes it use more.", "oom"
			case c.Reason == "CreateContainerConfigError" || c.Reason == "CreateContainerError":
				return fmt.Sprintf("container %s cannot be created from its configuration", name),
					"A ConfigMap, Secret or key it references is missing: create it, or fix the reference.", "config"
			case c.Reason == "RunContainerError" || c.Reason == "StartError" || c.LastExitCode == 127 || c.LastExitCode == 126:
				return fmt.Sprintf("container %s cannot start its command (exit %d)", name, c.LastExitCode),
					"Fix the command or args: the binary is missing or not executable in the image.", "start"
			default:
				return fmt.Sprintf("container %s exits with code %d", name, c.LastExitCode),
					"Read its previous logs (kubectl logs --previous) for the cause: a missing environment variable or configuration, or a dependency it cannot reach.", fmt.Sprintf("exit-%d", c.LastExitCode)
			}
		}
	}
	return "its containers do not become ready", "Check its readiness probe against the port and path the app serves.", "not-ready"
}
