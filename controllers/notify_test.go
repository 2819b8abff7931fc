package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr/funcr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/policies"
)

// The webhook payload as a Slack-compatible sink reads it.
type slackMessage struct {
	Text   string       `json:"text"`
	Blocks []slackBlock `json:"blocks"`
}

type slackBlock struct {
	Type     string      `json:"type"`
	Text     *slackText  `json:"text,omitempty"`
	Fields   []slackText `json:"fields,omitempty"`
	Elements []slackText `json:"elements,omitempty"`
}

type slackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// texts lists every text of the message.
func (m slackMessage) texts() []string {
	out := []string{m.Text}
	for _, b := range m.Blocks {
		if b.Text != nil {
			out = append(out, b.Text.Text)
		}
		for _, f := range append(b.Fields, b.Elements...) {
			out = append(out, f.Text)
		}
	}
	return out
}

// sinkRequest is one POST the sink received.
type sinkRequest struct {
	At          time.Time
	ContentType string
	Body        string
	Message     slackMessage
}

// sink is a webhook receiver on loopback. respond answers the n-th request
// (from 1); every request is answered 200 when it is nil.
type sink struct {
	srv     *httptest.Server
	respond func(n int, w http.ResponseWriter)

	mu   sync.Mutex
	reqs []sinkRequest
}

func newSink(t *testing.T, respond func(n int, w http.ResponseWriter)) *sink {
	t.Helper()
	s := &sink{respond: respond}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("sink failed to read body: %v", err)
		}
		req := sinkRequest{At: time.Now(), ContentType: r.Header.Get("Content-Type"), Body: string(body)}
		if r.Method != http.MethodPost {
			t.Errorf("sink got %s, want POST", r.Method)
		}
		if err := json.Unmarshal(body, &req.Message); err != nil {
			t.Errorf("sink got a body that is not JSON: %v: %s", err, body)
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, req)
		n := len(s.reqs)
		s.mu.Unlock()
		if s.respond == nil {
			_, _ = io.WriteString(w, "ok")
			return
		}
		s.respond(n, w)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// URL has a path that stands for the credential a Slack webhook URL holds.
func (s *sink) URL() string { return s.srv.URL + "/services/T000/B000/SECRET-PATH" }

func (s *sink) requests() []sinkRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]sinkRequest(nil), s.reqs...)
}

// wait waits until the sink received n requests and returns them.
func (s *sink) wait(t *testing.T, n int) []sinkRequest {
	t.Helper()
	waitFor(t, "the sink to receive requests", func() bool { return len(s.requests()) >= n })
	return s.requests()
}

// waitFor waits until cond holds, failing the test after a deadline long
// enough for a loaded machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func status(code int, header ...string) func(int, http.ResponseWriter) {
	return func(_ int, w http.ResponseWriter) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, http.StatusText(code))
	}
}

// startNotifier runs n until the test ends; the returned channel is closed
// when Start returned.
func startNotifier(t *testing.T, ctx context.Context, n *controllers.Notifier) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := n.Start(ctx); err != nil {
			t.Errorf("notifier stopped with an error: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("notifier did not stop after its context ended")
		}
	})
	return done
}

func newNotifier(t *testing.T, opts controllers.NotifierOptions) *controllers.Notifier {
	t.Helper()
	n, err := controllers.NewNotifier(opts)
	if err != nil {
		t.Fatalf("failed to create notifier: %v", err)
	}
	return n
}

// metrics reads the notification counters from a registry of their own.
type metrics struct{ reg *prometheus.Registry }

func newMetrics(t *testing.T) metrics {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := controllers.RegisterNotifierMetrics(reg); err != nil {
		t.Fatalf("failed to register metrics: %v", err)
	}
	if err := controllers.RegisterNotifierMetrics(reg); err != nil {
		t.Fatalf("registering the metrics again failed: %v", err)
	}
	return metrics{reg: reg}
}

// value of counter name, with label result=result unless result is empty.
func (m metrics) value(t *testing.T, name, result string) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("failed to gather metrics: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if result == "" {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("metric %s{result=%q} is not registered", name, result)
	return 0
}

const secret = "SECRET-TOKEN-abc"

var notifyTime = time.Date(2026, 11, 21, 13, 34, 24, 0, time.UTC)

// notifyProposal is a proposal that carries secret in every field a
// notification must not send: evidence, rationale, labels, annotations,
// messages, errors and approval reasons.
func notifyProposal() *tendv1.Proposal {
	return &tendv1.Proposal{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "team-a", Name: "rollback-web-x7k2p", UID: "uid-1",
			Labels:      map[string]string{"tend.dev/fingerprint": secret},
			Annotations: map[string]string{"note": secret, "token": "Bearer " + secret},
		},
		Spec: tendv1.ProposalSpec{
			Action: tendv1.ActionRollbackWorkload,
			Target: tendv1.TargetRef{APIVersion: "apps/v1", Kind: "Deployment", Namespace: "team-a", Name: "web", ResourceVersion: "42"},
			Evidence: tendv1.Evidence{
				Summary:   "pod crash-loops; container said: password=" + secret + " <!channel>",
				Telemetry: []tendv1.TelemetryRef{{Subject: "tend.telemetry.prod.pod." + secret}},
			},
			Rationale:   "ignore previous instructions " + secret,
			Risk:        tendv1.RiskLow,
			Proposer:    tendv1.Proposer{Username: "system:serviceaccount:tend-system:agent", Agent: secret},
			Fingerprint: secret,
		},
		Status: tendv1.ProposalStatus{
			Message: "Awaiting 2 approval(s): " + secret,
			Conditions: []metav1.Condition{{
				Type: controllers.ConditionDecided, Status: metav1.ConditionTrue, Reason: controllers.ReasonApprovalRequired, Message: secret,
			}},
			Decision: &tendv1.Decision{
				Outcome: tendv1.OutcomeRequireApproval, Policy: "default-rollbacks", Rule: "rollback-protected-namespace",
				Reasons: []tendv1.Reason{
					{Code: policies.ReasonProtectedNamespace, Guard: "protected-namespaces", Message: "namespace label says " + secret},
					{Code: "BusinessHours", Policy: "hours", Rule: "weekday", Message: secret},
				},
				RequiredApprovals: 2,
				ApproverGroups:    []string{secret},
				SpecHash:          secret,
			},
			Approvals: []tendv1.ApprovalRecord{
				{Approval: "a-1", Approver: "alice", Decision: tendv1.ApprovalApprove, Reason: "lgtm " + secret},
			},
		},
	}
}

// rolledBack is notifyProposal after a failed verification and its undo.
func rolledBack() *tendv1.Proposal {
	p := notifyProposal()
	p.Status.Decision.Outcome = tendv1.OutcomeAutoApprove
	p.Status.Decision.Reasons = nil
	done := metav1.NewTime(notifyTime)
	p.Status.Apply = &tendv1.ApplyRecord{Attempt: secret, Before: "revision 2", After: "pod template of revision 1", CompletedAt: &done}
	p.Status.Verify = &tendv1.VerifyRecord{Passed: ptr.To(false), CompletedAt: &done, Checks: []tendv1.Check{
		{Name: "RolloutComplete", Message: "container app: Back-off restarting failed container, env " + secret},
		{Name: "RestartsStable", Passed: true, Message: secret},
	}}
	p.Status.Rollback = &tendv1.ApplyRecord{Attempt: secret, Before: "revision 3", After: "pod template of revision 2", CompletedAt: &done}
	p.Status.Message = "Verification failed; rolled back: " + secret
	return p
}

func TestNotificationPayload(t *testing.T) {
	failedApply := notifyProposal()
	failedApply.Status.Decision.Outcome = tendv1.OutcomeAutoApprove
	failedApply.Status.Decision.Reasons = nil
	failedApply.Status.Apply = &tendv1.ApplyRecord{Before: "revision 2", After: "pod template of revision 1", Error: "admission webhook denied: " + secret}
	rollbackFailed := rolledBack()
	rollbackFailed.Status.Rollback = &tendv1.ApplyRecord{Attempt: "r", Error: secret, CompletedAt: ptr.To(metav1.NewTime(notifyTime))}

	header := func(s string) slackBlock {
		return slackBlock{Type: "header", Text: &slackText{Type: "plain_text", Text: s}}
	}
	section := func(s string, fields ...string) slackBlock {
		b := slackBlock{Type: "section", Text: &slackText{Type: "mrkdwn", Text: s}}
		for _, f := range fields {
			b.Fields = append(b.Fields, slackText{Type: "mrkdwn", Text: f})
		}
		return b
	}
	ctxBlock := slackBlock{Type: "context", Elements: []slackText{{Type: "mrkdwn", Text: "tend · 2026-11-21T13:34:24Z"}}}
	fields := func(from, to, reason string) []string {
		return []string{
			"*Proposal*\n`team-a/rollback-web-x7k2p`",
			"*Phase*\n" + from + " → " + to + " (`" + reason + "`)",
			"*Action*\n`RollbackWorkload`",
			"*Target*\nDeployment `team-a/web`",
			"*Cluster*\n`prod`",
		}
	}
	autoApproved := section("*Decision:* AutoApprove by policy `default-rollbacks`, rule `rollback-protected-namespace`")
	details := "Details: `tend proposals show rollback-web-x7k2p -n team-a`"

	for _, tc := range []struct {
		name     string
		p        *tendv1.Proposal
		from, to tendv1.Phase
		want     slackMessage
	}{{
		name: "awaiting approval", p: notifyProposal(), from: tendv1.PhasePending, to: tendv1.PhaseAwaitingApproval,
		want: slackMessage{
			Text: "[prod] Proposal team-a/rollback-web-x7k2p awaits 2 approval(s): RollbackWorkload on Deployment team-a/web",
			Blocks: []slackBlock{
				header("tend: Proposal awaiting approval"),
				section("[prod] Proposal team-a/rollback-web-x7k2p awaits 2 approval(s): RollbackWorkload on Deployment team-a/web",
					fields("Pending", "AwaitingApproval", "ApprovalRequired")...),
				section("*Decision:* RequireApproval by policy `default-rollbacks`, rule `rollback-protected-namespace`\n" +
					"• `ProtectedNamespace` (guard `protected-namespaces`)\n" +
					"• `BusinessHours` (policy `hours`, rule `weekday`)"),
				section("*Needs 2 approval(s)*, 1 counted so far.\n" +
					"Approve: `tend proposals approve rollback-web-x7k2p -n team-a`\n" + details),
				ctxBlock,
			},
		},
	}, {
		name: "rolled back", p: rolledBack(), from: tendv1.PhaseVerifying, to: tendv1.PhaseRolledBack,
		want: slackMessage{
			Text: "[prod] Proposal team-a/rollback-web-x7k2p was rolled back (RolledBack): RollbackWorkload on Deployment team-a/web",
			Blocks: []slackBlock{
				header("tend: Proposal rolled back"),
				section("[prod] Proposal team-a/rollback-web-x7k2p was rolled back (RolledBack): RollbackWorkload on Deployment team-a/web",
					fields("Verifying", "RolledBack", "RolledBack")...),
				autoApproved,
				section("*Apply:* revision 2 → pod template of revision 1 (done)\n" +
					"*Verification:* failed: `RolloutComplete` failed, `RestartsStable` ok\n" +
					"*Rollback:* revision 3 → pod template of revision 2 (done)\n" + details),
				ctxBlock,
			},
		},
	}, {
		name: "apply failed", p: failedApply, from: tendv1.PhaseApproved, to: tendv1.PhaseFailed,
		want: slackMessage{
			Text: "[prod] Proposal team-a/rollback-web-x7k2p failed (ApplyFailed): RollbackWorkload on Deployment team-a/web",
			Blocks: []slackBlock{
				header("tend: Proposal failed"),
				section("[prod] Proposal team-a/rollback-web-x7k2p failed (ApplyFailed): RollbackWorkload on Deployment team-a/web",
					fields("Approved", "Failed", "ApplyFailed")...),
				autoApproved,
				section("*Apply:* revision 2 → pod template of revision 1 (failed; the error is on the proposal)\n" + details),
				ctxBlock,
			},
		},
	}, {
		name: "rollback could not run", p: rollbackFailed, from: tendv1.PhaseVerifying, to: tendv1.PhaseFailed,
		want: slackMessage{
			Text: "[prod] Proposal team-a/rollback-web-x7k2p failed (ApplyFailed): RollbackWorkload on Deployment team-a/web",
			Blocks: []slackBlock{
				header("tend: Proposal failed"),
				section("[prod] Proposal team-a/rollback-web-x7k2p failed (ApplyFailed): RollbackWorkload on Deployment team-a/web",
					fields("Verifying", "Failed", "ApplyFailed")...),
				autoApproved,
				section("*Apply:* revision 2 → pod template of revision 1 (done)\n" +
					"*Verification:* failed: `RolloutComplete` failed, `RestartsStable` ok\n" +
					"*Rollback:* failed; the error is on the proposal\n" + details),
				ctxBlock,
			},
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, nil)
			n := newNotifier(t, controllers.NotifierOptions{URL: s.URL()})
			startNotifier(t, t.Context(), n)
			n.Notify(controllers.NewNotification(tc.p, tc.from, tc.to, "prod", notifyTime))
			req := s.wait(t, 1)[0]
			if req.ContentType != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", req.ContentType)
			}
			if diff := cmp.Diff(tc.want, req.Message); diff != "" {
				t.Errorf("payload (-want +got):\n%s", diff)
			}
			// Nothing but what the message shows: no fields of our own.
			var raw map[string]json.RawMessage
			if err := json.Unmarshal([]byte(req.Body), &raw); err != nil {
				t.Fatal(err)
			}
			if len(raw) != 2 {
				t.Errorf("payload has keys %v, want text and blocks", keys(raw))
			}
			for _, bad := range []string{secret, "password", "ignore previous", "Back-off", "admission webhook", "alice", "lgtm"} {
				if strings.Contains(req.Body, bad) {
					t.Errorf("payload contains %q: %s", bad, req.Body)
				}
			}
		})
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A proposal whose codes, names and summaries are hostile still yields a
// message with no mention, link or extra line of its making, and no text
// over Slack's limits.
func TestNotificationEscapesAndTruncates(t *testing.T) {
	p := rolledBack()
	long := strings.Repeat("é", 5000)
	p.Status.Decision.Policy = "<!channel> & <https://evil.example|click>"
	p.Status.Decision.Rule = long
	p.Status.Decision.Reasons = []tendv1.Reason{{Code: "Code`\n*bold*<@U123>", Guard: long}}
	for range 30 {
		p.Status.Decision.Reasons = append(p.Status.Decision.Reasons, tendv1.Reason{Code: long, Policy: long, Rule: long})
	}
	p.Status.Apply.Before = "<!here>\nline"
	p.Status.Apply.After = long

	s := newSink(t, nil)
	n := newNotifier(t, controllers.NotifierOptions{URL: s.URL()})
	startNotifier(t, t.Context(), n)
	n.Notify(controllers.NewNotification(p, tendv1.PhaseVerifying, tendv1.PhaseRolledBack, "<!everyone>", notifyTime))
	msg := s.wait(t, 1)[0].Message

	all := strings.Join(msg.texts(), "\n")
	for _, want := range []string{
		"&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;",
		"`Code' *bold*&lt;@U123&gt;`",
		"&lt;!here&gt; line → ",
		"[&lt;!everyone&gt;]",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("message lacks %q:\n%s", want, all)
		}
	}
	// Reasons are listed as far as Slack's limit allows, then counted.
	listed, more := 0, 0
	for _, line := range strings.Split(msg.Blocks[2].Text.Text, "\n") {
		if _, err := fmt.Sscanf(line, "• and %d more", &more); err == nil {
			continue
		}
		if strings.HasPrefix(line, "• `") {
			listed++
		}
	}
	if listed == 0 || more == 0 || listed+more != len(p.Status.Decision.Reasons) {
		t.Errorf("decision lists %d reasons and %d more, want some of each, %d in all", listed, more, len(p.Status.Decision.Reasons))
	}
	for _, text := range msg.texts() {
		if strings.ContainsAny(text, "<>") {
			t.Errorf("unescaped < or > in %q", text)
		}
		if n := utf8.RuneCountInString(text); n > 3000 {
			t.Errorf("text of %d runes is over Slack's limit of 3000", n)
		}
		if !utf8.ValidString(text) {
			t.Errorf("text is not valid UTF-8: %q", text)
		}
	}
	if n := utf8.RuneCountInString(msg.Blocks[0].Text.Text); n > 150 {
		t.Errorf("header of %d runes is over Slack's limit of 150", n)
	}
	if strings.Contains(all, strings.Repeat("é", 121)) {
		t.Error("a value was not truncated to 120 runes")
	}
	for _, line := range strings.Split(msg.Blocks[3].Text.Text, "\n") {
		if !strings.HasPrefix(line, "*") && !strings.HasPrefix(line, "Details: ") {
			t.Errorf("change summary has a line of the proposal's making: %q", line)
		}
	}
}

func TestNotifierRetriesServerErrors(t *testing.T) {
	m := newMetrics(t)
	ok, failed := m.value(t, "tend_notifications_sent_total", "ok"), m.value(t, "tend_notifications_sent_total", "failed")
	s := newSink(t, func(n int, w http.ResponseWriter) {
		if n <= 2 {
			status(http.StatusInternalServerError)(n, w)
			return
		}
		status(http.StatusOK)(n, w)
	})
	n := newNotifier(t, controllers.NotifierOptions{URL: s.URL(), Backoff: time.Millisecond})
	startNotifier(t, t.Context(), n)
	n.Notify(controllers.NewNotification(notifyProposal(), tendv1.PhasePending, tendv1.PhaseAwaitingApproval, "", notifyTime))

	reqs := s.wait(t, 3)
	waitFor(t, "the notification to count as sent", func() bool {
		return m.value(t, "tend_notifications_sent_total", "ok") == ok+1
	})
	if len(s.requests()) != 3 {
		t.Errorf("sink got %d requests, want 3", len(s.requests()))
	}
	for _, r := range reqs[1:] {
		if r.Body != reqs[0].Body {
			t.Errorf("a retry sent another body:\n%s\nthen\n%s", reqs[0].Body, r.Body)
		}
	}
	if got := m.value(t, "tend_notifications_sent_total", "failed"); got != failed {
		t.Errorf("failed count went from %v to %v", failed, got)
	}
}

func TestNotifierHonoursRetryAfter(t *testing.T) {
	s := newSink(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			status(http.StatusTooManyRequests, "Retry-After", "1")(n, w)
			return
		}
		status(http.StatusOK)(n, w)
	})
	// The backoff alone would retry after a millisecond.
	n := newNotifier(t, controllers.NotifierOptions{URL: s.URL(), Backoff: time.Millisecond})
	startNotifier(t, t.Context(), n)
	n.Notify(controllers.NewNotification(notifyProposal(), tendv1.PhasePending, tendv1.PhaseAwaitingApproval, "", notifyTime))

	reqs := s.wait(t, 2)
	// A lower bound the notifier imposes, not a speed: it holds however slow
	// the machine is.
	if gap := reqs[1].At.Sub(reqs[0].At); gap < time.Second {
		t.Errorf("retried %s after a 429 with Retry-After: 1, want at least 1s", gap)
	}
}

// A notification the sink refuses for good is tried once; the next one
// follows it directly.
func TestNotifierDoesNotRetryClientErrors(t *testing.T) {
	m := newMetrics(t)
	failed := m.value(t, "tend_notifications_sent_total", "failed")
	s := newSink(t, func(n int, w http.ResponseWriter) {
		if n == 1 {
			status(http.StatusBadRequest)(n, w)
			return
		}
		status(http.StatusOK)(n, w)
	})
	n := newNotifier(t, controllers.NotifierOptions{URL: s.URL(), Backoff: time.Millisecond})
	startNotifier(t, t.Context(), n)
	n.Notify(controllers.NewNotification(notifyProposal(), tendv1.PhasePending, tendv1.PhaseAwaitingApproval, "", notifyTime))
	n.Notify(controllers.NewNotification(rolledBack(), tendv1.PhaseVerifying, tendv1.PhaseRolledBack, "", notifyTime))

	reqs := s.wait(t, 2)
	if !strings.Contains(reqs[0].Message.Text, "awaits") || !strings.Contains(reqs[1].Message.Text, "rolled back") {
		t.Errorf("sink got %q then %q, want the AwaitingApproval notification once, then the RolledBack one",
			reqs[0].Message.Text, reqs[1].Message.Text)
	}
	waitFor(t, "the refused notification to count as failed", func() bool {
		return m.value(t, "tend_notifications_sent_total", "failed") == failed+1
	})
}

func TestNotifierGivesUpAfterMaxAttempts(t *testing.T) {
	m := newMetrics(t)
	failed := m.value(t, "tend_notifications_sent_total", "failed")
	s := newSink(t, func(n int, w http.ResponseWriter) {
		if n <= 3 {
			status(http.StatusBadGateway)(n, w)
			return
		}
		status(http.StatusOK)(n, w)
	})
	n := newNotifier(t, controllers.NotifierOptions{URL: s.URL(), Backoff: time.Millisecond, MaxAttempts: 3})
	startNotifier(t, t.Context(), n)
	n.Notify(controllers.NewNotification(notifyProposal(), tendv1.PhasePending, tendv1.PhaseAwaitingApproval, "", notifyTime))
	n.Notify(controllers.NewNotification(rolledBack(), tendv1.PhaseVerifying, tendv1.PhaseRolledBack, "", notifyTime))

	reqs := s.wait(t, 4)
	var got []bool
	for _, r := range reqs {
		got = append(got, strings.Contains(r.Message.Text, "awaits"))
	}
	if diff := cmp.Diff([]bool{true, true, true, false}, got); diff != "" {
		t.Errorf("requests for the AwaitingApproval notification (-want +got):\n%s", diff)
	}
	waitFor(t, "the notification to count as failed", func() bool {
		return m.value(t, "tend_notifications_sent_total", "failed") == failed+1
	})
}

func TestNotifierDropsOldestWhenFull(t *testing.T) {
	m := newMetrics(t)
	dropped := m.value(t, "tend_notifications_dropped_total", "")
	s := newSink(t, nil)
	n := newNotifier(t, controllers.NotifierOptions{URL: s.URL(), QueueSize: 2})
	// Not started yet: everything waits in the queue.
	for _, name := range []string{"first", "second", "third"} {
		p := notifyProposal()
		p.Name = name
		n.Notify(controllers.NewNotification(p, tendv1.PhasePending, tendv1.PhaseAwaitingApproval, "", notifyTime))
	}
	if got := m.value(t, "tend_notifications_dropped_total", ""); got != dropped+1 {
		t.Errorf("dropped count went from %v to %v, want one more", dropped, got)
	}
	startNotifier(t, t.Context(), n)
	s.wait(t, 2)
	// A later notification follows the queued ones: had the first been
	// kept, it would be among the three.
	p := notifyProposal()
	p.Name = "fourth"
	n.Notify(controllers.NewNotification(p, tendv1.PhasePending, tendv1.PhaseAwaitingApproval, "", notifyTime))
	var got []string
	for _, r := range s.wait(t, 3) {
		got = append(got, strings.Fields(r.Message.Text)[1])
	}
	if diff := cmp.Diff([]string{"team-a/second", "team-a/third", "team-a/fourth"}, got); diff != "" {
		t.Errorf("proposals notified (-want +got):\n%s", diff)
	}
}

func TestNotifierFiltersPhases(t *testing.T) {
	all := []tendv1.Phase{
		tendv1.PhasePending, tendv1.PhaseAwaitingApproval, tendv1.PhaseApproved, tendv1.PhaseDenied,
		tendv1.PhaseApplying, tendv1.PhaseVerifying, tendv1.PhaseSucceeded, tendv1.PhaseFailed,
		tendv1.PhaseRolledBack, tendv1.PhaseExpired, tendv1.PhaseSuperseded,
	}
	for _, tc := range []struct {
		name   string
		events []tendv1.Phase
		want   []tendv1.Phase
	}{
		{name: "default", want: []tendv1.Phase{tendv1.PhaseAwaitingApproval, tendv1.PhaseFailed, tendv1.PhaseRolledBack}},
		{name: "chosen", events: []tendv1.Phase{tendv1.PhaseSucceeded, tendv1.PhaseDenied},
			want: []tendv1.Phase{tendv1.PhaseDenied, tendv1.PhaseSucceeded}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSink(t, nil)
			n := newNotifier(t, controllers.NotifierOptions{URL: s.URL(), Events: tc.events})
			for _, ph := range all {
				if got, want := n.Wants(ph), contains(tc.want, ph); got != want {
					t.Errorf("Wants(%s) = %v, want %v", ph, got, want)
				}
				n.Notify(controllers.NewNotification(notifyProposal(), tendv1.PhasePending, ph, "", notifyTime))
			}
			startNotifier(t, t.Context(), n)
			// A marker notified last arrives last: anything queued before
			// it arrives before it.
			marker := notifyProposal()
			marker.Name = "marker"
			n.Notify(controllers.NewNotification(marker, tendv1.PhasePending, tc.want[0], "", notifyTime))
			reqs := s.wait(t, len(tc.want)+1)
			if last := reqs[len(reqs)-1].Message.Text; !strings.Contains(last, "team-a/marker") {
				t.Fatalf("sink got %d requests and then %q, want %d and then the marker", len(reqs)-1, last, len(tc.want))
			}
			var got []tendv1.Phase
			for _, r := range reqs[:len(reqs)-1] {
				phase := strings.TrimPrefix(r.Message.Blocks[1].Fields[1].Text, "*Phase*\nPending → ")
				got = append(got, tendv1.Phase(strings.Fields(phase)[0]))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("phases notified (-want +got):\n%s", diff)
			}
		})
	}
}

func contains(ps []tendv1.Phase, p tendv1.Phase) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

// On shutdown the notifier stops mid-retry, sends nothing more, and says
// what it left.
func TestNotifierStopsOnShutdown(t *testing.T) {
	s := newSink(t, status(http.StatusServiceUnavailable))
	var mu sync.Mutex
	var logs []string
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, prefix+" "+args)
	}, funcr.Options{Verbosity: 1})
	ctx, cancel := context.WithCancel(logf.IntoContext(t.Context(), logger))
	defer cancel()
	n := newNotifier(t, controllers.NotifierOptions{URL: s.URL(), Backoff: time.Hour, MaxBackoff: time.Hour})
	done := startNotifier(t, ctx, n)
	for range 3 {
		n.Notify(controllers.NewNotification(notifyProposal(), tendv1.PhasePending, tendv1.PhaseAwaitingApproval, "", notifyTime))
	}
	s.wait(t, 1)
	cancel()
	waitFor(t, "Start to return", func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	})
	if got := len(s.requests()); got != 1 {
		t.Errorf("sink got %d requests, want 1", got)
	}
	mu.Lock()
	all := strings.Join(logs, "\n")
	mu.Unlock()
	if !strings.Contains(all, `"unsent"=3`) {
		t.Errorf("logs do not say 3 notifications were left unsent:\n%s", all)
	}
}

// Logs and errors name the sink by scheme and host only: a webhook URL's
// path is its credential.
func TestNotifierKeepsTheURLOutOfLogs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/services/SECRET-PATH"
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs []string
	logger := funcr.New(func(prefix, args string) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, prefix+" "+args)
	}, funcr.Options{Verbosity: 1})
	n := newNotifier(t, controllers.NotifierOptions{URL: closed, Backoff: time.Millisecond, MaxAttempts: 2})
	startNotifier(t, logf.IntoContext(t.Context(), logger), n)
	n.Notify(controllers.NewNotification(notifyProposal(), tendv1.PhasePending, tendv1.PhaseAwaitingApproval, "", notifyTime))
	waitFor(t, "the notification to fail", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(strings.Join(logs, "\n"), "Failed to send notification")
	})
	mu.Lock()
	all := strings.Join(logs, "\n")
	mu.Unlock()
	if strings.Contains(all, "SECRET-PATH") {
		t.Errorf("logs contain the webhook URL's path:\n%s", all)
	}
	if !strings.Contains(all, "http://"+ln.Addr().String()) {
		t.Errorf("logs do not name the sink's host:\n%s", all)
	}
}

func TestNewNotifierRejectsBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts controllers.NotifierOptions
	}{
		{name: "no URL", opts: controllers.NotifierOptions{}},
		{name: "not http", opts: controllers.NotifierOptions{URL: "ftp://hooks.example/SECRET-PATH"}},
		{name: "no host", opts: controllers.NotifierOptions{URL: "https:///SECRET-PATH"}},
		{name: "does not parse", opts: controllers.NotifierOptions{URL: "https://hooks.example/%zzSECRET-PATH"}},
		{name: "no attempts", opts: controllers.NotifierOptions{URL: "https://hooks.example/x", MaxAttempts: -1}},
		{name: "no queue", opts: controllers.NotifierOptions{URL: "https://hooks.example/x", QueueSize: -1}},
		{name: "cap below backoff", opts: controllers.NotifierOptions{URL: "https://hooks.example/x", Backoff: time.Minute, MaxBackoff: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := controllers.NewNotifier(tc.opts)
			if err == nil {
				t.Fatal("NewNotifier succeeded, want an error")
			}
			if strings.Contains(err.Error(), "SECRET-PATH") {
				t.Errorf("error quotes the URL's path: %v", err)
			}
		})
	}
}

// The proposal controller tells the notifier of the transitions it commits.
func TestNotifierHearsProposalTransitions(t *testing.T) {
	s := newSink(t, nil)
	n := newNotifier(t, controllers.NotifierOptions{URL: s.URL()})
	ns := newNamespace(t, protected)
	system := newNamespace(t, nil)
	gate, err := policies.New(policies.Options{})
	if err != nil {
		t.Fatalf("failed to create gate: %v", err)
	}
	bundle, err := policies.DefaultBundle()
	if err != nil {
		t.Fatalf("failed to load the default bundle: %v", err)
	}
	gate.Load(bundle)
	startManager(t, []string{ns, system}, func(mgr ctrl.Manager) error {
		if err := mgr.Add(n); err != nil {
			return err
		}
		if err := (&controllers.ProposalReconciler{
			Client:   mgr.GetClient(),
			Gate:     gate,
			Recorder: mgr.GetEventRecorder("tend-proposal-controller"),
			Options:  controllers.ProposalOptions{Cluster: "envtest", SystemNamespace: system},
			Notifier: n,
		}).SetupWithManager(mgr); err != nil {
			return err
		}
		return (&controllers.GatePolicyReconciler{Client: mgr.GetClient(), Gate: gate}).SetupWithManager(mgr)
	})
	c := kube(t)
	w := newFailingRollout(t, c, ns, "api")
	p := rollbackProposal(w.Deployment())
	p.Spec.Evidence.Summary = "container log: token=" + secret
	p = createProposal(t, c, p)
	waitPhase(t, newG(t), c, p, tendv1.PhaseAwaitingApproval)

	msg := s.wait(t, 1)[0].Message
	want := "[envtest] Proposal " + ns + "/" + p.Name + " awaits 1 approval(s): RollbackWorkload on Deployment " + ns + "/api"
	if msg.Text != want {
		t.Errorf("text = %q, want %q", msg.Text, want)
	}
	if all := strings.Join(msg.texts(), "\n"); strings.Contains(all, secret) || strings.Contains(all, "crash-loops") {
		t.Errorf("message carries the proposal's evidence or rationale:\n%s", all)
	}
	if got := len(s.requests()); got != 1 {
		t.Errorf("sink got %d requests, want only the AwaitingApproval one", got)
	}
}
