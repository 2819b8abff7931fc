package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestPrintFindings(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ev := func(kind, ns, name, msg string, ago time.Duration) corev1.Event {
		return corev1.Event{
			InvolvedObject: corev1.ObjectReference{Kind: kind, Namespace: ns, Name: name},
			EventTime:      metav1.NewMicroTime(now.Add(-ago)), Message: msg,
		}
	}
	var out bytes.Buffer
	printFindings(&out, []corev1.Event{
		ev("Deployment", "shop", "api", "Deployment shop/api crash-loops.", 5*time.Minute),
		ev("Node", "", "a", "Node a is NotReady.", time.Minute),
	}, now)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	want := []string{"AGE", "60s  Node/a", "5m   Deployment/shop/api"}
	if len(lines) != 3 {
		t.Fatalf("output:\n%s", out.String())
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to start with %q", i, lines[i], w)
		}
	}
	out.Reset()
	printFindings(&out, nil, now)
	if out.String() != "No findings.\n" {
		t.Errorf("empty output = %q", out.String())
	}
}
