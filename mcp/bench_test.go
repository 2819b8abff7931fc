package mcp_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/mcp"
	"github.com/tendops/tend/mcp/wire"
	"github.com/tendops/tend/policies"
)

// benchServer starts envtest, tend's proposal controller with the default
// policies, and the MCP server, and returns the server's URL and the
// cluster.
func benchServer(b *testing.B) (*cluster, string) {
	b.Helper()
	c := startCluster(b)
	gate, err := policies.New(policies.Options{})
	if err != nil {
		b.Fatal(err)
	}
	bundle, err := policies.DefaultBundle()
	if err != nil {
		b.Fatal(err)
	}
	gate.Load(bundle)
	mgr, err := ctrl.NewManager(c.env.Config, ctrl.Options{
		Scheme: c.scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := (&controllers.ProposalReconciler{Client: mgr.GetClient(), Gate: gate, Options: controllers.ProposalOptions{SystemNamespace: agentsNS}}).SetupWithManager(mgr); err != nil {
		b.Fatal(err)
	}
	go func() { _ = mgr.Start(b.Context()) }()
	url := c.serve(b, 10*time.Second, func(o *mcp.Options) { o.RateLimit, o.Burst = 1e6, 1e6 })
	return c, url
}

// measure runs call b.N times and reports latency percentiles and the rate
// of one caller calling back to back.
func measure(b *testing.B, call func(i int)) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		call(i)
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(float64(len(lat))*p))].Microseconds())
	}
	b.ReportMetric(pct(0.50), "call_p50-µs")
	b.ReportMetric(pct(0.99), "call_p99-µs")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "throughput-calls/s")
}

// BenchmarkMCP measures tool calls over streamable HTTP on loopback, with
// TokenReview (cached) and a SubjectAccessReview per call against a real
// API server: a read tool (get_resource on a Deployment) and a propose tool
// (propose_scale_workload, returning once tend's controller has decided).
func BenchmarkMCP(b *testing.B) {
	c, url := benchServer(b)
	raw := dialRaw(b, url, c.agentToken)
	b.Run("tool=read", func(b *testing.B) {
		args := wire.GetResourceArgs{APIVersion: "apps/v1", Kind: "Deployment", Namespace: teamNS, Name: "web"}
		measure(b, func(int) {
			if res := callTool(b, raw, wire.ToolGetResource, args); res.IsError {
				b.Fatalf("get_resource: %s", resultText(res))
			}
		})
	})
	b.Run("tool=propose", func(b *testing.B) {
		run := time.Now().UnixNano()
		measure(b, func(i int) {
			args := wire.ScaleWorkloadArgs{
				WorkloadArgs: wire.WorkloadArgs{Namespace: teamNS, Name: "web"}, Replicas: ptr.To[int32](3),
				Common: wire.Common{Summary: "benchmark", Fingerprint: fmt.Sprintf("bench-%d-%d", run, i)},
			}
			res := callTool(b, raw, wire.ToolProposeScaleWorkload, args)
			if res.IsError {
				b.Fatalf("propose_scale_workload: %s", resultText(res))
			}
		})
	})
}

// BenchmarkMCPRawHTTP is the reference of BenchmarkMCP: a plain HTTP round
// trip to the same server, with the same client settings.
func BenchmarkMCPRawHTTP(b *testing.B) {
	_, url := benchServer(b)
	hc := &http.Client{}
	get := func(int) {
		resp, err := hc.Get(strings.TrimSuffix(url, "/mcp") + "/healthz")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.Run("tool=read", func(b *testing.B) { measure(b, get) })
	b.Run("tool=propose", func(b *testing.B) { measure(b, get) })
}
