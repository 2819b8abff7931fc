package usage_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tendops/tend/usage"
)

// startPrometheus backfills the OpenMetrics text into a TSDB with promtool
// and serves it with a real Prometheus on a free loopback port until the
// test ends. It returns the server's URL.
func startPrometheus(t *testing.T, openMetrics string) string {
	t.Helper()
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is not installed (Debian package prometheus): %v", err)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not installed (Debian package prometheus): %v", err)
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	in := filepath.Join(dir, "usage.om")
	if err := os.WriteFile(in, []byte(openMetrics), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.CommandContext(t.Context(), promtool, "tsdb", "create-blocks-from", "openmetrics", in, data).CombinedOutput(); err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("scrape_configs: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	cmd := exec.Command(prom, "--config.file="+cfg, "--storage.tsdb.path="+data, "--web.listen-address="+addr,
		"--storage.tsdb.retention.time=30d", "--log.level=warn")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	url := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("prometheus exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s:\n%s", logs.String())
		}
	}
}

func TestPrometheusHistory(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	// Three hours of 1-minute samples ending an hour ago: web's two pods use
	// 50m and 200m of CPU; memory climbs 1Mi a minute from 100Mi.
	end := time.Now().Add(-time.Hour).Truncate(time.Minute)
	start := end.Add(-3 * time.Hour)
	pods := map[string]float64{"web-7d9f8c6b5-abcde": 0.05, "web-7d9f8c6b5-fghij": 0.2, "webhook-6c8d7f5-klmno": 1}
	var cpu, mem strings.Builder
	cpu.WriteString("# TYPE container_cpu_usage_seconds_total counter\n")
	mem.WriteString("# TYPE container_memory_working_set_bytes gauge\n")
	for pod, cores := range pods {
		for i := 0; !start.Add(time.Duration(i) * time.Minute).After(end); i++ {
			ts := start.Add(time.Duration(i) * time.Minute).Unix()
			labels := fmt.Sprintf(`{namespace="shop",pod=%q,container="app"}`, pod)
			fmt.Fprintf(&cpu, "container_cpu_usage_seconds_total%s %g %d\n", labels, cores*60*float64(i), ts)
			fmt.Fprintf(&mem, "container_memory_working_set_bytes%s %d %d\n", labels, (100+i)<<20, ts)
			// Another namespace, and the pause container, are not read.
			fmt.Fprintf(&mem, "container_memory_working_set_bytes{namespace=\"other\",pod=%q,container=\"app\"} 1 %d\n", pod, ts)
			fmt.Fprintf(&mem, "container_memory_working_set_bytes{namespace=\"shop\",pod=%q,container=\"POD\"} 1 %d\n", pod, ts)
		}
	}
	url := startPrometheus(t, cpu.String()+mem.String()+"# EOF\n")
	src, err := usage.NewPrometheus(url)
	if err != nil {
		t.Fatal(err)
	}
	// The last two hours: the rate needs the five minutes before each step.
	from := end.Add(-2 * time.Hour)
	h, err := src.History(t.Context(), "shop", from, end)
	if err != nil {
		t.Fatal(err)
	}
	got, err := h.Workload("Deployment", "web", "app")
	if err != nil {
		t.Fatal(err)
	}
	if want := 2 * 121; len(got) != want {
		t.Fatalf("%d samples of web/app, want %d (two pods × 121 minutes)", len(got), want)
	}
	for _, s := range got {
		i := int64(s.Time.Sub(start) / time.Minute)
		if s.MemoryBytes != (100+i)<<20 {
			t.Fatalf("memory at %s = %d, want %d", s.Time, s.MemoryBytes, (100+i)<<20)
		}
		if s.CPUMillicores != 50 && s.CPUMillicores != 200 {
			t.Fatalf("cpu at %s = %dm, want 50m or 200m", s.Time, s.CPUMillicores)
		}
		if s.Time.Before(from) || s.Time.After(end) {
			t.Fatalf("sample at %s outside [%s, %s]", s.Time, from, end)
		}
	}
	if h, err := src.History(t.Context(), "empty", from, end); err != nil || len(h.Pods()) != 0 {
		t.Errorf("an empty namespace: %v pods, %v", h.Pods(), err)
	}
}
