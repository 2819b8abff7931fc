package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestSuiteLoads checks the shipped suite: it loads, covers every category,
// and has the controls the spec asks for.
func TestSuiteLoads(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "scenarios", "*.yaml"))
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Error(err)
		}
	}
	scs, err := Load(filepath.Join("..", "scenarios"))
	if err != nil {
		t.Fatal(err)
	}
	if len(scs) < 25 {
		t.Errorf("the suite has %d scenarios, want at least 25", len(scs))
	}
	cats := map[Category]int{}
	var adversarial, twoFault, control int
	for _, s := range scs {
		cats[s.Category]++
		if s.Category == CategoryAdversarial {
			adversarial++
		}
		if len(s.Faults) >= 2 && s.Category == CategoryControl {
			twoFault++
		}
		if s.Category == CategoryControl && s.Oracle.ExpectHealthy && len(s.Faults) == 0 {
			control++
		}
	}
	for _, c := range Categories {
		if cats[c] == 0 {
			t.Errorf("no scenario in category %s", c)
		}
	}
	if adversarial < 3 || twoFault < 1 || control < 1 {
		t.Errorf("want ≥3 adversarial, ≥1 two-fault and ≥1 healthy control; have %d, %d, %d", adversarial, twoFault, control)
	}
}

func TestParseErrors(t *testing.T) {
	valid, err := os.ReadFile(filepath.Join("..", "scenarios", "crashloop-after-bad-rollout.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(valid); err != nil {
		t.Fatalf("valid scenario: %v", err)
	}
	tests := []struct {
		name    string
		mutate  func(string) string
		wantErr string
	}{
		{"unknown field", func(s string) string { return s + "extra: 1\n" }, `unknown field "extra"`},
		{"bad category", func(s string) string { return strings.Replace(s, "category: workload", "category: chaos", 1) }, `category "chaos"`},
		{"bad difficulty", func(s string) string { return strings.Replace(s, "difficulty: easy", "difficulty: trivial", 1) }, `difficulty "trivial"`},
		{"unknown field in a manifest", func(s string) string {
			return strings.Replace(s, "    revisionHistoryLimit: 5", "    revisionHistoryLimt: 5", 1)
		}, "revisionHistoryLimt"},
		{"namespace in a manifest", func(s string) string {
			return strings.Replace(s, "    name: web\n    labels:", "    name: web\n    namespace: prod\n    labels:", 1)
		}, "sets a namespace"},
		{"patch target not in baseline", func(s string) string {
			return strings.Replace(s, "      kind: Deployment\n      name: web\n    patch:", "      kind: Deployment\n      name: webx\n    patch:", 1)
		}, "not in the baseline"},
		{"label-only fault", func(s string) string {
			i := strings.Index(s, "faults:")
			j := strings.Index(s, "oracle:")
			return s[:i] + "faults:\n- patch:\n    target: {apiVersion: apps/v1, kind: Deployment, name: web}\n    patch: {metadata: {labels: {broken: \"true\"}}}\n" + s[j:]
		}, "only touches labels or annotations"},
		{"conflicting profiles", func(s string) string {
			return strings.Replace(s, "  workingSet: 128Mi", "  workingSet: 128Mi\n- image: registry.tend.local/shop/web\n  tags: ['2.0']\n  workingSet: 1Gi", 1)
		}, "two different profiles"},
		{"no faults", func(s string) string {
			i := strings.Index(s, "faults:")
			j := strings.Index(s, "oracle:")
			return s[:i] + s[j:]
		}, "without a fault"},
		{"not yaml", func(string) string { return "{{{" }, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.mutate(string(valid))))
			if err == nil {
				t.Fatalf("Parse succeeded, want an error containing %q", tt.wantErr)
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Parse error = %v, want ErrInvalid containing %q", err, tt.wantErr)
			}
		})
	}
}

// FuzzParse: any input either parses into a valid scenario or returns
// ErrInvalid; it never panics.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "scenarios", "*.yaml"))
	slices.Sort(files)
	for _, p := range files[:min(4, len(files))] {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("name: x\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error is not ErrInvalid: %v", err)
			}
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("parsed scenario does not validate: %v", err)
		}
	})
}
