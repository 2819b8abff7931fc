package main

import (
	"bytes"
	"strings"
	"testing"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// TestPrintApplyShim: `tend proposals show` names the node and attempt of
// a node action, and links the stored diagnostics.
func TestPrintApplyShim(t *testing.T) {
	var out bytes.Buffer
	printApply(&out, "Applied:", &tendv1.ApplyRecord{Attempt: "a1", Before: "no diagnostics of pod web-1 on n1", After: "stored",
		Shim: &tendv1.ShimRecord{Node: "n1", AttemptID: "uid/apply/a1", Diagnostics: &tendv1.DiagnosticsRef{
			Bucket: "tend-diagnostics", Object: "prod/n1/abc.json", Size: 2048, Digest: "SHA-256=xyz", Containers: 2}}})
	for _, want := range []string{"Shim:       node n1, attempt uid/apply/a1", "Bundle:     tend-diagnostics/prod/n1/abc.json (2048 bytes, 2 containers, SHA-256=xyz)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output %q lacks %q", out.String(), want)
		}
	}
}
