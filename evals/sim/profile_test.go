package sim

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

func web() Profile {
	ws := resource.MustParse("96Mi")
	return Profile{
		Image: "registry.tend.local/shop/web", Tags: []string{"1.4"}, Commands: [][]string{{"/app/web"}},
		Ports: []int32{8080}, Health: Health{Liveness: "/healthz", Readiness: "/ready"}, WorkingSet: &ws,
		RequiredEnv: []string{"DATABASE_URL"}, Dependencies: []Dependency{{Env: "CACHE_ADDR", Host: "cache"}}, StartupSeconds: 5,
	}
}

func TestFaults(t *testing.T) {
	fs, err := Faults([]Profile{web(), web()})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, f := range fs {
		if msgs := validation.IsDNS1123Label(f.Name); len(msgs) > 0 {
			t.Errorf("fault name %q: %v", f.Name, msgs)
		}
		if strings.ContainsAny(f.When, "'\n") {
			t.Errorf("fault %s: When must be one line without single quotes: %s", f.Name, f.When)
		}
		kinds = append(kinds, f.Name[strings.Index(f.Name, "-")+1:])
	}
	// Identical profiles fold into one; the kubelet's environment comes
	// first, then images no profile describes and image pull, readiness last.
	want := []string{"wait", "error", "image", "pull", "command", "env-database-url", "dep-cache-addr", "oom", "liveness", "startup", "readiness"}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("faults = %v, want %v", kinds, want)
	}
	if !fs[0].Pod || fs[0].Kind != KindWait || fs[1].Kind != KindConfigError || fs[2].Kind != KindImagePull || fs[3].Kind != KindImagePull ||
		fs[len(fs)-1].Kind != KindNotReady || fs[7].Reason != "OOMKilled" || fs[7].ExitCode != 137 {
		t.Fatalf("unexpected kinds or exits: %+v", fs)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Profile)
	}{
		{"image with tag", func(p *Profile) { p.Image += ":1.4" }},
		{"no tags", func(p *Profile) { p.Tags = nil }},
		{"bad tag", func(p *Profile) { p.Tags = []string{"1.4 beta"} }},
		{"empty command", func(p *Profile) { p.Commands = [][]string{{}} }},
		{"quote in a command", func(p *Profile) { p.Commands = [][]string{{`/app/"web`}} }},
		{"port out of range", func(p *Profile) { p.Ports = []int32{70000} }},
		{"health path with a quote", func(p *Profile) { p.Health.Liveness = `/he"alth` }},
		{"bad env name", func(p *Profile) { p.RequiredEnv = []string{"DATABASE-URL"} }},
		{"bad dependency host", func(p *Profile) { p.Dependencies = []Dependency{{Env: "X", Host: "Cache"}} }},
		{"negative working set", func(p *Profile) { q := resource.MustParse("-1Mi"); p.WorkingSet = &q }},
		{"dependency port out of range", func(p *Profile) { p.Dependencies[0].Port = 70000 }},
		{"restarts too often", func(p *Profile) { p.PeriodicRestart = &PeriodicRestart{EverySeconds: 1} }},
		{"restart reason with a space", func(p *Profile) { p.PeriodicRestart = &PeriodicRestart{EverySeconds: 30, Reason: "OOM Killed"} }},
		{"a batch app that restarts", func(p *Profile) {
			p.CompletesAfterSeconds = 3
			p.PeriodicRestart = &PeriodicRestart{EverySeconds: 30}
		}},
		{"peak memory below the working set", func(p *Profile) {
			q := resource.MustParse("10Mi")
			p.Usage = &Usage{CPU: resource.MustParse("10m"), PeakMemory: &q}
		}},
		{"no cpu usage", func(p *Profile) { p.Usage = &Usage{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := web()
			tt.mutate(&p)
			if _, err := Faults([]Profile{p}); !errors.Is(err, ErrInvalidProfile) {
				t.Fatalf("Faults error = %v, want ErrInvalidProfile", err)
			}
		})
	}
	other := web()
	other.Ports = []int32{9090}
	if _, err := Faults([]Profile{web(), other}); !errors.Is(err, ErrInvalidProfile) {
		t.Fatalf("two different profiles of one tag: error = %v, want ErrInvalidProfile", err)
	}
}
