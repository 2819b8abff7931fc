package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tendops/tend/agents/planner"
	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// TestTranscriptsShow: an agent keeps a planner run's transcript on the
// bus with its own identity; `tend transcripts show` reads it back as the
// audit reader, for people and as JSON, and says when there is none.
func TestTranscriptsShow(t *testing.T) {
	perms := func(c bus.Component) bus.Permissions {
		p, err := bus.ComponentPermissions(c, "prod", "")
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	reader, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	readerPub, _ := reader.PublicKey()
	seed, _ := reader.Seed()
	seedFile := filepath.Join(t.TempDir(), "reader.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir(),
		Users: []bus.EmbeddedUser{
			{Name: "controller", Password: "c", Permissions: perms(bus.ComponentController)},
			{Name: "agent", Password: "a", Permissions: perms(bus.ComponentAgent)},
		},
		NkeyUsers: []bus.EmbeddedNkeyUser{{PublicKey: readerPub, Permissions: perms(bus.ComponentAuditReader)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, js, err := bus.Connect(t.Context(), ns.URL(), "controller", nats.UserInfo("controller", "c"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := bus.EnsureStreams(t.Context(), js, bus.StreamsConfig{}); err != nil {
		t.Fatal(err)
	}
	anc, ajs, err := bus.Connect(t.Context(), ns.URL(), "agent", nats.UserInfo("agent", "a"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(anc.Close)
	res := planner.Result{Incident: "inc-42", Outcome: planner.OutcomeFinished, Steps: 2,
		Diagnosis: "web 2.0 needs DATABASE_URL; proposed rolling back.",
		Usage:     planner.Usage{InputTokens: 1200, OutputTokens: 80, CostUSD: 0.0031},
		Proposals: []wire.ProposeResult{{Namespace: "shop", Name: "rollback-web-7", Phase: "Denied", Outcome: "Deny"}},
		Transcript: []planner.Entry{
			{Step: 1, At: time.Now(), Kind: "model", Text: "Reading the logs.", Usage: &planner.Usage{InputTokens: 600, OutputTokens: 40}},
			{Step: 1, At: time.Now(), Kind: "tool", Tool: "get_logs", Arguments: `{"namespace":"shop","pod":"web-1"}`, Text: "missing DATABASE_URL"},
			{Step: 2, At: time.Now(), Kind: "planner", Tool: "kubectl_delete", Text: `there is no tool "kubectl_delete"`, Error: true},
		}}
	raw, _ := json.Marshal(res)
	if _, err := bus.NewTranscriptPublisher(ajs, "prod").PublishTranscript(t.Context(), "maintenance", "inc-42", raw); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, error) {
		cmd := newRootCommand()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(append([]string{"transcripts", "show", "--nats-url", ns.URL(), "--nats-nkey", seedFile, "--cluster", "prod"}, args...))
		err := cmd.ExecuteContext(t.Context())
		return out.String(), err
	}
	out, err := run("inc-42")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"Outcome:    Finished", "2 steps, 1200 tokens in, 80 out, $0.0031", "shop/rollback-web-7: Denied (Deny)",
		"needs DATABASE_URL", `tool get_logs {"namespace":"shop","pod":"web-1"}`, "missing DATABASE_URL", "planner kubectl_delete", "ERROR"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, err = run("inc-42", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Kind       string `json:"kind"`
		Incident   string `json:"incident"`
		Transcript []planner.Entry
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Kind != "Transcript" || got.Incident != "inc-42" || len(got.Transcript) != 3 {
		t.Errorf("-o json: %v %+v\n%s", err, got, out)
	}
	if out, err := run("inc-missing"); err == nil || !strings.Contains(err.Error(), "no transcript") {
		t.Errorf("a missing transcript: %v\n%s", err, out)
	}
}

// TestProposalShowsTranscript: a planner's proposal points at the command
// that reads its transcript; a runbook's does not.
func TestProposalShowsTranscript(t *testing.T) {
	for agent, want := range map[string]string{
		"maintenance incident inc-7f3a": "Transcript: tend transcripts show inc-7f3a",
		"maintenance":                   "",
	} {
		var p tendv1.Proposal
		p.Spec.Proposer.Agent = agent
		var out bytes.Buffer
		printProposal(&out, &p)
		if got := strings.Contains(out.String(), "Transcript:"); got != (want != "") || !strings.Contains(out.String(), want) {
			t.Errorf("agent %q:\n%s", agent, out.String())
		}
	}
}
