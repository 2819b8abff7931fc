package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// outputOptions is -o/--output, with kubectl's printers: json, yaml, name,
// jsonpath and go-template print the API objects themselves (apiVersion
// and kind set, managed fields left out), so scripts read what the API
// server stores; the default and wide are tables for people.
type outputOptions struct {
	format string
	// name tells whether -o name makes sense for what the command prints.
	name bool
}

func (o *outputOptions) bind(cmd *cobra.Command) {
	formats := "json, yaml, jsonpath=TEMPLATE, jsonpath-as-json=TEMPLATE, go-template=TEMPLATE"
	if o.name {
		formats = "json, yaml, name, wide, jsonpath=TEMPLATE, jsonpath-as-json=TEMPLATE, go-template=TEMPLATE"
	}
	cmd.Flags().StringVarP(&o.format, "output", "o", "", "output format: "+formats+" (default: a table)")
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return strings.Split(strings.ReplaceAll(strings.ReplaceAll(formats, "=TEMPLATE", "="), " ", ""), ","), cobra.ShellCompDirectiveNoSpace
	})
}

// table reports whether the output is for people.
func (o *outputOptions) table() bool { return o.format == "" || o.format == "wide" }

// wide reports whether the table has its extra columns.
func (o *outputOptions) wide() bool { return o.format == "wide" }

// validate checks the format before the command reads the cluster.
func (o *outputOptions) validate() error {
	if o.table() {
		if o.format == "wide" && !o.name {
			return fmt.Errorf("output format %q is not available here; use json, yaml, jsonpath or go-template", o.format)
		}
		return nil
	}
	_, err := o.printer()
	return err
}

func (o *outputOptions) printer() (printers.ResourcePrinter, error) {
	if o.format == "name" && !o.name {
		return nil, fmt.Errorf("output format %q is not available here; use json, yaml, jsonpath or go-template", o.format)
	}
	pf := genericclioptions.NewPrintFlags("")
	pf.OutputFormat = &o.format
	p, err := pf.ToPrinter()
	if err != nil {
		return nil, fmt.Errorf("invalid --output: %w", err)
	}
	return p, nil
}

// print prints obj in the chosen machine format.
func (o *outputOptions) print(out io.Writer, obj runtime.Object) error {
	p, err := o.printer()
	if err != nil {
		return err
	}
	return p.PrintObj(obj, out)
}

// forOutput readies proposals for printing: their apiVersion and kind set,
// managed fields left out (as kubectl does unless asked).
func forOutput(items []tendv1.Proposal) []tendv1.Proposal {
	gvk := tendv1.GroupVersion.WithKind("Proposal")
	out := make([]tendv1.Proposal, len(items))
	for i := range items {
		p := items[i].DeepCopy()
		p.SetGroupVersionKind(gvk)
		p.ManagedFields = nil
		out[i] = *p
	}
	return out
}

// proposalList is the list -o json|yaml prints: a ProposalList as the API
// server would return it.
func proposalList(items []tendv1.Proposal) *tendv1.ProposalList {
	l := &tendv1.ProposalList{Items: forOutput(items)}
	l.SetGroupVersionKind(tendv1.GroupVersion.WithKind("ProposalList"))
	return l
}

// reportGroupVersion is the apiVersion of what the CLI prints that is not
// an API object (such as tend status): a documented format, versioned as
// the API is, that no server stores.
var reportGroupVersion = schema.GroupVersion{Group: "cli.tend.dev", Version: "v1alpha1"}

// report wraps a CLI report in an object kubectl's printers take. fields
// is anything encoding/json encodes to an object.
func report(kind string, fields any) (*unstructured.Unstructured, error) {
	data, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	if err := json.Unmarshal(data, &obj); err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetGroupVersionKind(reportGroupVersion.WithKind(kind))
	return u, nil
}
