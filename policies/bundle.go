package policies

import (
	"bufio"
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

//go:embed bundle/default.yaml
var defaultBundle []byte

// ErrInvalidBundle is wrapped by every error of ParsePolicies.
var ErrInvalidBundle = errors.New("policies: invalid policy bundle")

// DefaultBundle returns the default policy bundle shipped with tend: a single
// GatePolicy, tend-default.
func DefaultBundle() ([]v1alpha1.GatePolicy, error) {
	return ParsePolicies(defaultBundle)
}

// ParsePolicies parses a multi-document YAML stream of GatePolicies strictly,
// as the API server would: field names are case-sensitive, and an unknown or
// duplicate field, a wrong apiVersion or kind, a missing name or two policies
// with the same name is an error naming the document (counted from 0).
// Documents holding nothing but comments are skipped. Rules are not compiled
// here; Gate.Load does that.
func ParsePolicies(data []byte) ([]v1alpha1.GatePolicy, error) {
	var out []v1alpha1.GatePolicy
	names := make(map[string]int)
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: document %d: %w", ErrInvalidBundle, i, err)
		}
		gp, ok, err := parsePolicy(doc)
		if err != nil {
			return nil, fmt.Errorf("%w: document %d: %w", ErrInvalidBundle, i, err)
		}
		if !ok {
			continue
		}
		if j, dup := names[gp.Name]; dup {
			return nil, fmt.Errorf("%w: document %d: GatePolicy %q is already defined in document %d", ErrInvalidBundle, i, gp.Name, j)
		}
		names[gp.Name] = i
		out = append(out, gp)
	}
	return out, nil
}

// parsePolicy decodes one document; ok is false for an empty document.
func parsePolicy(doc []byte) (gp v1alpha1.GatePolicy, ok bool, err error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return gp, false, fmt.Errorf("failed to parse YAML: %w", err)
	}
	if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return gp, false, nil
	}
	strict, err := sigsjson.UnmarshalStrict(js, &gp, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return gp, false, fmt.Errorf("failed to decode GatePolicy: %w", err)
	}
	if len(strict) > 0 {
		return gp, false, fmt.Errorf("failed to decode GatePolicy: %w", errors.Join(strict...))
	}
	if gv := v1alpha1.GroupVersion.String(); gp.APIVersion != gv {
		return gp, false, fmt.Errorf("apiVersion is %q, want %q", gp.APIVersion, gv)
	}
	if gp.Kind != "GatePolicy" {
		return gp, false, fmt.Errorf("kind is %q, want %q", gp.Kind, "GatePolicy")
	}
	if gp.Name == "" {
		return gp, false, errors.New("metadata.name is empty")
	}
	return gp, true, nil
}
