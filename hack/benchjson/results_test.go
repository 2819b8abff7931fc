package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const gateOutput = `goos: linux
goarch: amd64
pkg: github.com/tendops/tend/policies
cpu: AMD EPYC
BenchmarkGate/policies=1-2     	  412233	      5618 ns/op	         3.5 decision_p50-µs	        22.0 decision_p99-µs	    200000 throughput-decisions/s	    2418 B/op	      35 allocs/op
BenchmarkGate/policies=100-2   	   30207	     76744 ns/op	        20.0 decision_p50-µs	        40.0 decision_p99-µs	     40000 throughput-decisions/s	    2376 B/op	      35 allocs/op
BenchmarkGateOPA/policies=100-2	    1000	   1000000 ns/op	       800.0 decision_p50-µs	      1200.0 decision_p99-µs	      1000 throughput-decisions/s	  500000 B/op	    9000 allocs/op
PASS
ok  	github.com/tendops/tend/policies	20.1s
`

func TestEntries(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		reference string
		want      []entry
		wantErr   string
	}{
		{
			name:      "subjects and references",
			input:     gateOutput,
			reference: "OPA",
			want: []entry{
				{Name: "gate/decision_p50/policies=1", Unit: "µs", Value: 3.5},
				{Name: "gate/decision_p99/policies=1", Unit: "µs", Value: 22},
				{Name: "gate/throughput/policies=1", Unit: "decisions/s", Value: 200000},
				{Name: "gate/decision_p50/policies=100", Unit: "µs", Value: 20, ReferenceName: "BenchmarkGateOPA/policies=100", ReferenceValue: ptr(800.0), Ratio: ptr(40.0)},
				{Name: "gate/decision_p99/policies=100", Unit: "µs", Value: 40, ReferenceName: "BenchmarkGateOPA/policies=100", ReferenceValue: ptr(1200.0), Ratio: ptr(30.0)},
				{Name: "gate/throughput/policies=100", Unit: "decisions/s", Value: 40000, ReferenceName: "BenchmarkGateOPA/policies=100", ReferenceValue: ptr(1000.0), Ratio: ptr(40.0)},
			},
		},
		{
			name: "median of repeated runs, no sub-benchmark, no GOMAXPROCS suffix",
			input: `BenchmarkPublish 	 100	 5 ns/op	 3 latency_p99-µs
BenchmarkPublish 	 100	 5 ns/op	 1 latency_p99-µs
BenchmarkPublish 	 100	 5 ns/op	 2 latency_p99-µs
`,
			want: []entry{{Name: "bus/latency_p99", Unit: "µs", Value: 2}},
		},
		{
			name: "two benchmarks naming one entry",
			input: `BenchmarkA/n=1-2 	 1	 1 ns/op	 1 x-µs
BenchmarkB/n=1-2 	 1	 1 ns/op	 1 x-µs
`,
			wantErr: "both report x-µs",
		},
		{
			name:    "failure",
			input:   "BenchmarkGate/policies=1-2 	 1	 1 ns/op	 1 x-µs\n--- FAIL: BenchmarkGate/policies=10\nFAIL\n",
			wantErr: "the benchmarks failed",
		},
		{
			name:    "no custom metric",
			input:   "BenchmarkGate-2 	 1	 1 ns/op	 0 B/op	 0 allocs/op\n",
			wantErr: errNoResult.Error(),
		},
		{
			name:    "no benchmark",
			input:   "PASS\nok  	x	0.1s\n",
			wantErr: errNoResult.Error(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			area := "gate"
			if strings.Contains(tt.input, "Publish") {
				area = "bus"
			}
			results, err := parse(strings.NewReader(tt.input))
			var got []entry
			if err == nil {
				got, err = toEntries(area, tt.reference, results)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("error = %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("entries mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunKeepsOtherAreas(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bench", "results.json")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	old := `[
  {"name": "bus/publish_p99", "unit": "µs", "value": 12, "note": "kept as is"},
  {"name": "gate/stale", "unit": "µs", "value": 1},
  {"name": "gateway/x", "unit": "µs", "value": 2}
]`
	if err := os.WriteFile(file, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(t.Context(), options{area: "gate", reference: "OPA", file: file}, strings.NewReader(gateOutput), &out); err != nil {
		t.Fatalf("run() error = %v", err)
	}
	if !strings.HasPrefix(out.String(), gateOutput) {
		t.Errorf("run() did not echo its input:\n%s", out.String())
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("results file %s: %v", data, err)
	}
	var names []string
	for _, e := range got {
		names = append(names, e["name"].(string))
	}
	want := []string{
		"bus/publish_p99",
		"gate/decision_p50/policies=1", "gate/decision_p50/policies=100",
		"gate/decision_p99/policies=1", "gate/decision_p99/policies=100",
		"gate/throughput/policies=1", "gate/throughput/policies=100",
		"gateway/x",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("entry names mismatch (-want +got):\n%s", diff)
	}
	if got[0]["note"] != "kept as is" {
		t.Errorf("entry of another area = %v, want it kept as is", got[0])
	}

	// A failed run writes nothing.
	err = run(t.Context(), options{area: "gate", file: file}, strings.NewReader("FAIL\n"), &out)
	if err == nil {
		t.Fatal("run() of a failed benchmark run succeeded")
	}
	after, _ := os.ReadFile(file)
	if !bytes.Equal(after, data) {
		t.Errorf("run() of a failed benchmark run changed the results file")
	}
	if errors.Is(err, errNoResult) {
		t.Errorf("run() error = %v, want the failure", err)
	}
}
