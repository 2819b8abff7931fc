package main

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

func TestDescribeRunFacts(t *testing.T) {
	end := metav1.NewTime(time.Date(2026, 3, 14, 3, 0, 0, 0, time.UTC))
	for _, tt := range []struct {
		facts tendv1.RunFacts
		want  string
	}{
		{tendv1.RunFacts{Namespace: "shop", Name: "nightly-1", Member: true, WindowEnd: &end}, "a change of improvement run shop/nightly-1, whose window closes at 2026-03-14T03:00:00Z"},
		{tendv1.RunFacts{Namespace: "shop", Name: "nightly-1", Member: true, Undo: true, WindowEnd: &end}, "the undo of a change of improvement run shop/nightly-1 (never held to its window)"},
		{tendv1.RunFacts{Namespace: "shop", Name: "nightly-1"}, "names improvement run shop/nightly-1, which does not list it"},
	} {
		if got := describeRunFacts(&tt.facts); got != tt.want {
			t.Errorf("describeRunFacts(%+v) = %q, want %q", tt.facts, got, tt.want)
		}
	}
}
