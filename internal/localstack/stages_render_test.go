package localstack

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestStagesYAMLRenders renders the stages for every kind of fault and
// checks each document is YAML with the stage the kind needs.
func TestStagesYAMLRenders(t *testing.T) {
	b, err := StagesYAML(append(DemoFaults,
		Fault{Name: "nr", When: `.readinessProbe != null`, Kind: FaultNotReady, Message: "Readiness probe failed: HTTP probe failed with statuscode: 404"},
		Fault{Name: "ip", When: `.image == "x:9"`, Kind: FaultImagePull},
		Fault{Name: "wait", Pod: true, When: `.status.conditions == null`, Kind: FaultWait},
		Fault{Name: "cfg", Pod: true, When: `.status.phase == "Pending"`, Kind: FaultConfigError},
		Fault{Name: "job", When: `.image == "batch:1"`, Kind: FaultComplete, Seconds: 3},
		Fault{Name: "leak", Kind: FaultPeriodicRestart, Images: []string{"leaky:1"}, Seconds: 30, Reason: "OOMKilled", ExitCode: 137},
	))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i, doc := range strings.Split(string(b), "\n---\n") {
		var st struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &st); err != nil {
			t.Fatalf("document %d does not parse: %v\n%s", i, err, doc)
		}
		names = append(names, st.Metadata.Name)
	}
	want := []string{"node-initialize", "node-heartbeat", "pod-ready", "pod-init-crashloop",
		"pod-crashloop-demo-web-2-missing-database-url", "pod-failed-demo-web-2-missing-database-url", "pod-notready-nr", "pod-imagepull-ip",
		"pod-configerror-cfg", "pod-restart-leak", "pod-complete", "pod-delete"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("stages = %v, want %v", names, want)
	}
	for _, bad := range []Fault{
		{Name: "Bad_Name", When: "true", Reason: "Error"},
		{Name: "ok", When: "true", Reason: "Error"},
		{Name: "x", When: "'quoted'", Reason: "Error"},
		{Name: "x", When: "true", Kind: "Sleepy"},
		{Name: "x", When: "true", Kind: FaultNotReady, Message: "it's"},
		{Name: "complete", When: "true", Kind: FaultComplete, Seconds: 1},
		{Name: "x", When: "true", Kind: FaultWait},
		{Name: "x", When: "true", Pod: true, Reason: "Error"},
		{Name: "x", When: "true", Kind: FaultComplete},
		{Name: "x", Kind: FaultPeriodicRestart, Reason: "Error", Seconds: 10},
		{Name: "x", Kind: FaultPeriodicRestart, Reason: "Error", Images: []string{"a:1"}},
		{Name: "x", Kind: FaultPeriodicRestart, Reason: "Error", Images: []string{`a"b`}, Seconds: 10},
	} {
		if _, err := StagesYAML([]Fault{bad}); err == nil {
			t.Errorf("StagesYAML(%+v) succeeded, want an error", bad)
		}
	}
}
