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
		"pod-crashloop-demo-web-2-missing-database-url", "pod-notready-nr", "pod-imagepull-ip", "pod-delete"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Fatalf("stages = %v, want %v", names, want)
	}
	for _, bad := range []Fault{
		{Name: "Bad_Name", When: "true", Reason: "Error"},
		{Name: "ok", When: "true", Reason: "Error"},
		{Name: "x", When: "'quoted'", Reason: "Error"},
		{Name: "x", When: "true", Kind: "Sleepy"},
		{Name: "x", When: "true", Kind: FaultNotReady, Message: "it's"},
	} {
		if _, err := StagesYAML([]Fault{bad}); err == nil {
			t.Errorf("StagesYAML(%+v) succeeded, want an error", bad)
		}
	}
}
