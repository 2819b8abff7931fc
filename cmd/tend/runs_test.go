package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/internal/localstack"
)

// TestRunsCommands starts, lists, shows and stops a run on a real API
// server; the run's progress is written as the run controller would.
func TestRunsCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("starts kube-apiserver and etcd")
	}
	env, admin := startAPIServer(t)
	ctx := t.Context()
	if err := localstack.Install(ctx, admin); err != nil {
		t.Fatalf("failed to install tend: %v", err)
	}
	kubeconfig := userKubeconfig(t, env, envtest.User{Name: "ops", Groups: []string{"system:masters"}})
	if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}); err != nil {
		t.Fatal(err)
	}
	s := &tendv1.ImprovementSchedule{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "nightly"},
		Spec:       tendv1.ImprovementScheduleSpec{Schedule: "0 2 * * *", Agents: []string{"rightsizing"}, Pricing: tendv1.Pricing{CPUCoreMonthly: "20", MemoryGiBMonthly: "3", Currency: "EUR"}},
	}
	if err := admin.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runTend(t, "runs", "start", "missing", "-n", "shop", "--kubeconfig", kubeconfig); err == nil {
		t.Error("runs start of a missing schedule succeeded")
	}
	out, _, err := runTend(t, "runs", "start", "nightly", "-n", "shop", "--kubeconfig", kubeconfig)
	if err != nil {
		t.Fatalf("runs start: %v", err)
	}
	var runs tendv1.ImprovementRunList
	if err := admin.List(ctx, &runs, client.InNamespace("shop")); err != nil || len(runs.Items) != 1 {
		t.Fatalf("want one run, got %d (%v)", len(runs.Items), err)
	}
	run := &runs.Items[0]
	if !strings.Contains(out, run.Name) || run.Spec.Schedule != "nightly" || run.Spec.CanaryPercent != 10 || len(run.OwnerReferences) != 1 || run.OwnerReferences[0].UID != s.UID {
		t.Errorf("the run %+v does not copy and belong to the schedule (output %q)", run.Spec, out)
	}
	run.Status = tendv1.ImprovementRunStatus{
		Phase: tendv1.RunRolling, Batch: 1, Batches: 2,
		Items: []tendv1.RunItem{{
			Workload: tendv1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "catalog"}, Container: "catalog", Analyzer: "rightsizing", Action: "SetResources",
			Before:   tendv1.Resources{CPURequestMillicores: 2000, MemoryRequestBytes: 1 << 30, MemoryLimitBytes: 2 << 30, Replicas: 2},
			After:    tendv1.Resources{CPURequestMillicores: 120, MemoryRequestBytes: 192 << 20, MemoryLimitBytes: 192 << 20, Replicas: 2},
			Evidence: &tendv1.UsageEvidence{Window: metav1.Duration{Duration: 7 * 24 * time.Hour}, CPUPercentile: 95, Samples: 10080, CPUPercentileMillicores: 118, CPUPeakMillicores: 120, MemoryPeakBytes: 160 << 20, Source: "jetstream"},
			Outcome:  tendv1.ItemVerified, Proposal: "set-resources-catalog-x1",
		}, {
			Workload: tendv1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "fresh"}, Container: "fresh", Analyzer: "rightsizing",
			Outcome: tendv1.ItemNotEnoughData, Message: "not enough data: 12 samples in 168h0m0s, 60 needed",
		}},
		Achieved: tendv1.Savings{CPUMillicores: 3760, MemoryBytes: 2 * (1<<30 - 192<<20), Monthly: "80.38 EUR"},
	}
	if err := admin.Status().Update(ctx, run); err != nil {
		t.Fatal(err)
	}
	out, _, err = runTend(t, "runs", "list", "-n", "shop", "--kubeconfig", kubeconfig)
	if err != nil || !strings.Contains(out, run.Name) || !strings.Contains(out, "Rolling") || !strings.Contains(out, "3.76 cores") {
		t.Errorf("runs list (%v):\n%s", err, out)
	}
	dir := t.TempDir()
	out, _, err = runTend(t, "runs", "show", run.Name, "-n", "shop", "--kubeconfig", kubeconfig, "--report", dir)
	if err != nil {
		t.Fatalf("runs show: %v", err)
	}
	for _, want := range []string{"cpu 2 mem 1Gi limit 2Gi", "cpu 120m mem 192Mi limit 192Mi", "10080 samples", "cpu p95 118m", "1 Verified, 1 NotEnoughData", "80.38 EUR", "not enough data: 12 samples"} {
		if !strings.Contains(out, want) {
			t.Errorf("runs show does not say %q:\n%s", want, out)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, run.Name+".md"))
	if err != nil {
		t.Fatal(err)
	}
	svg, err := os.ReadFile(filepath.Join(dir, run.Name+"-0.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), run.Name+"-0.svg") || !strings.Contains(string(svg), "<svg") || !strings.Contains(string(svg), "192Mi") {
		t.Errorf("report:\n%s\nchart:\n%s", md, svg)
	}
	if _, _, err := runTend(t, "runs", "stop", run.Name, "-n", "shop", "--kubeconfig", kubeconfig); err != nil {
		t.Fatalf("runs stop: %v", err)
	}
	if err := admin.Get(ctx, client.ObjectKeyFromObject(run), run); err != nil || !run.Spec.Stop {
		t.Errorf("runs stop did not ask the run to stop: stop=%v (%v)", run.Spec.Stop, err)
	}
}
