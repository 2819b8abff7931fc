// Command benchjson records the results of one benchmark area in
// bench/results.json. `make bench` runs it; see the Measuring section of
// docs/DESIGN.md.
//
//	go test -run '^$' -bench '^BenchmarkGate' ./policies | go run ./hack/benchjson -area gate -reference OPA
//
// It reads `go test -bench` output on stdin, echoes it to stdout, and
// rewrites the area's entries of the results file, keeping every other
// area's entries as they are. It writes nothing when the input holds a
// failure or no result for the area.
//
// # From benchmarks to entries
//
// A benchmark reports what it measured with b.ReportMetric(value,
// "<metric>-<unit>"); metric names use underscores, and the first '-'
// separates the metric from its unit. Only such metrics are recorded, not
// ns/op, B/op, allocs/op or MB/s. Benchmark<Name>/<sub>/... (without the
// -GOMAXPROCS suffix go test adds) reporting <metric>-<unit> becomes the
// entry
//
//	name  <area>/<metric>/<sub>/...
//	unit  <unit>
//
// so BenchmarkGate/policies=100 reporting decision_p99-µs becomes
// gate/decision_p99/policies=100 in µs. Two benchmarks of an area must not
// report the same metric for the same sub-benchmark. With -count, the median
// of the runs is recorded.
//
// With -reference <Ref>, Benchmark<Name><Ref>/<sub>/... is the reference of
// Benchmark<Name>/<sub>/...: what it reports under the same metric becomes
// reference_value of the same entry, its benchmark name reference_name, and
// ratio is oriented so that above 1 means tend did better: reference/value
// for a cost (any unit but a rate), value/reference for a rate (a unit
// ending in "/s"). So BenchmarkGateOPA/policies=100 is the reference of
// gate/decision_p99/policies=100.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
)

// options are the command's flags.
type options struct {
	area      string
	reference string
	file      string
}

var areaPattern = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// Validate reports whether the options can run.
func (o *options) Validate() error {
	switch {
	case o.area == "":
		return errors.New("-area is required")
	case !areaPattern.MatchString(o.area):
		return fmt.Errorf("-area %q must match %s", o.area, areaPattern)
	case o.file == "":
		return errors.New("-file is required")
	}
	return nil
}

func main() {
	var opts options
	flag.StringVar(&opts.area, "area", "", "the area whose entries the input replaces, e.g. gate")
	flag.StringVar(&opts.reference, "reference", "", "suffix of the reference benchmarks' names, e.g. OPA for BenchmarkGateOPA")
	flag.StringVar(&opts.file, "file", "bench/results.json", "the results file")
	flag.Parse()
	if err := opts.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "benchjson:", err)
		flag.Usage()
		os.Exit(2)
	}
	if err := run(context.Background(), opts, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchjson:", err)
		os.Exit(1)
	}
}

// run reads benchmark output from in, echoing it to out, and rewrites the
// area's entries of the results file.
func run(_ context.Context, opts options, in io.Reader, out io.Writer) error {
	results, err := parse(io.TeeReader(in, out))
	if err != nil {
		return err
	}
	entries, err := toEntries(opts.area, opts.reference, results)
	if err != nil {
		return err
	}
	if err := update(opts.file, opts.area, entries); err != nil {
		return err
	}
	fmt.Fprintf(out, "benchjson: wrote %d %s entries to %s\n", len(entries), opts.area, opts.file)
	return nil
}
