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

// FaultKind is how a container whose spec matches a Fault fails (or, for
// FaultComplete and FaultPeriodicRestart, how it behaves).
type FaultKind string

const (
	// FaultCrashLoop: the container starts and exits; it is restarted with a
	// growing back-off and waits in CrashLoopBackOff. The default. In a pod
	// with restartPolicy Never the pod fails instead (phase Failed).
	FaultCrashLoop FaultKind = "CrashLoop"
	// FaultNotReady: the container runs but never becomes ready (its
	// readiness probe fails).
	FaultNotReady FaultKind = "NotReady"
	// FaultImagePull: the image cannot be pulled; the container waits in
	// ImagePullBackOff and never starts.
	FaultImagePull FaultKind = "ImagePull"
	// FaultWait: the kubelet has not prepared the pod yet (it has not
	// resolved the containers' environment, say): the pod is left as it is
	// until the fault no longer matches. Pod-level (Fault.Pod) only.
	FaultWait FaultKind = "Wait"
	// FaultConfigError: the kubelet cannot start the pod's containers (a
	// missing ConfigMap, Secret or key of their environment, a volume it
	// cannot mount): they wait with the reason and message of the pod's
	// EnvConditionType condition (CreateContainerConfigError,
	// ContainerCreating). Pod-level (Fault.Pod) only.
	FaultConfigError FaultKind = "ConfigError"
	// FaultComplete: the container runs for Seconds and exits 0. A pod whose
	// containers all complete and whose restartPolicy is not Always
	// succeeds (phase Succeeded); it is not a failure and never decides a
	// pod's failure state.
	FaultComplete FaultKind = "Complete"
	// FaultPeriodicRestart: a Running, Ready container of one of Images
	// exits every Seconds and is restarted at once (its restart count grows,
	// its last state records Reason and ExitCode); it stays Ready.
	FaultPeriodicRestart FaultKind = "PeriodicRestart"
)

// EnvConditionType is the pod condition in which a simulated kubelet records
// the environment it resolved for each container (status True, the message
// a JSON object of container name to variable to value, null for a value it
// does not disclose), or why it could not (status False, reason
// CreateContainerConfigError). See EnvResolver.
const EnvConditionType = "tend.dev/simulated-env"

// Fault is a way a container fails because of its spec. When is a jq
// expression over one container of the pod spec (`.` is the container,
// `$pod` the whole pod, and `$env` the container's environment as the
// EnvResolver resolved it: an object of name to value, {} until resolved)
// that yields true for a failing container. The first
// fault (in list order) that matches the first failing container decides
// the pod's state; an init container that matches any fault keeps the pod
// initialising with the init container crash-looping. Pod-level faults
// (Pod) are checked before any container's.
type Fault struct {
	// Name of the fault, for messages.
	Name string
	// When matches a failing container (a failing pod, with Pod). Unused
	// for FaultPeriodicRestart, which matches Images.
	When string
	// Pod: When is jq over the whole pod (`.` is the pod).
	Pod bool
	// Kind of failure; FaultCrashLoop when empty.
	Kind FaultKind
	// Reason and ExitCode of the container's last termination (crash loops,
	// periodic restarts).
	Reason   string
	ExitCode int
	// EventReason and Message are the Warning event the simulated kubelet
	// records, and the text of the container's state; defaults per kind.
	EventReason string
	Message     string
	// Seconds a completing container runs, or a periodically restarting
	// one runs between restarts.
	Seconds int
	// Images (repository:tag) whose containers restart periodically.
	Images []string
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
	// Select is the jq selector of a periodic restart: true for a pod with
	// a container of one of Images.
	Select string
	// QImages are Images as one YAML flow list of quoted strings.
	QImages string
}

// reserved are classifications the template uses itself.
var reserved = []string{"ok", "init", "complete"}

// StagesYAML renders the kwok Stages that simulate nodes and pods: nodes
// become Ready and keep their lease; a pod with no faulty container becomes
// Running and Ready; a pod with one fails the way its first matching fault
// says (crash loop with back-off, or phase Failed with restartPolicy Never;
// running but not ready; image pull back-off; init container crash loop;
// waiting for or failing to create its containers' config); a pod whose
// containers all complete succeeds; periodically restarting containers
// restart; a deleted pod goes away.
//
// A fault list with a FaultWait fault is simulated with the node-side
// Simulator, which must run with the same faults: it classifies each pod
// once, when it resolves its environment, and records the verdict in the
// pod's SimulatedStateType condition; the stages select on that instead of
// running the classifier themselves, stage by stage.
func StagesYAML(faults []Fault) ([]byte, error) {
	c, err := compile(faults)
	if err != nil {
		return nil, err
	}
	classify := c.classify
	if c.assisted {
		classify = assistedKey
	}
	t, err := template.New("stages").Delims("[[", "]]").Parse(stagesTemplate)
	if err != nil {
		return nil, fmt.Errorf("failed to parse stage template: %w", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, map[string]any{"Classify": classify, "Faults": c.faults, "CompleteDelay": c.completeDelay,
		"HasComplete": c.hasComplete, "EnvCondition": EnvConditionType}); err != nil {
		return nil, fmt.Errorf("failed to render stages: %w", err)
	}
	return buf.Bytes(), nil
}

// SimulatedStateType is the pod condition in which the node-side Simulator
// records what decides a pod's state (its Reason: "ok", "init", "complete"
// or a fault's name), when the faults are simulated with its help.
const SimulatedStateType = "tend.dev/simulated-state"

// assistedKey reads the Simulator's verdict; a pod without one waits.
const assistedKey = `([.status.conditions[]? | select(.type == "` + SimulatedStateType + `") | .reason] | first) // "pending"`

// Classifier is the jq that names what decides a pod's state ("ok",
// "init", "complete" or a fault's name), for the faults given.
func Classifier(faults []Fault) (string, error) {
	c, err := compile(faults)
	if err != nil {
		return "", err
	}
	return c.classify, nil
}

// compiled is a validated fault list.
type compiled struct {
	faults                  []stageFault
	classify, completeDelay string
	hasComplete, assisted   bool
}

// compile validates faults and builds their classifier.
func compile(faults []Fault) (*compiled, error) {
	var sfs []stageFault
	var podBranches, branches, completes []string
	seen := map[string]bool{}
	for _, f := range faults {
		if msgs := validation.IsDNS1123Label(f.Name); len(msgs) > 0 {
			return nil, fmt.Errorf("fault name %q: %s", f.Name, strings.Join(msgs, "; "))
		}
		if seen[f.Name] || strings.Contains(" "+strings.Join(reserved, " ")+" ", " "+f.Name+" ") {
			return nil, fmt.Errorf("fault name %q is used twice or reserved", f.Name)
		}
		seen[f.Name] = true
		if f.Kind == "" {
			f.Kind = FaultCrashLoop
		}
		if f.Kind == FaultPeriodicRestart {
			if len(f.Images) == 0 {
				return nil, fmt.Errorf("fault %s: a periodic restart needs Images", f.Name)
			}
			var alts []string
			for _, img := range f.Images {
				if strings.ContainsAny(img, "'\"\\\n ") || img == "" {
					return nil, fmt.Errorf("fault %s: image %q is not a plain image reference", f.Name, img)
				}
				alts = append(alts, ".image == "+strconv.Quote(img))
			}
			f.When = strings.Join(alts, " or ")
		} else if strings.ContainsAny(f.When, "'\n") || strings.TrimSpace(f.When) == "" {
			return nil, fmt.Errorf("fault %s: When must be one line of jq with double-quoted strings", f.Name)
		}
		if f.Pod != (f.Kind == FaultWait || f.Kind == FaultConfigError) {
			return nil, fmt.Errorf("fault %s: kinds Wait and ConfigError, and only they, are pod-level", f.Name)
		}
		switch f.Kind {
		case FaultCrashLoop, FaultPeriodicRestart:
			if f.Reason == "" || strings.ContainsAny(f.Reason, " :'\"\n") {
				return nil, fmt.Errorf("fault %s: Reason must be one word", f.Name)
			}
			if f.Kind == FaultCrashLoop {
				f.EventReason = orDefault(f.EventReason, "BackOff")
				f.Message = orDefault(f.Message, "Back-off restarting failed container")
			} else {
				if f.Seconds < 1 {
					return nil, fmt.Errorf("fault %s: a periodic restart needs Seconds", f.Name)
				}
				f.EventReason = orDefault(f.EventReason, "BackOff")
				f.Message = orDefault(f.Message, fmt.Sprintf("Container exited (%s, exit code %d) and was restarted", f.Reason, f.ExitCode))
			}
		case FaultNotReady:
			f.EventReason = orDefault(f.EventReason, "Unhealthy")
			f.Message = orDefault(f.Message, "Readiness probe failed")
		case FaultImagePull:
			f.EventReason = orDefault(f.EventReason, "Failed")
			f.Message = orDefault(f.Message, "Failed to pull image: not found")
		case FaultWait:
		case FaultConfigError:
			f.EventReason = orDefault(f.EventReason, "Failed")
			f.Message = orDefault(f.Message, "Error: CreateContainerConfigError")
		case FaultComplete:
			if f.Seconds < 1 {
				return nil, fmt.Errorf("fault %s: a completing container needs Seconds", f.Name)
			}
		default:
			return nil, fmt.Errorf("fault %s: unknown kind %q", f.Name, f.Kind)
		}
		if strings.ContainsAny(f.EventReason, " :'\"\n") {
			return nil, fmt.Errorf("fault %s: EventReason must be one word", f.Name)
		}
		if strings.ContainsAny(f.Message, "'\n\\") {
			return nil, fmt.Errorf("fault %s: Message must be one line without single quotes or backslashes", f.Name)
		}
		sf := stageFault{Fault: f, QMessage: strconv.Quote(f.Message)}
		switch {
		case f.Kind == FaultPeriodicRestart:
			sf.Select = "[.spec.containers[] | " + f.When + "] | any"
			var q []string
			for _, img := range f.Images {
				q = append(q, strconv.Quote(img))
			}
			sf.QImages = "[" + strings.Join(q, ", ") + "]"
		case f.Kind == FaultComplete:
			completes = append(completes, f.When)
			sf.Select = strconv.Itoa(f.Seconds)
		case f.Pod:
			podBranches = append(podBranches, "("+f.When+") then "+strconv.Quote(f.Name))
		default:
			branches = append(branches, "("+f.When+") then "+strconv.Quote(f.Name))
		}
		sfs = append(sfs, sf)
	}
	classify, completeDelay := classifier(podBranches, branches, sfs, completes)
	assisted := false
	for _, f := range sfs {
		assisted = assisted || f.Kind == FaultWait
	}
	return &compiled{faults: sfs, classify: classify, completeDelay: completeDelay, hasComplete: len(completes) > 0, assisted: assisted}, nil
}

// classifier builds the jq that yields, for a pod, "ok", "init",
// "complete" or the name of the fault that decides its state, and the jq
// that yields how long a completing pod runs.
func classifier(podBranches, branches []string, sfs []stageFault, completes []string) (string, string) {
	var parts []string
	if len(podBranches) > 0 {
		parts = append(parts, "(if "+strings.Join(podBranches, " elif ")+" else empty end)")
	}
	if len(branches) > 0 {
		chain := "if " + strings.Join(branches, " elif ") + " else empty end"
		initChain := "if " + strings.Join(branchesAs(branches, `"init"`), " elif ") + " else empty end"
		// $env is bound once per container, and only when a fault reads it.
		bind := ""
		if strings.Contains(strings.Join(branches, " "), "$env") {
			bind = envBinding
		}
		parts = append(parts, "(.spec.initContainers[]? | "+bind+initChain+")", "(.spec.containers[] | "+bind+chain+")")
	}
	classify := `. as $pod | `
	if len(parts) > 0 {
		classify += "([" + strings.Join(parts, ", ") + "] | first) // "
	}
	delay := `"1s"`
	if len(completes) > 0 {
		var alts []string
		var secs []string
		for _, sf := range sfs {
			if sf.Kind == FaultComplete {
				alts = append(alts, "("+sf.When+")")
				secs = append(secs, "("+sf.When+") then "+sf.Select)
			}
		}
		classify += `(if ((.spec.restartPolicy // "Always") != "Always") and ([.spec.containers[] | ` + strings.Join(alts, " or ") + `] | all) then "complete" else empty end) // `
		delay = `. as $pod | ([.spec.containers[] | if ` + strings.Join(secs, " elif ") + ` else 1 end] | max) | tostring + "s"`
	}
	return classify + `"ok"`, delay
}

// envBinding binds $env to the container's environment as the EnvResolver
// recorded it in the pod's EnvConditionType condition; {} until it has.
const envBinding = `. as $c | ([$pod.status.conditions[]? | select(.type == "` + EnvConditionType + `" and .status == "True") | .message | fromjson | .[$c.name]] | first // {}) as $env | `

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
