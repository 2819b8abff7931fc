package wire

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name string
		raw  string
		// want is the decoded arguments; wantErr the text the error must hold.
		want    ScaleWorkloadArgs
		wantErr []string
	}{
		{name: "valid", raw: `{"namespace":"team","name":"web","replicas":0,"summary":"s"}`,
			want: ScaleWorkloadArgs{WorkloadArgs: WorkloadArgs{Namespace: "team", Name: "web"}, Replicas: ptr(int32(0)), Common: Common{Summary: "s"}}},
		{name: "no arguments", raw: ``},
		{name: "null", raw: `null`},
		{name: "an unknown argument is named", raw: `{"namespace":"team","name":"web","replicas":1,"summary":"s","dryRun":true}`,
			wantErr: []string{`unknown argument "dryRun"`}},
		{name: "every unknown argument is named", raw: `{"dryRun":true,"force":1,"namespace":"team"}`,
			wantErr: []string{`unknown arguments "dryRun", "force"`}},
		{name: "a known name in another case is unknown", raw: `{"Replicas":1}`,
			wantErr: []string{`unknown argument "Replicas"`}},
		{name: "unknown keys in nested objects", raw: `{"telemetry":[{"subject":"a","seq":1}]}`,
			wantErr: []string{`unknown argument "telemetry[0].seq"`}},
		{name: "wrong type names the field", raw: `{"replicas":"three"}`,
			wantErr: []string{"replicas", "a JSON string where an integer (in range) is expected"}},
		{name: "out of range", raw: `{"replicas":4294967296}`,
			wantErr: []string{"replicas", "integer"}},
		{name: "not an object", raw: `[1,2]`, wantErr: []string{"must be a JSON object"}},
		{name: "trailing data", raw: `{"namespace":"a"} {"namespace":"b"}`, wantErr: []string{"after the arguments"}},
		{name: "invalid JSON", raw: `{"namespace":`, wantErr: []string{"not valid JSON"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got ScaleWorkloadArgs
			err := Decode([]byte(tc.raw), &got)
			if len(tc.wantErr) > 0 {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("Decode = %v, want ErrInvalidArgument", err)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decoded mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodePatchValueIsAnyJSON(t *testing.T) {
	for _, v := range []string{`"img:1"`, `3`, `true`, `{"name":"A","value":"b"}`, `[{"name":"A"}]`} {
		var got PatchWorkloadArgs
		raw := `{"namespace":"team","name":"web","summary":"s","patch":[{"op":"add","path":"/spec/x","value":` + v + `}]}`
		if err := Decode([]byte(raw), &got); err != nil {
			t.Fatalf("value %s: %v", v, err)
		}
		if string(got.Patch[0].Value) != v {
			t.Errorf("value %s decoded as %s", v, got.Patch[0].Value)
		}
		if _, err := Validate(&got); err != nil {
			t.Errorf("value %s: Validate: %v", v, err)
		}
	}
	// null is no value: a field is unset with op remove.
	var null PatchWorkloadArgs
	if err := Decode([]byte(`{"namespace":"team","name":"web","summary":"s","patch":[{"op":"replace","path":"/spec/x","value":null}]}`), &null); err != nil {
		t.Fatal(err)
	}
	if _, err := Validate(&null); err == nil || !strings.Contains(err.Error(), "use op remove") {
		t.Errorf("a null value: Validate: %v", err)
	}
	// Objects inside the value are the caller's: their keys are not arguments.
	var got PatchWorkloadArgs
	if err := Decode([]byte(`{"patch":[{"op":"add","path":"/spec/x","value":{"anything":1}}]}`), &got); err != nil {
		t.Errorf("keys inside a value: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

// FuzzDecode decodes arbitrary input into every kind of arguments: it
// never panics, its errors stay small, and what it accepts has no key the
// struct does not declare.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `[]`, `"x"`, `{"namespace":"team","name":"web","replicas":3,"summary":"s"}`,
		`{"patch":[{"op":"add","path":"/spec/a","value":{"k":[1,2,{"z":null}]}}]}`,
		`{"dryRun":true,"DRYRUN":1,"telemetry":[{"subject":"s","x":1}]}`,
		`{"requests":{"cpu":"1","bogus":"2"},"limits":[]}`, `{"replicas":1e400}`,
	} {
		f.Add([]byte(s))
	}
	targets := []func() any{
		func() any { return &ScaleWorkloadArgs{} }, func() any { return &PatchWorkloadArgs{} },
		func() any { return &SetResourcesArgs{} }, func() any { return &DrainNodeArgs{} },
		func() any { return &CollectDiagnosticsArgs{} }, func() any { return &ListResourcesArgs{} },
		func() any { return &GetTelemetryArgs{} }, func() any { return &GetPoliciesArgs{} },
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, mk := range targets {
			out := mk()
			err := Decode(raw, out)
			if err != nil {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("%T: error %v does not wrap ErrInvalidArgument", out, err)
				}
				if len(err.Error()) > 2048 {
					t.Fatalf("%T: %d-byte error for %d bytes of input", out, len(err.Error()), len(raw))
				}
				continue
			}
			if pa, ok := out.(ProposeArgs); ok {
				_, _ = Validate(pa)
			}
			// What was accepted decodes the same through encoding/json.
			var m map[string]json.RawMessage
			if json.Unmarshal(raw, &m) == nil {
				for k := range m {
					if _, ok := jsonFields(typeOf(out))[k]; !ok {
						t.Fatalf("%T accepted unknown key %q", out, k)
					}
				}
			}
		}
	})
}

func typeOf(v any) reflect.Type {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}
