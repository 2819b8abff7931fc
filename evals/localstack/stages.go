package localstack

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"
	"text/template"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Fault is a way a container fails because of its spec. When is a jq
// expression over one container of the pod spec (`.` is the container) that
// yields true for a failing container; a pod with any such container
// crash-loops.
type Fault struct {
	// Name of the fault, for messages.
	Name string
	// When matches a failing container.
	When string
	// Reason and ExitCode of the container's last termination.
	Reason   string
	ExitCode int
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

// StagesYAML renders the kwok Stages that simulate nodes and pods: nodes
// become Ready and keep their lease; a pod with no faulty container becomes
// Running and Ready; a pod with one crash-loops with a growing restart count;
// a deleted pod goes away.
func StagesYAML(faults []Fault) ([]byte, error) {
	failing := "false"
	if len(faults) > 0 {
		// true when any container of the pod matches any fault
		var ors []string
		for _, f := range faults {
			if msgs := validation.IsDNS1123Label(f.Name); len(msgs) > 0 {
				return nil, fmt.Errorf("fault name %q: %s", f.Name, strings.Join(msgs, "; "))
			}
			if strings.ContainsAny(f.When, "'\n") || strings.TrimSpace(f.When) == "" {
				return nil, fmt.Errorf("fault %s: When must be one line of jq with double-quoted strings", f.Name)
			}
			if f.Reason == "" || strings.ContainsAny(f.Reason, " :'\"\n") {
				return nil, fmt.Errorf("fault %s: Reason must be one word", f.Name)
			}
			ors = append(ors, "("+f.When+")")
		}
		failing = "any(.spec.containers[]; " + strings.Join(ors, " or ") + ")"
	}
	t, err := template.New("stages").Delims("[[", "]]").Parse(stagesTemplate)
	if err != nil {
		return nil, fmt.Errorf("failed to parse stage template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, map[string]any{"Failing": failing, "Faults": faults}); err != nil {
		return nil, fmt.Errorf("failed to render stages: %w", err)
	}
	return buf.Bytes(), nil
}
