package usage

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// maxPoints is the most points Prometheus returns per series in one range
// query (it refuses more than 11,000).
const maxPoints = 10000

// Prometheus reads container usage from a Prometheus server's HTTP API:
// the cAdvisor metrics the kubelet exports, container_cpu_usage_seconds_total
// (as a rate) and container_memory_working_set_bytes.
type Prometheus struct {
	API promv1.API
	// Step between samples; one minute when zero.
	Step time.Duration
	// RateWindow of the CPU rate; five minutes when zero.
	RateWindow time.Duration
}

var _ Source = (*Prometheus)(nil)

// NewPrometheus returns a source reading the Prometheus server at address.
func NewPrometheus(address string) (*Prometheus, error) {
	c, err := api.NewClient(api.Config{Address: address})
	if err != nil {
		return nil, fmt.Errorf("failed to create Prometheus client: %w", err)
	}
	return &Prometheus{API: promv1.NewAPI(c)}, nil
}

// Name is "prometheus".
func (p *Prometheus) Name() string { return "prometheus" }

// History queries CPU and memory of every container in namespace, one
// sample per step, and keeps the times where both are known.
func (p *Prometheus) History(ctx context.Context, namespace string, from, to time.Time) (*History, error) {
	step := p.Step
	if step <= 0 {
		step = time.Minute
	}
	window := p.RateWindow
	if window <= 0 {
		window = 5 * time.Minute
	}
	sel := fmt.Sprintf(`namespace=%q,container!="",container!="POD"`, namespace)
	cpuQ := fmt.Sprintf(`sum by (pod, container) (rate(container_cpu_usage_seconds_total{%s}[%s]))`, sel, model.Duration(window))
	memQ := fmt.Sprintf(`max by (pod, container) (container_memory_working_set_bytes{%s})`, sel)
	type key struct {
		pod, container string
		t              int64
	}
	cpu := map[key]float64{}
	h := NewHistory()
	for start := from; !start.After(to); start = start.Add(step * maxPoints) {
		end := start.Add(step * (maxPoints - 1))
		if end.After(to) {
			end = to
		}
		r := promv1.Range{Start: start, End: end, Step: step}
		cv, err := p.query(ctx, cpuQ, r)
		if err != nil {
			return nil, err
		}
		for _, s := range cv {
			for _, v := range s.Values {
				k := key{string(s.Metric["pod"]), string(s.Metric["container"]), int64(v.Timestamp)}
				cpu[k] = float64(v.Value)
			}
		}
		mv, err := p.query(ctx, memQ, r)
		if err != nil {
			return nil, err
		}
		for _, s := range mv {
			for _, v := range s.Values {
				k := key{string(s.Metric["pod"]), string(s.Metric["container"]), int64(v.Timestamp)}
				c, ok := cpu[k]
				if !ok {
					continue
				}
				h.Add(k.pod, k.container, Sample{Time: v.Timestamp.Time().UTC(), CPUMillicores: int64(math.Round(c * 1000)), MemoryBytes: int64(v.Value)})
			}
		}
	}
	return h, nil
}

func (p *Prometheus) query(ctx context.Context, q string, r promv1.Range) (model.Matrix, error) {
	v, _, err := p.API.QueryRange(ctx, q, r)
	if err != nil {
		return nil, fmt.Errorf("failed to query Prometheus (%s): %w", strings.SplitN(q, "{", 2)[0], err)
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("prometheus: a range query returned %s, not a matrix", v.Type())
	}
	return m, nil
}
