package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEvalRunFlags checks argument validation of `tend eval run`, which
// fails before any stack starts.
func TestEvalRunFlags(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: x\ncategory: chaos\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"eval", "run", "--runs", "0"}, "--runs must be between 1 and 100"},
		{[]string{"eval", "run", "--concurrency", "0"}, "--concurrency must be between 1 and 200"},
		{[]string{"eval", "run", "--brain", "gpt"}, `brain "gpt": must be deterministic, llm, hybrid or none`},
		{[]string{"eval", "run", "--brain", "llm"}, "brain llm: planner: no model named"},
		{[]string{"eval", "run", "--brain", "hybrid", "--llm-model", "m", "--llm-max-steps", "0"}, "--llm-max-steps must be at least 1"},
		{[]string{"eval", "run", bad, "--bin-dir", t.TempDir()}, `category "chaos"`},
		{[]string{"eval", "run", filepath.Join(t.TempDir(), "missing")}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			cmd := newRootCommand()
			var out bytes.Buffer
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			cmd.SetArgs(tt.args)
			err := cmd.Execute()
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}
