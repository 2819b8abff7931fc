package policytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/policies"
)

// Kind is the kind of a test document.
const Kind = "GatePolicyTest"

// DefaultNow is the decision time of a case that sets none.
var DefaultNow = time.Date(2026, time.March, 14, 12, 0, 0, 0, time.UTC)

// ErrInvalidTest is wrapped by every error of ParseSuites.
var ErrInvalidTest = errors.New("policytest: invalid test file")

// IsTestFile reports whether a file name is that of a test file: it ends in
// _test.yaml or _test.yml.
func IsTestFile(name string) bool {
	return strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml")
}

// Suite is one GatePolicyTest document.
type Suite struct {
	// Source names the file the suite came from, as given to ParseSuites.
	Source string
	// Document is the suite's index in its file, counted from 0.
	Document int
	// Name is the document's metadata.name.
	Name string
	// Cases of the suite, in file order.
	Cases []Case
}

// Case is one test case: a proposal, what the gatherer would have found, and
// the decision expected.
type Case struct {
	// Name of the case, unique within its suite.
	Name string `json:"name"`
	// Now is the decision time; DefaultNow when unset.
	Now *metav1.Time `json:"now,omitempty"`
	// Proposal is the spec of the proposal decided.
	Proposal v1alpha1.ProposalSpec `json:"proposal"`
	// Target is what the gatherer found about the target.
	Target TargetFacts `json:"target,omitempty"`
	// Namespace is what the gatherer found about the target's namespace.
	Namespace NamespaceFacts `json:"namespace,omitempty"`
	// Facts are what the controller read from the cluster for the decision
	// (revision health, disruption); unset means it read none, and then
	// nothing is approved automatically.
	Facts *v1alpha1.Facts `json:"facts,omitempty"`
	// State is the guards' view of the cluster; zero when unset.
	State State `json:"state,omitempty"`
	// Expect is the decision expected.
	Expect Expectation `json:"expect"`
}

// TargetFacts mirror policies.TargetFacts; Exists defaults to true, and
// Replicas to the facts' replicas.
type TargetFacts struct {
	Labels    map[string]string `json:"labels,omitempty"`
	OwnerKind string            `json:"ownerKind,omitempty"`
	OwnerName string            `json:"ownerName,omitempty"`
	Replicas  int64             `json:"replicas,omitempty"`
	Exists    *bool             `json:"exists,omitempty"`
}

// NamespaceFacts mirror policies.NamespaceFacts; Exists defaults to true.
type NamespaceFacts struct {
	Labels map[string]string `json:"labels,omitempty"`
	Exists *bool             `json:"exists,omitempty"`
}

// State mirrors policies.State, with times relative to the case's now, plus
// the kill switch, which the gate holds itself.
type State struct {
	// KillSwitch engages the kill switch for the case.
	KillSwitch bool `json:"killSwitch,omitempty"`
	// NodesDisrupted is how many nodes are cordoned or draining.
	NodesDisrupted int64 `json:"nodesDisrupted,omitempty"`
	// Recent lists the cluster's other recent proposals.
	Recent []RecentProposal `json:"recent,omitempty"`
	// Breaker is the persisted circuit breaker.
	Breaker Breaker `json:"breaker,omitempty"`
}

// RecentProposal is one other proposal, with its times as ages at now.
type RecentProposal struct {
	Action    v1alpha1.Action `json:"action,omitempty"`
	Namespace string          `json:"namespace,omitempty"`
	// Proposer is its proposer's username, for the per-proposer limits.
	Proposer string `json:"proposer,omitempty"`
	// Target is its target, for the per-target limits.
	Target *RecentTarget `json:"target,omitempty"`
	// Phase of the proposal; Pending when unset.
	Phase v1alpha1.Phase `json:"phase,omitempty"`
	// CreatedAgo is how long before now it was made (default 0: just now).
	CreatedAgo metav1.Duration `json:"createdAgo,omitempty"`
	// FinishedAgo is how long before now it reached its phase; unset while
	// it is open.
	FinishedAgo *metav1.Duration `json:"finishedAgo,omitempty"`
}

// RecentTarget names the target of a recent proposal.
type RecentTarget struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// Breaker is the persisted circuit breaker.
type Breaker struct {
	Tripped bool   `json:"tripped,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// ResetAgo is how long before now it was last reset; unset if never.
	ResetAgo *metav1.Duration `json:"resetAgo,omitempty"`
}

// Expectation is what a case expects of the decision. Only Outcome is
// required; every other field is checked only when set.
type Expectation struct {
	// Outcome expected.
	Outcome v1alpha1.Outcome `json:"outcome"`
	// Reasons are reason codes that must all appear among the decision's
	// reasons, in any order; others may appear too.
	Reasons []string `json:"reasons,omitempty"`
	// Policy and Rule that must have decided; "" expects that no rule
	// decided (a guard, an input check or NoMatchingRule did).
	Policy *string `json:"policy,omitempty"`
	Rule   *string `json:"rule,omitempty"`
	// RequiredApprovals expected (0 unless the outcome is RequireApproval).
	RequiredApprovals *int32 `json:"requiredApprovals,omitempty"`
	// ApproverGroups expected, as a set; [] expects none.
	ApproverGroups []string `json:"approverGroups,omitempty"`
}

// document is one GatePolicyTest document; cases are decoded one by one so
// that an error names its case.
type document struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Cases []json.RawMessage `json:"cases"`
}

// ParseSuites parses a test file: a multi-document YAML stream of
// GatePolicyTest documents, decoded strictly (field names are
// case-sensitive; an unknown or duplicate field is an error). Documents
// holding nothing but comments are skipped; a file without any suite is an
// error. Every error names source, the document (counted from 0) and, within
// it, the case.
func ParseSuites(source string, data []byte) ([]Suite, error) {
	var suites []Suite
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s: document %d: %w", ErrInvalidTest, source, i, err)
		}
		s, ok, err := parseSuite(doc)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: document %d: %w", ErrInvalidTest, source, i, err)
		}
		if !ok {
			continue
		}
		s.Source, s.Document = source, i
		suites = append(suites, s)
	}
	if len(suites) == 0 {
		return nil, fmt.Errorf("%w: %s: no %s document", ErrInvalidTest, source, Kind)
	}
	return suites, nil
}

// parseSuite decodes one document; ok is false for an empty document.
func parseSuite(data []byte) (s Suite, ok bool, err error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return s, false, fmt.Errorf("failed to parse YAML: %w", err)
	}
	if t := bytes.TrimSpace(js); len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return s, false, nil
	}
	var doc document
	if err := decodeStrict(js, &doc); err != nil {
		return s, false, fmt.Errorf("failed to decode %s: %w", Kind, err)
	}
	if gv := v1alpha1.GroupVersion.String(); doc.APIVersion != gv {
		return s, false, fmt.Errorf("apiVersion is %q, want %q", doc.APIVersion, gv)
	}
	if doc.Kind != Kind {
		if doc.Kind == "GatePolicy" {
			return s, false, fmt.Errorf("kind is %q, want %q: policies go in files not named *_test.yaml", doc.Kind, Kind)
		}
		return s, false, fmt.Errorf("kind is %q, want %q", doc.Kind, Kind)
	}
	if doc.Metadata.Name == "" {
		return s, false, errors.New("metadata.name is empty")
	}
	if len(doc.Cases) == 0 {
		return s, false, fmt.Errorf("%s %q has no cases", Kind, doc.Metadata.Name)
	}
	s.Name = doc.Metadata.Name
	seen := make(map[string]int, len(doc.Cases))
	for j, raw := range doc.Cases {
		c, err := parseCase(raw)
		if err != nil {
			return s, false, fmt.Errorf("%s %q: %s: %w", Kind, s.Name, caseLabel(j, raw), err)
		}
		if k, dup := seen[c.Name]; dup {
			return s, false, fmt.Errorf("%s %q: %s: the name is already used by case %d", Kind, s.Name, caseLabel(j, raw), k)
		}
		seen[c.Name] = j
		s.Cases = append(s.Cases, c)
	}
	return s, true, nil
}

// caseLabel names case j for an error, with its name if it has a readable one.
func caseLabel(j int, raw json.RawMessage) string {
	var n struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(raw, &n) == nil && n.Name != "" {
		return fmt.Sprintf("case %d %q", j, n.Name)
	}
	return fmt.Sprintf("case %d", j)
}

func parseCase(raw json.RawMessage) (Case, error) {
	var c Case
	if err := decodeStrict(raw, &c); err != nil {
		return c, err
	}
	return c, c.validate()
}

// decodeStrict decodes JSON as the API server would: case-sensitive, no
// unknown and no duplicate fields.
func decodeStrict(js []byte, v any) error {
	strict, err := sigsjson.UnmarshalStrict(js, v, sigsjson.DisallowDuplicateFields, sigsjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

var phases = []v1alpha1.Phase{
	v1alpha1.PhasePending, v1alpha1.PhaseAwaitingApproval, v1alpha1.PhaseApproved, v1alpha1.PhaseDenied,
	v1alpha1.PhaseApplying, v1alpha1.PhaseVerifying, v1alpha1.PhaseSucceeded, v1alpha1.PhaseFailed,
	v1alpha1.PhaseRolledBack, v1alpha1.PhaseExpired, v1alpha1.PhaseSuperseded, v1alpha1.PhaseOvertaken,
}

var outcomes = []v1alpha1.Outcome{v1alpha1.OutcomeAutoApprove, v1alpha1.OutcomeRequireApproval, v1alpha1.OutcomeDeny}

// validate checks what decoding cannot. The proposal itself is not
// validated: deciding a malformed one is what a case may want to test.
func (c *Case) validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if c.Proposal.Action == "" {
		errs = append(errs, errors.New("proposal.action is empty"))
	}
	switch {
	case c.Expect.Outcome == "":
		errs = append(errs, errors.New("expect.outcome is empty"))
	case !slices.Contains(outcomes, c.Expect.Outcome):
		errs = append(errs, fmt.Errorf("expect.outcome %q is not one of %s, %s, %s", c.Expect.Outcome, outcomes[0], outcomes[1], outcomes[2]))
	}
	if n := c.Expect.RequiredApprovals; n != nil && *n < 0 {
		errs = append(errs, errors.New("expect.requiredApprovals is negative"))
	}
	if slices.Contains(c.Expect.Reasons, "") {
		errs = append(errs, errors.New("expect.reasons has an empty code"))
	}
	if f := c.Facts; f != nil && f.Disruption != nil && (f.Disruption.Percent < 0 || f.Disruption.Percent > 100) {
		errs = append(errs, fmt.Errorf("facts.disruption.percent %d is outside 0..100", f.Disruption.Percent))
	}
	st := &c.State
	if st.NodesDisrupted < 0 {
		errs = append(errs, errors.New("state.nodesDisrupted is negative"))
	}
	if a := st.Breaker.ResetAgo; a != nil && a.Duration < 0 {
		errs = append(errs, errors.New("state.breaker.resetAgo is negative"))
	}
	for i, r := range st.Recent {
		if r.Action != "" && !slices.Contains(v1alpha1.Actions, r.Action) {
			errs = append(errs, fmt.Errorf("state.recent[%d].action %q is not in the action catalogue", i, r.Action))
		}
		if r.Phase != "" && !slices.Contains(phases, r.Phase) {
			errs = append(errs, fmt.Errorf("state.recent[%d].phase %q is not a proposal phase", i, r.Phase))
		}
		if r.CreatedAgo.Duration < 0 {
			errs = append(errs, fmt.Errorf("state.recent[%d].createdAgo is negative", i))
		}
		if f := r.FinishedAgo; f != nil && (f.Duration < 0 || f.Duration > r.CreatedAgo.Duration) {
			errs = append(errs, fmt.Errorf("state.recent[%d].finishedAgo must be between 0 and createdAgo", i))
		}
	}
	return errors.Join(errs...)
}

// now is the case's decision time.
func (c *Case) now() time.Time {
	if c.Now != nil {
		return c.Now.UTC()
	}
	return DefaultNow
}

// input builds the gate input as the controller's gatherer would.
func (c *Case) input() policies.Input {
	tf := policies.TargetFacts{
		Labels:    c.Target.Labels,
		OwnerKind: c.Target.OwnerKind,
		OwnerName: c.Target.OwnerName,
		Replicas:  c.Target.Replicas,
		Exists:    c.Target.Exists == nil || *c.Target.Exists,
		Facts:     c.Facts,
	}
	if tf.Replicas == 0 && c.Facts != nil {
		// The controller takes the target's replicas from its facts.
		tf.Replicas = int64(c.Facts.Replicas)
	}
	nf := policies.NamespaceFacts{
		Labels: c.Namespace.Labels,
		Exists: c.Namespace.Exists == nil || *c.Namespace.Exists,
	}
	return policies.NewInput(&v1alpha1.Proposal{Spec: c.Proposal}, tf, nf)
}

// state builds the guards' state at now.
func (s *State) state(now time.Time) policies.State {
	st := policies.State{
		NodesDisrupted: s.NodesDisrupted,
		Breaker:        policies.BreakerState{Tripped: s.Breaker.Tripped, Reason: s.Breaker.Reason},
	}
	if a := s.Breaker.ResetAgo; a != nil {
		st.Breaker.ResetAt = now.Add(-a.Duration)
	}
	for _, r := range s.Recent {
		rec := policies.ProposalRecord{
			Action:    string(r.Action),
			Namespace: r.Namespace,
			Proposer:  r.Proposer,
			Phase:     string(r.Phase),
			Created:   now.Add(-r.CreatedAgo.Duration),
		}
		if t := r.Target; t != nil {
			rec.Target = policies.TargetKey(t.Kind, t.Namespace, t.Name)
		}
		if rec.Phase == "" {
			rec.Phase = string(v1alpha1.PhasePending)
		}
		if f := r.FinishedAgo; f != nil {
			rec.Finished = now.Add(-f.Duration)
		}
		st.Recent = append(st.Recent, rec)
	}
	return st
}

// Kinds returns the kind of every non-empty document of a YAML stream, in
// order; "" for a document that is not a mapping or has no string kind. A
// caller uses it to tell policy files from other YAML.
func Kinds(data []byte) ([]string, error) {
	var kinds []string
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return kinds, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: failed to parse YAML: %w", i, err)
		}
		js = bytes.TrimSpace(js)
		if len(js) == 0 || bytes.Equal(js, []byte("null")) {
			continue
		}
		var head struct {
			Kind json.RawMessage `json:"kind"`
		}
		var kind string
		if js[0] == '{' && json.Unmarshal(js, &head) == nil && head.Kind != nil {
			// A kind that is not a string stays "".
			_ = json.Unmarshal(head.Kind, &kind)
		}
		kinds = append(kinds, kind)
	}
}
