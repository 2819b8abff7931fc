// Command scaleplot draws docs/scale-growth.svg from the scale benchmark's
// entries in bench/results.json: the resident memory at rest of each of
// tend's processes and of the bare informer, and the proportional set of
// the sensor, controller and agent together, against the node count.
//
//	go run ./hack/scaleplot bench/results.json docs/scale-growth.svg
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

type entry struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
}

// series are the lines drawn, by the metric's name, with their colour.
var series = []struct{ metric, label, colour string }{
	{"sensor_rss_rest", "sensor", "#d9822b"},
	{"informer_rss_rest", "bare informer (reference)", "#555555"},
	{"controller_rss_rest", "controller", "#2b6cd9"},
	{"agent_rss_rest", "agent", "#2bab5a"},
	{"mcp_rss_rest", "MCP server", "#9b59b6"},
	{"core_pss_rest", "sensor + controller + agent (proportional set)", "#c0392b"},
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: scaleplot <bench/results.json> <out.svg>")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "scaleplot:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var entries []entry
	if err := json.Unmarshal(b, &entries); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	// values[metric][nodes]
	values := map[string]map[int]float64{}
	var nodes []int
	for _, e := range entries {
		parts := strings.Split(e.Name, "/")
		if len(parts) != 3 || parts[0] != "scale" || !strings.HasPrefix(parts[2], "nodes=") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(parts[2], "nodes="))
		if err != nil {
			return fmt.Errorf("entry %s: %w", e.Name, err)
		}
		if values[parts[1]] == nil {
			values[parts[1]] = map[int]float64{}
		}
		values[parts[1]][n] = e.Value
		if !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	if len(nodes) < 2 {
		return fmt.Errorf("%s has the scale benchmark at %d sizes; at least 2 are needed", in, len(nodes))
	}
	slices.Sort(nodes)
	maxY := 0.0
	for _, s := range series {
		for _, v := range values[s.metric] {
			maxY = max(maxY, v)
		}
	}
	maxY = float64(int(maxY/100)+1) * 100
	const w, h, left, right, top, bottom = 640, 360, 60, 190, 20, 40
	x := func(n int) float64 { return left + float64(n)/float64(nodes[len(nodes)-1])*float64(w-left-right) }
	y := func(v float64) float64 { return float64(h-bottom) - v/maxY*float64(h-top-bottom) }
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&sb, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	for v := 0.0; v <= maxY; v += 100 {
		fmt.Fprintf(&sb, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/><text x="%d" y="%.1f" text-anchor="end">%.0f</text>`+"\n",
			left, y(v), w-right, y(v), left-6, y(v)+4, v)
	}
	for _, n := range nodes {
		fmt.Fprintf(&sb, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", x(n), h-bottom+16, n)
	}
	fmt.Fprintf(&sb, `<text x="%d" y="%d" text-anchor="middle">nodes (ten pods each)</text>`+"\n", left+(w-left-right)/2, h-6)
	fmt.Fprintf(&sb, `<text x="14" y="%d" transform="rotate(-90 14 %d)" text-anchor="middle">resident memory at rest (MiB)</text>`+"\n", h/2, h/2)
	for i, s := range series {
		var pts []string
		for _, n := range nodes {
			if v, ok := values[s.metric][n]; ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(n), y(v)))
			}
		}
		dash := ""
		if s.metric == "informer_rss_rest" {
			dash = ` stroke-dasharray="5,4"`
		}
		fmt.Fprintf(&sb, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.colour, dash)
		ly := top + 14 + i*18
		fmt.Fprintf(&sb, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2"%s/><text x="%d" y="%d">%s</text>`+"\n",
			w-right+12, ly-4, w-right+32, ly-4, s.colour, dash, w-right+38, ly, s.label)
	}
	sb.WriteString("</svg>\n")
	return os.WriteFile(out, []byte(sb.String()), 0o644)
}
