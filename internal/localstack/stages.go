package localstack

import (
	"bytes"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"text/template"

	"k8s.io/apimachinery/pkg/util/validation"
)

// FaultKind is how a container whose spec matches a Fault fails.
type FaultKind string

const (
	// FaultCrashLoop: the container starts and exits; it is restarted with a
	// growing back-off and waits in CrashLoopBackOff. The default.
	FaultCrashLoop FaultKind = "CrashLoop"
	// FaultNotReady: the container runs but never becomes ready (its
	// readiness probe fails).
	FaultNotReady FaultKind = "NotReady"
	// FaultImagePull: the image cannot be pulled; the container waits in
	// ImagePullBackOff and never starts.
	FaultImagePull FaultKind = "ImagePull"
)

// Fault is a way a container fails because of its spec. When is a jq
// expression over one container of the pod spec (`.` is the container) that
// yields true for a failing container. The first fault (in list order) that
// matches the first failing container decides the pod's state; an init
// container that matches any fault keeps the pod initialising with the init
// container crash-looping.
type Fault struct {
	// Name of the fault, for messages.
	Name string
	// When matches a failing container.
	When string
	// Kind of failure; FaultCrashLoop when empty.
	Kind FaultKind
	// Reason and ExitCode of the container's last termination (crash loops).
	Reason   string
	ExitCode int
	// EventReason and Message are the Warning event the simulated kubelet
	// records, and the text of the container's state; defaults per kind.
	EventReason string
	Message     string
}

// DemoFaults are the app profiles of the demo image: web 2.x requires the
// DATABASE_URL environment variable and exits 1 at start-up without it;
// web 1.x does not need it.
var DemoFaults = []Fault{{
	Name:     "demo-web-2-missing-database-url",
	When:     `(.image | startswith("` + DemoImage + `:2.")) and (any(.env[]?; .name == "DATABASE_URL") | not)`,
	Reason:   "Error",
	ExitCode: 1,
}}

// DemoImage is the demo application's image repository.
const DemoImage = "registry.tend.local/demo/web"

//go:embed stages.yaml.tmpl
var stagesTemplate string

// stageFault is a Fault ready for the template.
type stageFault struct {
	Fault
	// QMessage is Message as a YAML/jq double-quoted string.
	QMessage string
}

// StagesYAML renders the kwok Stages that simulate nodes and pods: nodes
// become Ready and keep their lease; a pod with no faulty container becomes
// Running and Ready; a pod with one fails the way its first matching fault
// says (crash loop with back-off, running but not ready, image pull back-off,
// init container crash loop); a deleted pod goes away.
func StagesYAML(faults []Fault) ([]byte, error) {
	var sfs []stageFault
	var branches []string
	seen := map[string]bool{}
	for _, f := range faults {
		if msgs := validation.IsDNS1123Label(f.Name); len(msgs) > 0 {
			return nil, fmt.Errorf("fault name %q: %s", f.Name, strings.Join(msgs, "; "))
		}
		if seen[f.Name] || f.Name == "ok" || f.Name == "init" {
			return nil, fmt.Errorf("fault name %q is used twice or reserved", f.Name)
		}
		seen[f.Name] = true
		if strings.ContainsAny(f.When, "'\n") || strings.TrimSpace(f.When) == "" {
			return nil, fmt.Errorf("fault %s: When must be one line of jq with double-quoted strings", f.Name)
		}
		if f.Kind == "" {
			f.Kind = FaultCrashLoop
		}
		switch f.Kind {
		case FaultCrashLoop:
			if f.Reason == "" || strings.ContainsAny(f.Reason, " :'\"\n") {
				return nil, fmt.Errorf("fault %s: Reason must be one word", f.Name)
			}
			f.EventReason = orDefault(f.EventReason, "BackOff")
			f.Message = orDefault(f.Message, "Back-off restarting failed container")
		case FaultNotReady:
			f.EventReason = orDefault(f.EventReason, "Unhealthy")
			f.Message = orDefault(f.Message, "Readiness probe failed")
		case FaultImagePull:
			f.EventReason = orDefault(f.EventReason, "Failed")
			f.Message = orDefault(f.Message, "Failed to pull image: not found")
		default:
			return nil, fmt.Errorf("fault %s: unknown kind %q", f.Name, f.Kind)
		}
		if strings.ContainsAny(f.EventReason, " :'\"\n") {
			return nil, fmt.Errorf("fault %s: EventReason must be one word", f.Name)
		}
		if strings.ContainsAny(f.Message, "'\n\\") {
			return nil, fmt.Errorf("fault %s: Message must be one line without single quotes or backslashes", f.Name)
		}
		sfs = append(sfs, stageFault{Fault: f, QMessage: strconv.Quote(f.Message)})
		branches = append(branches, "("+f.When+") then "+strconv.Quote(f.Name))
	}
	// classify yields, for a pod, "ok", "init" or the name of the fault
	// that decides its state.
	classify := `"ok"`
	if len(branches) > 0 {
		chain := "if " + strings.Join(branches, " elif ") + " else empty end"
		initChain := "if " + strings.Join(branchesAs(branches, `"init"`), " elif ") + " else empty end"
		classify = "([(.spec.initContainers[]? | " + initChain + "), (.spec.containers[] | " + chain + ")] | first) // \"ok\""
	}
	t, err := template.New("stages").Delims("[[", "]]").Parse(stagesTemplate)
	if err != nil {
		return nil, fmt.Errorf("failed to parse stage template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, map[string]any{"Classify": classify, "Faults": sfs}); err != nil {
		return nil, fmt.Errorf("failed to render stages: %w", err)
	}
	return buf.Bytes(), nil
}

// branchesAs rewrites `(cond) then "name"` branches to yield v instead.
func branchesAs(branches []string, v string) []string {
	out := make([]string, len(branches))
	for i, b := range branches {
		out[i] = b[:strings.LastIndex(b, " then ")] + " then " + v
	}
	return out
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
