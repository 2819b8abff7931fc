package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// result is one metric of one benchmark run.
type result struct {
	// benchmark is the benchmark's name without the -GOMAXPROCS suffix,
	// e.g. BenchmarkGate/policies=100.
	benchmark string
	// metric and unit split the reported unit, e.g. decision_p99 and µs.
	metric, unit string
	value        float64
}

// entry is one element of the results file.
type entry struct {
	Name           string   `json:"name"`
	Unit           string   `json:"unit"`
	Value          float64  `json:"value"`
	ReferenceName  string   `json:"reference_name,omitempty"`
	ReferenceValue *float64 `json:"reference_value,omitempty"`
	Ratio          *float64 `json:"ratio,omitempty"`
}

var (
	benchLine   = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)
	failLine    = regexp.MustCompile(`^(--- FAIL|FAIL\b|panic:)`)
	errNoResult = errors.New("the input holds no benchmark result")
)

// parse reads `go test -bench` output and returns the custom metrics of
// every benchmark line, failing if the output reports a failure.
func parse(r io.Reader) ([]result, error) {
	var results []result
	lines := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if failLine.MatchString(line) {
			return nil, fmt.Errorf("the benchmarks failed: %s", line)
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		lines++
		fields := strings.Fields(m[3])
		if len(fields)%2 != 0 {
			return nil, fmt.Errorf("failed to parse benchmark line %q: odd number of value and unit fields", line)
		}
		for i := 0; i < len(fields); i += 2 {
			metric, unit, ok := strings.Cut(fields[i+1], "-")
			if !ok || metric == "" || unit == "" {
				continue // ns/op, B/op, allocs/op, MB/s
			}
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				return nil, fmt.Errorf("failed to parse %q in benchmark line %q: %w", fields[i], line, err)
			}
			results = append(results, result{benchmark: m[1], metric: metric, unit: unit, value: v})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed to read the benchmark output: %w", err)
	}
	if lines == 0 {
		return nil, errNoResult
	}
	return results, nil
}

// toEntries names the results of one area and pairs them with their
// references; see the package documentation.
func toEntries(area, reference string, results []result) ([]entry, error) {
	// A metric of a benchmark, references under their subject's name.
	type key struct{ benchmark, metric, unit string }
	subjects := map[key][]float64{}
	references := map[key][]float64{}
	var order []key
	for _, r := range results {
		k := key{r.benchmark, r.metric, r.unit}
		top, subs, _ := strings.Cut(r.benchmark, "/")
		if reference != "" && strings.HasSuffix(top, reference) && top != "Benchmark"+reference {
			k.benchmark = strings.TrimSuffix(top, reference)
			if subs != "" {
				k.benchmark += "/" + subs
			}
			references[k] = append(references[k], r.value)
			continue
		}
		if _, ok := subjects[k]; !ok {
			order = append(order, k)
		}
		subjects[k] = append(subjects[k], r.value)
	}
	if len(order) == 0 {
		return nil, fmt.Errorf("%w of area %s: no benchmark reports a <metric>-<unit> metric", errNoResult, area)
	}
	entries := make([]entry, 0, len(order))
	seen := map[string]string{}
	for _, k := range order {
		name := area + "/" + k.metric
		if _, subs, ok := strings.Cut(k.benchmark, "/"); ok {
			name += "/" + subs
		}
		if other, dup := seen[name]; dup {
			return nil, fmt.Errorf("%s and %s both report %s-%s: entry %s", other, k.benchmark, k.metric, k.unit, name)
		}
		seen[name] = k.benchmark
		value := median(subjects[k])
		e := entry{Name: name, Unit: k.unit, Value: round(value)}
		if refs, ok := references[k]; ok {
			rv := median(refs)
			ratio := rv / value
			if strings.HasSuffix(k.unit, "/s") {
				ratio = value / rv
			}
			top, subs, _ := strings.Cut(k.benchmark, "/")
			e.ReferenceName = top + reference
			if subs != "" {
				e.ReferenceName += "/" + subs
			}
			e.ReferenceValue = ptr(round(rv))
			if !math.IsInf(ratio, 0) && !math.IsNaN(ratio) {
				e.Ratio = ptr(round(ratio))
			}
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// update replaces the entries of area in the results file with entries,
// keeping every other entry as it is, and writes the file sorted by name.
func update(file, area string, entries []entry) error {
	var kept []json.RawMessage
	data, err := os.ReadFile(file)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("failed to read %s: %w", file, err)
	default:
		if err := json.Unmarshal(data, &kept); err != nil {
			return fmt.Errorf("failed to decode %s: %w", file, err)
		}
	}
	type named struct {
		name string
		raw  json.RawMessage
	}
	var all []named
	for _, raw := range kept {
		var e struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("failed to decode an entry of %s: %w", file, err)
		}
		if !strings.HasPrefix(e.Name, area+"/") {
			all = append(all, named{e.Name, raw})
		}
	}
	for _, e := range entries {
		raw, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("failed to encode entry %s: %w", e.Name, err)
		}
		all = append(all, named{e.Name, raw})
	}
	slices.SortStableFunc(all, func(a, b named) int { return strings.Compare(a.name, b.name) })
	raws := make([]json.RawMessage, len(all))
	for i, n := range all {
		raws[i] = n.raw
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(raws); err != nil {
		return fmt.Errorf("failed to encode %s: %w", file, err)
	}
	return writeFile(file, buf.Bytes())
}

// writeFile replaces file with data atomically.
func writeFile(file string, data []byte) error {
	dir := filepath.Dir(file)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".results-*.json")
	if err != nil {
		return fmt.Errorf("failed to write %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %s: %w", file, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("failed to write %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("failed to write %s: %w", file, err)
	}
	return nil
}

func median(vs []float64) float64 {
	s := slices.Sorted(slices.Values(vs))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

// round keeps 4 significant digits.
func round(v float64) float64 {
	if v == 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return v
	}
	scale := math.Pow(10, 3-math.Floor(math.Log10(math.Abs(v))))
	return math.Round(v*scale) / scale
}

func ptr[T any](v T) *T { return &v }
