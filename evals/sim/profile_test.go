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
	// Identical profiles fold into one; image pull decides first, readiness last.
	want := []string{"pull", "command", "env-database-url", "dep-cache-addr", "oom", "liveness", "startup", "readiness"}
	if strings.Join(kinds, ",") != strings.Join(want, ",") {
		t.Fatalf("faults = %v, want %v", kinds, want)
	}
	if fs[0].Kind != KindImagePull || fs[len(fs)-1].Kind != KindNotReady || fs[4].Reason != "OOMKilled" || fs[4].ExitCode != 137 {
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
