package harness

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/itchyny/gojq"
	"sigs.k8s.io/yaml"

	"github.com/tendops/tend/evals/scenario"
	"github.com/tendops/tend/evals/sim"
	"github.com/tendops/tend/internal/localstack"
)

// List writes one line per scenario: what it is and how it runs.
func List(out io.Writer, scs []*scenario.Scenario) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tCATEGORY\tDIFFICULTY\tPARAMETERS\tNOTES")
	for _, sc := range scs {
		var params, notes []string
		for _, p := range sc.Parameters {
			params = append(params, p.Name)
		}
		if sc.Oracle.ExpectHealthy {
			notes = append(notes, "change nothing")
		}
		if ef := sc.ExpectedFailure; ef != nil {
			if len(ef.Brains) > 0 {
				notes = append(notes, "expected to fail with brain "+strings.Join(ef.Brains, ", "))
			} else {
				notes = append(notes, "expected to fail")
			}
		}
		if len(sc.Oracle.AnyOf) > 0 {
			notes = append(notes, fmt.Sprintf("%d other outcomes", len(sc.Oracle.AnyOf)))
		}
		if len(sc.Approvals) > 0 {
			notes = append(notes, "scripted approval")
		}
		if sc.Exclusive {
			notes = append(notes, "runs alone")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", sc.Name, sc.Category, sc.Difficulty, orDash(strings.Join(params, ",")), orDash(strings.Join(notes, "; ")))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(out, "%d scenarios\n", len(scs))
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// DryRun checks scenarios without a cluster: they loaded and validated, so
// it draws the parameters of every run, compiles the simulator for all of
// them, renders its kwok stages and parses every jq expression in them (a
// bad one would stop the kwok controller).
func DryRun(out io.Writer, scs []*scenario.Scenario, seed uint64, runs int) error {
	ins, err := Instances(scs, seed, runs)
	if err != nil {
		return err
	}
	var all []*scenario.Scenario
	for i, in := range ins {
		for r, sc := range in {
			if len(sc.Values) > 0 {
				fmt.Fprintf(out, "%s run %d: %s\n", scs[i].Name, r+1, sc.Values)
			}
			all = append(all, sc)
		}
	}
	sfs, err := sim.Faults(Profiles(all))
	if err != nil {
		return err
	}
	faults := make([]localstack.Fault, 0, len(sfs))
	for _, f := range sfs {
		faults = append(faults, localstack.Fault{Name: f.Name, When: f.When, Pod: f.Pod, Kind: localstack.FaultKind(f.Kind), Reason: f.Reason,
			ExitCode: f.ExitCode, EventReason: f.EventReason, Message: f.Message, Seconds: f.Seconds, Images: f.Images})
	}
	b, err := localstack.StagesYAML(faults)
	if err != nil {
		return err
	}
	n, err := checkJQ(b)
	if err != nil {
		return err
	}
	// The simulator classifies pods with it.
	classify, err := localstack.Classifier(faults)
	if err != nil {
		return err
	}
	q, err := gojq.Parse(classify)
	if err == nil {
		_, err = gojq.Compile(q)
	}
	if err != nil {
		return fmt.Errorf("the classifier does not compile: %w", err)
	}
	n++
	fmt.Fprintf(out, "%d scenarios × %d runs (seed %d) valid; the simulator has %d app faults in %d stages, %d jq expressions parse\n",
		len(scs), runs, seed, len(sfs), strings.Count(string(b), "\nkind: Stage"), n)
	return nil
}

// checkJQ parses every jq expression of rendered stages.
func checkJQ(stages []byte) (int, error) {
	n := 0
	for _, doc := range strings.Split(string(stages), "\n---\n") {
		var st struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Selector struct {
					MatchExpressions []struct {
						JQ struct {
							Key string `json:"key"`
						} `json:"jq"`
					} `json:"matchExpressions"`
				} `json:"selector"`
				Delay struct {
					DurationFrom struct {
						JQ struct {
							Expression string `json:"expression"`
						} `json:"jq"`
					} `json:"durationFrom"`
				} `json:"delay"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &st); err != nil {
			return n, fmt.Errorf("a rendered stage does not parse: %w", err)
		}
		exprs := []string{st.Spec.Delay.DurationFrom.JQ.Expression}
		for _, m := range st.Spec.Selector.MatchExpressions {
			exprs = append(exprs, m.JQ.Key)
		}
		for _, e := range exprs {
			if e == "" {
				continue
			}
			q, err := gojq.Parse(e)
			if err == nil {
				_, err = gojq.Compile(q)
			}
			if err != nil {
				return n, fmt.Errorf("stage %s: jq %q: %w", st.Metadata.Name, e, err)
			}
			n++
		}
	}
	return n, nil
}
