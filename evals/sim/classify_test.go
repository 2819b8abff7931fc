package sim

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/itchyny/gojq"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/tendops/tend/internal/localstack"
)

// stages renders the kwok stages of profiles, as the harness does, and
// returns the jq expressions of their selectors by stage name.
func stages(t *testing.T, profiles ...Profile) map[string][]string {
	t.Helper()
	sfs, err := Faults(profiles)
	if err != nil {
		t.Fatal(err)
	}
	var lfs []localstack.Fault
	for _, f := range sfs {
		lfs = append(lfs, localstack.Fault{Name: f.Name, When: f.When, Pod: f.Pod, Kind: localstack.FaultKind(f.Kind), Reason: f.Reason,
			ExitCode: f.ExitCode, EventReason: f.EventReason, Message: f.Message, Seconds: f.Seconds, Images: f.Images})
	}
	b, err := localstack.StagesYAML(lfs)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, doc := range strings.Split(string(b), "\n---\n") {
		var st struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Selector struct {
					MatchExpressions []struct {
						JQ struct {
							Key string `json:"key"`
						} `json:"jq"`
					} `json:"matchExpressions"`
				} `json:"selector"`
				Delay struct {
					DurationFrom struct {
						JQ struct {
							Expression string `json:"expression"`
						} `json:"jq"`
					} `json:"durationFrom"`
				} `json:"delay"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &st); err != nil {
			t.Fatalf("a stage does not parse: %v\n%s", err, doc)
		}
		for _, m := range st.Spec.Selector.MatchExpressions {
			out[st.Metadata.Name] = append(out[st.Metadata.Name], m.JQ.Key)
		}
		if e := st.Spec.Delay.DurationFrom.JQ.Expression; e != "" {
			out[st.Metadata.Name+"/delay"] = []string{e}
		}
	}
	return out
}

// jq runs one expression over a pod, as kwok does, and returns its single
// result.
func jq(t *testing.T, expr string, pod *corev1.Pod) any {
	t.Helper()
	q, err := gojq.Parse(expr)
	if err != nil {
		t.Fatalf("jq does not parse: %v\n%s", err, expr)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		t.Fatalf("jq does not compile: %v\n%s", err, expr)
	}
	b, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	var in any
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	iter := code.Run(in)
	v, ok := iter.Next()
	if !ok {
		t.Fatalf("jq yields nothing:\n%s", expr)
	}
	if err, isErr := v.(error); isErr {
		t.Fatalf("jq fails: %v\n%s", err, expr)
	}
	return v
}

// classifyExpr is the classifier the simulated kubelet runs on each pod.
func classifyExpr(t *testing.T, profiles ...Profile) string {
	t.Helper()
	sfs, err := Faults(profiles)
	if err != nil {
		t.Fatal(err)
	}
	var lfs []localstack.Fault
	for _, f := range sfs {
		lfs = append(lfs, localstack.Fault{Name: f.Name, When: f.When, Pod: f.Pod, Kind: localstack.FaultKind(f.Kind), Reason: f.Reason,
			ExitCode: f.ExitCode, EventReason: f.EventReason, Message: f.Message, Seconds: f.Seconds, Images: f.Images})
	}
	c, err := localstack.Classifier(lfs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

type podOpt func(*corev1.Pod)

func withEnv(env map[string]map[string]*string) podOpt {
	return func(p *corev1.Pod) {
		b, _ := json.Marshal(env)
		p.Status.Conditions = append(p.Status.Conditions, corev1.PodCondition{Type: EnvCondition, Status: corev1.ConditionTrue, Message: string(b)})
	}
}

func pod(image string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{Spec: corev1.PodSpec{NodeName: "n", RestartPolicy: corev1.RestartPolicyAlways,
		Containers: []corev1.Container{{Name: "app", Image: image}}}}
	for _, o := range opts {
		o(p)
	}
	return p
}

func TestClassify(t *testing.T) {
	batch := Profile{Image: "registry.tend.local/shop/report", Tags: []string{"1.0"}, CompletesAfterSeconds: 4}
	flaky := Profile{Image: "registry.tend.local/shop/cache", Tags: []string{"3.1"}, Ports: []int32{6379},
		PeriodicRestart: &PeriodicRestart{EverySeconds: 30, Reason: "OOMKilled", ExitCode: 137}}
	dep := web()
	dep.Tags = []string{"2.0"}
	dep.Dependencies = []Dependency{{Env: "CACHE_ADDR", Host: "cache", Port: 6379}}
	st := stages(t, web(), batch, flaky, dep)
	classify := classifyExpr(t, web(), batch, flaky, dep)
	fault := func(suffix string) string { return suffix } // matched by suffix below
	str := func(s string) *string { return &s }
	okEnv := func(extra map[string]*string) podOpt {
		env := map[string]*string{"DATABASE_URL": str("postgres://db:5432/shop"), "CACHE_ADDR": str("cache")}
		for k, v := range extra {
			env[k] = v
		}
		return withEnv(map[string]map[string]*string{"app": env})
	}
	never := func(p *corev1.Pod) { p.Spec.RestartPolicy = corev1.RestartPolicyNever }
	tests := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"waits for the kubelet's environment", pod("registry.tend.local/shop/web:1.4"), "env-wait"},
		{"config error", pod("registry.tend.local/shop/web:1.4", func(p *corev1.Pod) {
			p.Status.Conditions = []corev1.PodCondition{{Type: EnvCondition, Status: corev1.ConditionFalse, Reason: "CreateContainerConfigError"}}
		}), "env-error"},
		{"healthy", pod("registry.tend.local/shop/web:1.4", okEnv(nil)), "ok"},
		{"required variable missing from the resolved env", pod("registry.tend.local/shop/web:1.4", withEnv(map[string]map[string]*string{"app": {"CACHE_ADDR": str("cache")}})), fault("env-database-url")},
		{"a variable only in the spec does not count: the kubelet's env does", pod("registry.tend.local/shop/web:1.4", func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "DATABASE_URL", Value: "x"}}
		}, withEnv(map[string]map[string]*string{"app": {"CACHE_ADDR": str("cache")}})), fault("env-database-url")},
		{"dependency on another host", pod("registry.tend.local/shop/web:1.4", okEnv(map[string]*string{"CACHE_ADDR": str("cache-old:6379")})), fault("dep-cache-addr")},
		{"dependency as host.namespace:port", pod("registry.tend.local/shop/web:1.4", okEnv(map[string]*string{"CACHE_ADDR": str("cache.shop.svc:6379")})), "ok"},
		{"dependency from a Secret is not checked", pod("registry.tend.local/shop/web:1.4", okEnv(map[string]*string{"CACHE_ADDR": nil})), "ok"},
		{"dependency with the right port", pod("registry.tend.local/shop/web:2.0", okEnv(map[string]*string{"CACHE_ADDR": str("redis://cache:6379/0")})), "ok"},
		{"dependency with the wrong port", pod("registry.tend.local/shop/web:2.0", okEnv(map[string]*string{"CACHE_ADDR": str("redis://cache:6380/0")})), fault("dep-cache-addr")},
		{"dependency without the port it needs", pod("registry.tend.local/shop/web:2.0", okEnv(map[string]*string{"CACHE_ADDR": str("cache")})), fault("dep-cache-addr")},
		{"unknown tag", pod("registry.tend.local/shop/web:9.9", okEnv(nil)), fault("pull")},
		{"unprofiled repository never runs", pod("docker.io/library/busybox:1.36", okEnv(nil)), "unknown-image"},
		{"unprofiled repository with a registry port", pod("localhost:5000/app", okEnv(nil)), "unknown-image"},
		{"batch app in a Job completes", pod("registry.tend.local/shop/report:1.0", never, withEnv(map[string]map[string]*string{"app": {}})), "complete"},
		{"batch app under restartPolicy Always crash-loops", pod("registry.tend.local/shop/report:1.0", withEnv(map[string]map[string]*string{"app": {}})), fault("exits")},
		{"periodically restarting app is healthy", pod("registry.tend.local/shop/cache:3.1", withEnv(map[string]map[string]*string{"app": {}})), "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := jq(t, classify, tt.pod).(string)
			if got != tt.want && !strings.HasSuffix(got, "-"+tt.want) {
				t.Fatalf("classify = %q, want %q", got, tt.want)
			}
		})
	}

	// The stages read the simulated kubelet's verdict rather than classify
	// each pod themselves, stage by stage.
	if !strings.Contains(strings.Join(st["pod-ready"], " "), localstack.SimulatedStateType) {
		t.Fatalf("pod-ready does not read the simulator's verdict: %v", st["pod-ready"])
	}
	// The periodic restart stage selects the flaky app's pods only.
	var restart string
	for name, keys := range st {
		if strings.HasPrefix(name, "pod-restart-") {
			restart = keys[len(keys)-1]
		}
	}
	if jq(t, restart, pod("registry.tend.local/shop/cache:3.1")) != true || jq(t, restart, pod("registry.tend.local/shop/web:1.4")) != false {
		t.Fatalf("periodic restart selector %q", restart)
	}
	// A completing pod runs as long as its longest container.
	two := pod("registry.tend.local/shop/report:1.0", never)
	two.Spec.Containers = append(two.Spec.Containers, corev1.Container{Name: "b", Image: "registry.tend.local/shop/report:1.0"})
	if d := jq(t, st["pod-complete/delay"][0], two); d != "4s" {
		t.Fatalf("completion delay = %v, want 4s", d)
	}
}

func TestClassifyOOMAndProbes(t *testing.T) {
	classify := classifyExpr(t, web())
	str := func(s string) *string { return &s }
	env := withEnv(map[string]map[string]*string{"app": {"DATABASE_URL": str("x"), "CACHE_ADDR": str("cache")}})
	low := pod("registry.tend.local/shop/web:1.4", env, func(p *corev1.Pod) {
		p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}
	})
	if got := jq(t, classify, low).(string); !strings.HasSuffix(got, "-oom") {
		t.Fatalf("limit below the working set: classify = %q", got)
	}
	probe := pod("registry.tend.local/shop/web:1.4", env, func(p *corev1.Pod) {
		p.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{}}}
		p.Spec.Containers[0].ReadinessProbe.TCPSocket.Port.IntVal = 8081
		p.Spec.Containers[0].StartupProbe = &corev1.Probe{PeriodSeconds: 1, FailureThreshold: ptr.Deref(ptr.To[int32](30), 0)}
	})
	if got := jq(t, classify, probe).(string); !strings.HasSuffix(got, "-readiness") {
		t.Fatalf("readiness probe on another port: classify = %q", got)
	}
}
