package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// ErrInvalidProfile is returned for a profile that cannot be simulated.
var ErrInvalidProfile = errors.New("sim: invalid app profile")

// Profile describes the app in one image repository at some tags: what it
// needs to start and what it serves. It is keyed by image, never by anything
// on the pod an agent could change without changing what runs.
type Profile struct {
	// Image is the repository, without a tag (registry.tend.local/shop/web).
	Image string `json:"image"`
	// Tags this profile describes. A tag of the repository that no profile
	// lists does not exist: pulling it fails.
	Tags []string `json:"tags"`
	// Commands are the valid container commands; a container that sets
	// another command fails to start. Leaving command unset (the image's
	// entrypoint) is always valid.
	Commands [][]string `json:"commands,omitempty"`
	// Ports the app listens on.
	Ports []int32 `json:"ports,omitempty"`
	// PortEnv, if set, is a variable that moves the app: when the
	// container's environment sets it to a port, the app listens there
	// instead of on Ports (a twelve-factor app's PORT).
	PortEnv string `json:"portEnv,omitempty"`
	// Health is where the app answers health checks.
	Health Health `json:"health,omitempty"`
	// WorkingSet is the memory the app uses; a memory limit below it is
	// OOMKilled.
	WorkingSet *resource.Quantity `json:"workingSet,omitempty"`
	// RequiredEnv are environment variables (config keys) the app exits 1
	// without.
	RequiredEnv []string `json:"requiredEnv,omitempty"`
	// Dependencies are the services the app connects to at start-up; it
	// exits 1 when their address is wrong.
	Dependencies []Dependency `json:"dependencies,omitempty"`
	// StartupSeconds is how long the app takes to start; a liveness probe
	// (without a startup probe) that gives up sooner restarts it forever.
	StartupSeconds int32 `json:"startupSeconds,omitempty"`
	// CompletesAfterSeconds makes the app a batch job: it runs this long and
	// exits 0. In a pod that is not restarted (a Job's) the pod succeeds;
	// under restartPolicy Always it is restarted forever (CrashLoopBackOff,
	// last exit 0 Completed).
	CompletesAfterSeconds int32 `json:"completesAfterSeconds,omitempty"`
	// PeriodicRestart makes a running app exit now and then and be
	// restarted at once, healthy otherwise (a slow leak, a watchdog).
	PeriodicRestart *PeriodicRestart `json:"periodicRestart,omitempty"`
	// Usage is what the app consumes, for improvement scenarios.
	Usage *Usage `json:"usage,omitempty"`
}

// PeriodicRestart is how often a running app exits and how.
type PeriodicRestart struct {
	// EverySeconds the app runs between exits.
	EverySeconds int32 `json:"everySeconds"`
	// Reason of the exit (OOMKilled, Error, Completed); Error when empty.
	Reason string `json:"reason,omitempty"`
	// ExitCode of the exit.
	ExitCode int32 `json:"exitCode,omitempty"`
}

// Usage is an app's CPU and memory use over time: a steady level and a
// peak it reaches now and then. Memory's steady level is WorkingSet.
type Usage struct {
	// CPU is the steady CPU use.
	CPU resource.Quantity `json:"cpu"`
	// PeakCPU is the highest CPU use; CPU when unset.
	PeakCPU *resource.Quantity `json:"peakCPU,omitempty"`
	// PeakMemory is the highest memory use; WorkingSet when unset. A memory
	// limit below it is OOM risk, though the simulator kills only below
	// WorkingSet.
	PeakMemory *resource.Quantity `json:"peakMemory,omitempty"`
}

// Health is where an app answers HTTP health checks.
type Health struct {
	// Liveness path; empty when the app has none (an HTTP liveness probe fails).
	Liveness string `json:"liveness,omitempty"`
	// Readiness path; empty when the app has none.
	Readiness string `json:"readiness,omitempty"`
}

// Dependency is a service an app reaches through an environment variable.
type Dependency struct {
	// Env is the variable that holds the address (host or host:port, or a URL).
	Env string `json:"env"`
	// Host is the service's name; the address must name it (host, host:port,
	// host.namespace..., or scheme://host...).
	Host string `json:"host"`
	// Port, if set, is the port the service answers on; the address must
	// name it (host:port, scheme://host:port...).
	Port int32 `json:"port,omitempty"`
}

var (
	imageRe  = regexp.MustCompile(`^[a-z0-9]+([._/-][a-z0-9]+)*$`)
	tagRe    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	envRe    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	pathRe   = regexp.MustCompile(`^/[A-Za-z0-9/_.-]*$`)
	hostRe   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	cmdRe    = regexp.MustCompile(`^[A-Za-z0-9/_.=:, -]*$`)
	reasonRe = regexp.MustCompile(`^[A-Za-z]+$`)
)

// Validate checks a profile.
func (p *Profile) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrInvalidProfile, p.Image, fmt.Sprintf(format, args...))
	}
	if !imageRe.MatchString(p.Image) || len(p.Image) > 200 {
		return bad("image must be a repository without tag or digest")
	}
	if len(p.Tags) == 0 {
		return bad("tags must list at least one tag")
	}
	for _, t := range p.Tags {
		if !tagRe.MatchString(t) {
			return bad("tag %q is not a valid tag", t)
		}
	}
	for _, c := range p.Commands {
		if len(c) == 0 {
			return bad("a command must not be empty")
		}
		for _, a := range c {
			if !cmdRe.MatchString(a) {
				return bad("command argument %q has characters the simulator does not accept", a)
			}
		}
	}
	for _, port := range p.Ports {
		if port < 1 || port > 65535 {
			return bad("port %d out of range", port)
		}
	}
	for _, path := range []string{p.Health.Liveness, p.Health.Readiness} {
		if path != "" && !pathRe.MatchString(path) {
			return bad("health path %q is not a plain path", path)
		}
	}
	if p.WorkingSet != nil && p.WorkingSet.Sign() <= 0 {
		return bad("workingSet must be positive")
	}
	if p.PortEnv != "" && !envRe.MatchString(p.PortEnv) {
		return bad("portEnv %q is not a variable name", p.PortEnv)
	}
	for _, e := range p.RequiredEnv {
		if !envRe.MatchString(e) {
			return bad("requiredEnv %q is not a variable name", e)
		}
	}
	for _, d := range p.Dependencies {
		if !envRe.MatchString(d.Env) || !hostRe.MatchString(d.Host) {
			return bad("dependency %q=%q needs a variable name and a DNS label", d.Env, d.Host)
		}
		if d.Port < 0 || d.Port > 65535 {
			return bad("dependency %s: port %d out of range", d.Env, d.Port)
		}
	}
	if p.StartupSeconds < 0 || p.StartupSeconds > 3600 {
		return bad("startupSeconds must be between 0 and 3600")
	}
	if p.CompletesAfterSeconds < 0 || p.CompletesAfterSeconds > 3600 {
		return bad("completesAfterSeconds must be between 0 and 3600")
	}
	if r := p.PeriodicRestart; r != nil {
		if r.EverySeconds < 5 || r.EverySeconds > 3600 {
			return bad("periodicRestart.everySeconds must be between 5 and 3600")
		}
		if r.Reason != "" && !reasonRe.MatchString(r.Reason) {
			return bad("periodicRestart.reason %q must be one word", r.Reason)
		}
		if r.ExitCode < 0 || r.ExitCode > 255 {
			return bad("periodicRestart.exitCode must be between 0 and 255")
		}
		if p.CompletesAfterSeconds > 0 {
			return bad("a batch app (completesAfterSeconds) does not restart periodically")
		}
	}
	if u := p.Usage; u != nil {
		if u.CPU.Sign() <= 0 {
			return bad("usage.cpu must be positive")
		}
		if u.PeakCPU != nil && u.PeakCPU.Cmp(u.CPU) < 0 {
			return bad("usage.peakCPU must be at least usage.cpu")
		}
		if u.PeakMemory != nil && (p.WorkingSet == nil || u.PeakMemory.Cmp(*p.WorkingSet) < 0) {
			return bad("usage.peakMemory needs a workingSet no larger than it")
		}
	}
	return nil
}

// Kind is how a container fails or behaves; the values are
// localstack.FaultKind's.
type Kind string

// Kinds of failure and behaviour.
const (
	KindCrashLoop       Kind = "CrashLoop"
	KindNotReady        Kind = "NotReady"
	KindImagePull       Kind = "ImagePull"
	KindWait            Kind = "Wait"
	KindConfigError     Kind = "ConfigError"
	KindComplete        Kind = "Complete"
	KindPeriodicRestart Kind = "PeriodicRestart"
)

// EnvCondition is the pod condition in which the simulated kubelet records
// each container's resolved environment (localstack.EnvConditionType).
const EnvCondition = "tend.dev/simulated-env"

// Fault is one way a container of a profile fails: When is jq over the
// container (`$pod` is the pod, `$env` the container's environment as the
// simulated kubelet resolved it: name to value, null for a value from a
// Secret), or over the pod when Pod is set. It has the
// fields of localstack.Fault, which the harness converts it to; sim stays
// free of the stack.
type Fault struct {
	Name        string
	When        string
	Pod         bool
	Kind        Kind
	Reason      string
	ExitCode    int
	EventReason string
	Message     string
	Seconds     int
	Images      []string
}

// Faults compiles profiles into the simulator's fault list, in priority
// order: a container's first matching fault decides its state. Profiles for
// the same image and tag must be identical. Besides the profiles' own
// faults, a pod waits until the simulated kubelet has resolved its
// environment and fails with CreateContainerConfigError when it could not,
// and an image of a repository no profile describes cannot be pulled: no
// container runs an app nobody described.
func Faults(profiles []Profile) ([]Fault, error) {
	byTag := map[string]string{}
	tagsOf := map[string][]string{}
	var uniq []Profile
	for _, p := range profiles {
		if err := p.Validate(); err != nil {
			return nil, err
		}
		b, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		dup := true
		for _, t := range p.Tags {
			key := p.Image + ":" + t
			if prev, ok := byTag[key]; ok {
				if prev != string(b) {
					return nil, fmt.Errorf("%w: two different profiles for %s", ErrInvalidProfile, key)
				}
				continue
			}
			dup = false
			byTag[key] = string(b)
			tagsOf[p.Image] = append(tagsOf[p.Image], t)
		}
		if !dup {
			uniq = append(uniq, p)
		}
	}
	faults := []Fault{
		{Name: "env-wait", Pod: true, Kind: KindWait,
			When: `[.status.conditions[]? | select(.type == "` + EnvCondition + `")] | length == 0`},
		{Name: "env-error", Pod: true, Kind: KindConfigError, EventReason: "Failed",
			When:    `any(.status.conditions[]?; .type == "` + EnvCondition + `" and .status == "False")`,
			Message: "Error: CreateContainerConfigError: a ConfigMap, Secret or key the container needs is missing"},
	}
	images := make([]string, 0, len(tagsOf))
	for img := range tagsOf {
		images = append(images, img)
	}
	slices.Sort(images)
	// An image no profile describes does not exist.
	quoted := make([]string, len(images))
	for i, img := range images {
		quoted[i] = strconv.Quote(img)
	}
	faults = append(faults, Fault{
		Name:    "unknown-image",
		Kind:    KindImagePull,
		When:    `(.image | sub("@.*$"; "") | sub(":[^:/]*$"; "")) as $repo | ([` + strings.Join(quoted, ", ") + `] | any(. == $repo)) | not`,
		Message: "Failed to pull image: repository does not exist or may require authorization (no app profile describes it)",
	})
	// Image pull next: nothing else matters for an image that is not there.
	for _, img := range images {
		var known []string
		for _, t := range tagsOf[img] {
			known = append(known, `.image != `+strconv.Quote(img+":"+t))
		}
		faults = append(faults, Fault{
			Name:    name(img, "pull"),
			Kind:    KindImagePull,
			When:    `(.image == ` + strconv.Quote(img) + ` or (.image | startswith(` + strconv.Quote(img+":") + `))) and ` + strings.Join(known, " and "),
			Message: "Failed to pull image from " + img + ": manifest unknown",
		})
	}
	for _, p := range uniq {
		faults = append(faults, p.faults()...)
	}
	return faults, nil
}

// faults are the ways a container of this profile fails or behaves.
func (p *Profile) faults() []Fault {
	var alts, refs []string
	for _, t := range p.Tags {
		alts = append(alts, `.image == `+strconv.Quote(p.Image+":"+t))
		refs = append(refs, p.Image+":"+t)
	}
	match := "(" + strings.Join(alts, " or ") + ")"
	id := p.Image + ":" + strings.Join(p.Tags, ",")
	var fs []Fault
	add := func(suffix, when string, f Fault) {
		f.Name = name(id, suffix)
		f.When = match + " and (" + when + ")"
		fs = append(fs, f)
	}
	if len(p.Commands) > 0 {
		var ok []string
		for _, c := range p.Commands {
			b, _ := json.Marshal(c)
			ok = append(ok, ".command != "+string(b))
		}
		add("command", `.command != null and `+strings.Join(ok, " and "), Fault{
			Reason: "StartError", ExitCode: 128, EventReason: "Failed",
			Message: "Error: failed to start container: exec: executable file not found in $PATH",
		})
	}
	for _, e := range p.RequiredEnv {
		add("env-"+strings.ToLower(e), `$env | has(`+strconv.Quote(e)+`) | not`, Fault{
			Reason: "Error", ExitCode: 1,
			Message: "Back-off restarting failed container: FATAL required environment variable " + e + " is not set",
		})
	}
	for _, d := range p.Dependencies {
		// The address names the host (host, host.ns..., scheme://[user@]host...)
		// and, if the dependency has one, the port.
		port := `(:[0-9]+)?`
		if d.Port > 0 {
			port = `:` + strconv.Itoa(int(d.Port))
		}
		re := `^([a-z][a-z0-9+.-]*://([^@/]*@)?)?` + d.Host + `(\\.[A-Za-z0-9.-]+)?` + port + `([/?#].*)?$`
		// A value the kubelet does not disclose (a Secret's) is not checked.
		add("dep-"+strings.ToLower(d.Env), `($env | has(`+strconv.Quote(d.Env)+`) | not) or (($env[`+strconv.Quote(d.Env)+`] // "") as $v | $env[`+strconv.Quote(d.Env)+`] != null and ($v | test("`+re+`") | not))`, Fault{
			Reason: "Error", ExitCode: 1,
			Message: "Back-off restarting failed container: dial tcp: connecting to the " + d.Env + " address failed: no such host or connection refused",
		})
	}
	if p.WorkingSet != nil {
		add("oom", `(.resources.limits.memory // null) as $m | $m != null and (($m | tostring | capture("^(?<n>[0-9.]+)(?<u>[A-Za-z]*)$") | (.n | tonumber) * ({"": 1, "k": 1000, "Ki": 1024, "M": 1000000, "Mi": 1048576, "G": 1000000000, "Gi": 1073741824, "T": 1000000000000, "Ti": 1099511627776}[.u] // 1)) < `+strconv.FormatInt(p.WorkingSet.Value(), 10)+`)`,
			Fault{Reason: "OOMKilled", ExitCode: 137, EventReason: "BackOff",
				Message: "Back-off restarting failed container: the container was OOMKilled"})
	}
	if p.CompletesAfterSeconds > 0 {
		add("exits", `($pod.spec.restartPolicy // "Always") == "Always"`, Fault{
			Reason: "Completed", ExitCode: 0,
			Message: "Back-off restarting failed container: the container exited 0 and is restarted (restartPolicy Always)",
		})
	}
	add("liveness", probeWrong("livenessProbe", p.Health.Liveness, p.Ports, p.PortEnv), Fault{
		Reason: "Error", ExitCode: 137, EventReason: "Unhealthy",
		Message: "Liveness probe failed: HTTP probe failed with statuscode: 404; container will be restarted",
	})
	if p.StartupSeconds > 0 {
		add("startup", `.livenessProbe != null and .startupProbe == null and (((.livenessProbe.initialDelaySeconds // 0) + (.livenessProbe.periodSeconds // 10) * (.livenessProbe.failureThreshold // 3)) < `+strconv.Itoa(int(p.StartupSeconds))+`)`,
			Fault{Reason: "Error", ExitCode: 137, EventReason: "Unhealthy",
				Message: "Liveness probe failed: connection refused; container will be restarted"})
	}
	add("readiness", probeWrong("readinessProbe", p.Health.Readiness, p.Ports, p.PortEnv), Fault{
		Kind: KindNotReady, EventReason: "Unhealthy",
		Message: "Readiness probe failed: HTTP probe failed with statuscode: 404",
	})
	if p.CompletesAfterSeconds > 0 {
		add("completes", "true", Fault{Kind: KindComplete, Seconds: int(p.CompletesAfterSeconds)})
	}
	if r := p.PeriodicRestart; r != nil {
		reason := r.Reason
		if reason == "" {
			reason = "Error"
		}
		fs = append(fs, Fault{Name: name(id, "restarts"), Kind: KindPeriodicRestart, Images: refs, Seconds: int(r.EverySeconds),
			Reason: reason, ExitCode: int(r.ExitCode)})
	}
	return fs
}

// probeWrong is jq that is true when the container's probe of that field
// checks a path or port the app does not answer on.
func probeWrong(field, path string, ports []int32, portEnv string) string {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(int(p))
	}
	listens := `[` + strings.Join(ps, ", ") + `]`
	if portEnv != "" {
		// The app listens where the variable says, when it names a port.
		listens = `(($env[` + strconv.Quote(portEnv) + `] // "") | if test("^[0-9]+$") then [tonumber] else ` + listens + ` end)`
	}
	// A named port resolves through the container's ports.
	port := `(if type == "string" then . as $n | ([$c.ports[]? | select(.name == $n) | .containerPort] | first // 0) else . end) as $x | (` + listens + ` | any(. == $x)) | not`
	pathOK := `false`
	if path != "" {
		pathOK = `(.path // "/") == ` + strconv.Quote(path)
	}
	return `. as $c | (.` + field + ` // null) as $p | $p != null and ((($p.httpGet // null) as $h | $h != null and (($h | ` + pathOK + ` | not) or ($h.port | ` + port + `))) or (($p.tcpSocket // null) as $t | $t != null and ($t.port | ` + port + `)))`
}

// name is a fault name: a short hash of the profile and a suffix.
func name(id, suffix string) string {
	sum := sha256.Sum256([]byte(id))
	n := "p" + hex.EncodeToString(sum[:4]) + "-" + suffix
	n = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, n)
	if len(n) > 63 {
		n = n[:63]
	}
	return strings.TrimRight(n, "-")
}
