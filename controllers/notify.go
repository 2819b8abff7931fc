package controllers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// notifier is told of every committed proposal transition and picks the ones
// it sends. *Notifier implements it. Notify must never block.
type notifier interface {
	Notify(Notification)
}

var (
	_ notifier                       = (*Notifier)(nil)
	_ manager.Runnable               = (*Notifier)(nil)
	_ manager.LeaderElectionRunnable = (*Notifier)(nil)
)

// Results of a notification, the values of the result label of
// tend_notifications_sent_total.
const (
	NotificationOK     = "ok"
	NotificationFailed = "failed"
)

var (
	notificationsSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tend_notifications_sent_total",
		Help: "Notifications the webhook sink accepted (ok) or that were given up on after their last attempt (failed).",
	}, []string{"result"})
	notificationsDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tend_notifications_dropped_total",
		Help: "Notifications dropped unsent because the queue was full (the oldest waiting one goes).",
	})
)

func init() {
	// Both results exist from the start, at zero.
	notificationsSent.WithLabelValues(NotificationOK)
	notificationsSent.WithLabelValues(NotificationFailed)
}

// RegisterNotifierMetrics adds the notification metrics to r. Registering them again is not
// an error.
func RegisterNotifierMetrics(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{notificationsSent, notificationsDropped} {
		if err := r.Register(c); err != nil {
			if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok && are.ExistingCollector == c {
				continue
			}
			return fmt.Errorf("failed to register notification metrics: %w", err)
		}
	}
	return nil
}

// DefaultNotifyEvents are the phases that notify when NotifierOptions.Events
// is empty: a human is needed, or a change did not hold.
var DefaultNotifyEvents = []tendv1.Phase{tendv1.PhaseAwaitingApproval, tendv1.PhaseFailed, tendv1.PhaseRolledBack}

// NotifierOptions configure a Notifier.
type NotifierOptions struct {
	// URL of the webhook sink, e.g. a Slack incoming webhook. Such URLs are
	// credentials: logs and errors show only their scheme and host.
	URL string
	// Events are the phases whose entry notifies; DefaultNotifyEvents when empty.
	Events []tendv1.Phase
	// Timeout bounds one POST; 5s when zero.
	Timeout time.Duration
	// MaxAttempts bounds the POSTs of one notification; 5 when zero.
	MaxAttempts int
	// Backoff is the wait before the first retry, doubled before each next
	// one; 1s when zero.
	Backoff time.Duration
	// MaxBackoff caps every wait between attempts, a Retry-After included, so
	// that one slow sink cannot hold the queue for long; 30s when zero.
	MaxBackoff time.Duration
	// QueueSize bounds the notifications waiting to be sent; 1000 when zero.
	// When it is full the oldest waiting one is dropped.
	QueueSize int
	// HTTPClient sends the POSTs; a new client with the default transport
	// when nil. Timeout applies on top of the client's own.
	HTTPClient *http.Client
}

func (o *NotifierOptions) defaults() {
	if len(o.Events) == 0 {
		o.Events = DefaultNotifyEvents
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 5
	}
	if o.Backoff == 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.QueueSize == 0 {
		o.QueueSize = 1000
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
}

// Notifier posts a Slack-compatible JSON message to a webhook sink when a
// proposal enters one of the chosen phases. The reconciler hands it
// notifications with Notify, which only queues; Start, run by the manager on
// the leader, sends them one at a time, retrying network errors, 5xx and 429
// answers with backoff. Messages carry names, phases and reason codes, never
// the proposal's free text (evidence, rationale, messages), labels or
// annotations.
type Notifier struct {
	opts   NotifierOptions
	events map[tendv1.Phase]bool
	sink   string // scheme://host of the URL, for logs and errors

	mu    sync.Mutex
	queue []Notification
	wake  chan struct{}
}

// NewNotifier validates opts and returns a Notifier; add it to the manager
// to start sending.
func NewNotifier(opts NotifierOptions) (*Notifier, error) {
	opts.defaults()
	u, err := url.Parse(opts.URL)
	if err != nil {
		// The parse error quotes the URL, which is a credential.
		return nil, errors.New("controllers: the notification URL does not parse")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("controllers: the notification URL must be http(s)://host/..., not %s://%s", u.Scheme, u.Host)
	}
	switch {
	case opts.Timeout < 0, opts.Backoff < 0:
		return nil, errors.New("controllers: notification timeout and backoff must be positive")
	case opts.MaxBackoff < opts.Backoff:
		return nil, fmt.Errorf("controllers: notification max backoff %s is shorter than the backoff %s", opts.MaxBackoff, opts.Backoff)
	case opts.MaxAttempts < 1:
		return nil, fmt.Errorf("controllers: notification attempts must be at least 1, not %d", opts.MaxAttempts)
	case opts.QueueSize < 1:
		return nil, fmt.Errorf("controllers: notification queue size must be at least 1, not %d", opts.QueueSize)
	}
	n := &Notifier{
		opts:   opts,
		events: map[tendv1.Phase]bool{},
		sink:   u.Scheme + "://" + u.Host,
		wake:   make(chan struct{}, 1),
	}
	for _, e := range opts.Events {
		n.events[e] = true
	}
	return n, nil
}

// Wants reports whether entering phase notifies.
func (n *Notifier) Wants(phase tendv1.Phase) bool { return n != nil && n.events[phase] }

// Notify queues nt if its phase is one n sends, and returns at once. When
// the queue is full the oldest waiting notification is dropped and counted.
func (n *Notifier) Notify(nt Notification) {
	if nt.Run == nil && !n.Wants(nt.To) {
		return
	}
	n.mu.Lock()
	if len(n.queue) >= n.opts.QueueSize {
		n.queue[0] = Notification{}
		n.queue = n.queue[1:]
		notificationsDropped.Inc()
	}
	n.queue = append(n.queue, nt)
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// NeedLeaderElection is true: only the leader's reconciler records
// transitions, and only it should send them.
func (n *Notifier) NeedLeaderElection() bool { return true }

// Start sends queued notifications until ctx is done. Then it stops at once,
// mid-retry if need be, and logs what it leaves unsent. It always returns
// nil: a sink that does not answer is no reason to stop the manager.
func (n *Notifier) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("notifier").WithValues("sink", n.sink)
	logger.Info("Sending notifications", "events", n.opts.Events)
	for {
		nt, ok := n.next()
		if !ok {
			select {
			case <-ctx.Done():
				n.abandon(logger, nil)
				return nil
			case <-n.wake:
				continue
			}
		}
		if !n.deliver(ctx, logger, nt) {
			n.abandon(logger, &nt)
			return nil
		}
	}
}

func (n *Notifier) next() (Notification, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.queue) == 0 {
		return Notification{}, false
	}
	nt := n.queue[0]
	n.queue[0] = Notification{}
	n.queue = n.queue[1:]
	return nt, true
}

// abandon empties the queue at shutdown and logs what was in it, with
// inFlight, the notification being sent when ctx ended, first.
func (n *Notifier) abandon(logger logr.Logger, inFlight *Notification) {
	n.mu.Lock()
	left := n.queue
	n.queue = nil
	n.mu.Unlock()
	if inFlight != nil {
		left = append([]Notification{*inFlight}, left...)
	}
	if len(left) == 0 {
		logger.Info("Stopped sending notifications; none left unsent")
		return
	}
	logger.Info("Stopped sending notifications; some are left unsent", "unsent", len(left))
	for _, nt := range left {
		logger.V(1).Info("Notification left unsent", "proposal", klog.KRef(nt.Namespace, nt.Name), "phase", nt.To, "time", nt.Time)
	}
}

// deliver posts nt until the sink takes it, refuses it for good, or
// MaxAttempts are spent. It reports false when ctx ended first.
func (n *Notifier) deliver(ctx context.Context, logger logr.Logger, nt Notification) bool {
	logger = logger.WithValues("proposal", klog.KRef(nt.Namespace, nt.Name), "phase", nt.To)
	body, err := json.Marshal(nt.message())
	if err != nil {
		notificationsSent.WithLabelValues(NotificationFailed).Inc()
		logger.Error(err, "Failed to encode notification")
		return true
	}
	backoff := n.opts.Backoff
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			return false
		}
		err := n.post(ctx, body)
		if err == nil {
			notificationsSent.WithLabelValues(NotificationOK).Inc()
			logger.V(1).Info("Sent notification", "attempts", attempt)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		if !err.retry || attempt >= n.opts.MaxAttempts {
			notificationsSent.WithLabelValues(NotificationFailed).Inc()
			logger.Error(err, "Failed to send notification", "attempts", attempt)
			return true
		}
		wait := backoff
		if err.after > 0 {
			wait = err.after
		}
		wait = min(wait, n.opts.MaxBackoff)
		logger.V(1).Info("Retrying notification", "attempt", attempt, "after", wait, "error", err.Error())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(backoff*2, n.opts.MaxBackoff)
	}
}

// postError is a failed POST: whether to try again, and when the sink asked
// to be tried again (Retry-After), if it did.
type postError struct {
	err   error
	retry bool
	after time.Duration
}

func (e *postError) Error() string { return e.err.Error() }
func (e *postError) Unwrap() error { return e.err }

// post makes one attempt.
func (n *Notifier) post(ctx context.Context, body []byte) *postError {
	ctx, cancel := context.WithTimeout(ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.opts.URL, bytes.NewReader(body))
	if err != nil {
		return &postError{err: fmt.Errorf("failed to build request: %w", n.redact(err))}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "tend-notifier")
	resp, err := n.opts.HTTPClient.Do(req)
	if err != nil {
		return &postError{err: fmt.Errorf("failed to post notification: %w", n.redact(err)), retry: true}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("the sink answered %s: %q", resp.Status, strings.ToValidUTF8(string(snippet), "?"))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		return &postError{err: err, retry: true, after: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	return &postError{err: err}
}

// redact replaces the URL in an HTTP client error, which quotes it, with the
// sink's scheme and host.
func (n *Notifier) redact(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return &url.Error{Op: ue.Op, URL: n.sink, Err: ue.Err}
	}
	return err
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date. It
// returns 0 when there is none or it makes no sense.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Notification is one committed phase transition of a proposal, reduced to
// what may leave the cluster: names, phases, reason codes and the
// controller's own summaries of what it changed. It holds no evidence,
// rationale, status or check messages, error text, labels or annotations:
// those may carry untrusted or sensitive text.
type Notification struct {
	// Time of the transition.
	Time time.Time
	// Cluster names the cluster, as in audit records.
	Cluster string
	// Namespace and Name of the proposal.
	Namespace, Name string
	// From and To are the phases left and entered.
	From, To tendv1.Phase
	// Reason is the reason code of the transition.
	Reason string
	// Action and Target of the proposal.
	Action tendv1.Action
	Target NotificationTarget
	// Decision of the gate, nil before it decided.
	Decision *NotificationDecision
	// Approvals is how many approvals are counted so far.
	Approvals int
	// Apply and Rollback summarise the change and its undo, nil before them.
	Apply, Rollback *ChangeSummary
	// Checks are the verification checks with their latest results.
	Checks []CheckResult
	// Verified is the outcome of verification, nil until it concluded.
	Verified *bool
	// Run, when set, makes this the summary of a finished improvement run
	// (Namespace and Name are the run's); the proposal fields are unset.
	Run *RunSummary
}

// RunSummary is what a finished improvement run did and saved.
type RunSummary struct {
	Schedule string
	Phase    tendv1.RunPhase
	// Reason the run ended with.
	Reason string
	// Counts of the run's items by outcome.
	Outcomes map[tendv1.ItemOutcome]int
	// Saved requests of the verified changes (negative where they added),
	// and their worth at the schedule's prices ("" without prices).
	SavedCPUMillicores int64
	SavedMemoryBytes   int64
	SavedMonthly       string
}

// NotificationTarget names a proposal's target.
type NotificationTarget struct {
	Kind, Namespace, Name string
}

// NotificationDecision is a gate decision without its messages.
type NotificationDecision struct {
	Outcome           tendv1.Outcome
	Policy, Rule      string
	Reasons           []NotificationReason
	RequiredApprovals int32
}

// NotificationReason is a reason code and where it came from.
type NotificationReason struct {
	Code, Policy, Rule, Guard string
}

// ChangeSummary is an apply record without its error text or attempt token.
type ChangeSummary struct {
	// Before and After are the controller's descriptions of the target,
	// e.g. "revision 2".
	Before, After string
	// Completed is true once the write finished.
	Completed bool
	// Errored is true when the write failed; the error itself is on the
	// proposal.
	Errored bool
}

// CheckResult is a verification check without its message.
type CheckResult struct {
	Name   string
	Passed bool
}

// NewNotification describes p's transition from one phase to another.
func NewNotification(p *tendv1.Proposal, from, to tendv1.Phase, cluster string, at time.Time) Notification {
	t := p.Spec.Target
	nt := Notification{
		Time: at, Cluster: cluster,
		Namespace: p.Namespace, Name: p.Name,
		From: from, To: to, Reason: phaseReason(p, to),
		Action: p.Spec.Action,
		Target: NotificationTarget{Kind: t.Kind, Namespace: t.Namespace, Name: t.Name},
	}
	if d := p.Status.Decision; d != nil {
		nd := &NotificationDecision{Outcome: d.Outcome, Policy: d.Policy, Rule: d.Rule, RequiredApprovals: d.RequiredApprovals}
		for _, r := range d.Reasons {
			nd.Reasons = append(nd.Reasons, NotificationReason{Code: r.Code, Policy: r.Policy, Rule: r.Rule, Guard: r.Guard})
		}
		nt.Decision = nd
	}
	for _, a := range p.Status.Approvals {
		if a.Decision == tendv1.ApprovalApprove {
			nt.Approvals++
		}
	}
	nt.Apply = summarizeChange(p.Status.Apply)
	nt.Rollback = summarizeChange(p.Status.Rollback)
	if v := p.Status.Verify; v != nil {
		for _, c := range v.Checks {
			nt.Checks = append(nt.Checks, CheckResult{Name: c.Name, Passed: c.Passed})
		}
		if v.Passed != nil {
			passed := *v.Passed
			nt.Verified = &passed
		}
	}
	return nt
}

func summarizeChange(a *tendv1.ApplyRecord) *ChangeSummary {
	if a == nil {
		return nil
	}
	return &ChangeSummary{Before: a.Before, After: a.After, Completed: a.CompletedAt != nil, Errored: a.Error != ""}
}

// Slack's limits, and ours: every value taken from a proposal is cut to
// maxValue runes before it is escaped.
const (
	maxValue      = 120
	maxText       = 3000 // a section's text
	maxFieldText  = 2000 // a section field
	maxHeaderText = 150
	maxFallback   = 500 // the top-level text, shown in notifications
	maxListed     = 10  // reasons or checks listed
)

// slackMessage is an incoming-webhook message: text is the fallback shown in
// notifications, blocks the message itself.
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

func mrkdwn(s string, limit int) slackText {
	return slackText{Type: "mrkdwn", Text: clipEscaped(s, limit)}
}

// message renders the notification as Slack blocks.
func (nt Notification) message() slackMessage {
	if nt.Run != nil {
		return nt.runMessage()
	}
	proposal := nt.Namespace + "/" + nt.Name
	target := nt.Target.Name
	if nt.Target.Namespace != "" {
		target = nt.Target.Namespace + "/" + target
	}
	var headline, summary string
	switch nt.To {
	case tendv1.PhaseAwaitingApproval:
		headline = "Proposal awaiting approval"
		summary = fmt.Sprintf("Proposal %s awaits %d approval(s)", value(proposal), nt.requiredApprovals())
	case tendv1.PhaseFailed:
		headline = "Proposal failed"
		summary = fmt.Sprintf("Proposal %s failed (%s)", value(proposal), value(nt.Reason))
	case tendv1.PhaseRolledBack:
		headline = "Proposal rolled back"
		summary = fmt.Sprintf("Proposal %s was rolled back (%s)", value(proposal), value(nt.Reason))
	default:
		headline = "Proposal " + string(nt.To)
		summary = fmt.Sprintf("Proposal %s is now %s (%s)", value(proposal), value(string(nt.To)), value(nt.Reason))
	}
	summary += fmt.Sprintf(": %s on %s %s", value(string(nt.Action)), value(nt.Target.Kind), value(target))
	if nt.Cluster != "" {
		summary = fmt.Sprintf("[%s] %s", value(nt.Cluster), summary)
	}

	fields := []slackText{
		mrkdwn("*Proposal*\n"+code(proposal), maxFieldText),
		mrkdwn(fmt.Sprintf("*Phase*\n%s → %s (%s)", value(string(nt.From)), value(string(nt.To)), code(nt.Reason)), maxFieldText),
		mrkdwn("*Action*\n"+code(string(nt.Action)), maxFieldText),
		mrkdwn(fmt.Sprintf("*Target*\n%s %s", value(nt.Target.Kind), code(target)), maxFieldText),
	}
	if nt.Cluster != "" {
		fields = append(fields, mrkdwn("*Cluster*\n"+code(nt.Cluster), maxFieldText))
	}
	blocks := []slackBlock{
		{Type: "header", Text: &slackText{Type: "plain_text", Text: clipEscaped("tend: "+escape(clean(headline)), maxHeaderText)}},
		{Type: "section", Text: ptrTo(mrkdwn(summary, maxText)), Fields: fields},
	}
	if d := nt.Decision; d != nil {
		blocks = append(blocks, slackBlock{Type: "section", Text: ptrTo(mrkdwn(d.text(), maxText))})
	}
	hint := fmt.Sprintf("Details: `tend proposals show %s -n %s`", commandArg(nt.Name), commandArg(nt.Namespace))
	if nt.To == tendv1.PhaseAwaitingApproval {
		text := fmt.Sprintf("*Needs %d approval(s)*, %d counted so far.\nApprove: `tend proposals approve %s -n %s`\n%s",
			nt.requiredApprovals(), nt.Approvals, commandArg(nt.Name), commandArg(nt.Namespace), hint)
		blocks = append(blocks, slackBlock{Type: "section", Text: ptrTo(mrkdwn(text, maxText))})
	} else if text := nt.changeText(); text != "" {
		blocks = append(blocks, slackBlock{Type: "section", Text: ptrTo(mrkdwn(text+"\n"+hint, maxText))})
	}
	blocks = append(blocks, slackBlock{Type: "context", Elements: []slackText{
		mrkdwn("tend · "+nt.Time.UTC().Format(time.RFC3339), maxFieldText),
	}})
	return slackMessage{Text: clipEscaped(summary, maxFallback), Blocks: blocks}
}

func (nt Notification) requiredApprovals() int32 {
	if nt.Decision == nil {
		return 1
	}
	return max(nt.Decision.RequiredApprovals, 1)
}

// text lists the decision's outcome and reason codes with their origins.
func (d *NotificationDecision) text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "*Decision:* %s", value(string(d.Outcome)))
	if d.Policy != "" {
		fmt.Fprintf(&b, " by policy %s, rule %s", code(d.Policy), code(d.Rule))
	}
	for i, r := range d.Reasons {
		line := "\n• " + code(r.Code)
		var from []string
		if r.Guard != "" {
			from = append(from, "guard "+code(r.Guard))
		}
		if r.Policy != "" {
			from = append(from, "policy "+code(r.Policy))
		}
		if r.Rule != "" {
			from = append(from, "rule "+code(r.Rule))
		}
		if len(from) > 0 {
			line += " (" + strings.Join(from, ", ") + ")"
		}
		// Stop listing in time to say how many are left out.
		if i == maxListed || utf8.RuneCountInString(b.String())+utf8.RuneCountInString(line) > maxText-30 {
			fmt.Fprintf(&b, "\n• and %d more", len(d.Reasons)-i)
			break
		}
		b.WriteString(line)
	}
	return b.String()
}

// changeText summarises the apply, its verification and the rollback; empty
// when nothing was applied.
func (nt Notification) changeText() string {
	var lines []string
	if nt.Apply != nil {
		lines = append(lines, "*Apply:* "+nt.Apply.text())
	}
	if len(nt.Checks) > 0 || nt.Verified != nil {
		state := "in progress"
		if nt.Verified != nil {
			state = map[bool]string{true: "passed", false: "failed"}[*nt.Verified]
		}
		var checks []string
		for i, c := range nt.Checks {
			if i == maxListed {
				checks = append(checks, fmt.Sprintf("and %d more", len(nt.Checks)-i))
				break
			}
			checks = append(checks, fmt.Sprintf("%s %s", code(c.Name), map[bool]string{true: "ok", false: "failed"}[c.Passed]))
		}
		line := "*Verification:* " + state
		if len(checks) > 0 {
			line += ": " + strings.Join(checks, ", ")
		}
		lines = append(lines, line)
	}
	if nt.Rollback != nil {
		lines = append(lines, "*Rollback:* "+nt.Rollback.text())
	}
	return strings.Join(lines, "\n")
}

func (c *ChangeSummary) text() string {
	state := "done"
	switch {
	case c.Errored:
		state = "failed; the error is on the proposal"
	case !c.Completed:
		state = "not completed"
	}
	if c.Before == "" && c.After == "" {
		return state
	}
	return fmt.Sprintf("%s → %s (%s)", orDash(c.Before), orDash(c.After), state)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return value(s)
}

func ptrTo[T any](v T) *T { return &v }

// value makes s safe to place in mrkdwn: control characters become spaces,
// it is cut to maxValue runes, and Slack's control characters are escaped.
func value(s string) string { return escape(clip(clean(s), maxValue)) }

// code is value in a code span; a backquote would end the span early.
func code(s string) string {
	if s == "" {
		return "-"
	}
	return "`" + value(strings.ReplaceAll(s, "`", "'")) + "`"
}

// commandArg is a name as a shell argument in a code span. Kubernetes names
// need no quoting; anything else is shown but would not run.
func commandArg(s string) string {
	return value(strings.Map(func(r rune) rune {
		if r == '`' {
			return '\''
		}
		return r
	}, s))
}

// clean replaces control characters, newlines among them, with spaces, so a
// value cannot start lines of its own.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// escape escapes Slack's control characters &, < and >, so no value can
// mention, link or format anything.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// clip cuts s to at most n runes, marking the cut with an ellipsis.
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// clipEscaped clips already escaped text without cutting an entity in two.
func clipEscaped(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	out := string([]rune(s)[:n-1])
	if amp := strings.LastIndexByte(out, '&'); amp >= 0 && !strings.Contains(out[amp:], ";") {
		out = out[:amp]
	}
	return out + "…"
}

// runMessage renders a run's summary as Slack blocks.
func (nt Notification) runMessage() slackMessage {
	r := nt.Run
	run := nt.Namespace + "/" + nt.Name
	summary := fmt.Sprintf("Improvement run %s %s (%s)", value(run), strings.ToLower(value(string(r.Phase))), value(r.Reason))
	if nt.Cluster != "" {
		summary = fmt.Sprintf("[%s] %s", value(nt.Cluster), summary)
	}
	saved := fmt.Sprintf("%.2f CPU cores, %.2f GiB of memory requested", float64(r.SavedCPUMillicores)/1000, float64(r.SavedMemoryBytes)/(1<<30))
	if r.SavedMonthly != "" {
		saved += " (" + value(r.SavedMonthly) + " a month)"
	}
	var outcomes []string
	for _, o := range []tendv1.ItemOutcome{tendv1.ItemVerified, tendv1.ItemAwaitingApproval, tendv1.ItemDenied, tendv1.ItemUndone, tendv1.ItemFailed,
		tendv1.ItemSkipped, tendv1.ItemReported, tendv1.ItemNotEnoughData} {
		if n := r.Outcomes[o]; n > 0 {
			outcomes = append(outcomes, fmt.Sprintf("%d %s", n, o))
		}
	}
	fields := []slackText{
		mrkdwn("*Run*\n"+code(run), maxFieldText),
		mrkdwn("*Schedule*\n"+code(r.Schedule), maxFieldText),
		mrkdwn("*Saved*\n"+saved, maxFieldText),
		mrkdwn("*Changes*\n"+value(orDash(strings.Join(outcomes, ", "))), maxFieldText),
	}
	hint := fmt.Sprintf("Report: `tend runs show %s -n %s`", commandArg(nt.Name), commandArg(nt.Namespace))
	blocks := []slackBlock{
		{Type: "header", Text: &slackText{Type: "plain_text", Text: clipEscaped("tend: improvement run "+escape(clean(strings.ToLower(string(r.Phase)))), maxHeaderText)}},
		{Type: "section", Text: ptrTo(mrkdwn(summary, maxText)), Fields: fields},
		{Type: "section", Text: ptrTo(mrkdwn(hint, maxText))},
		{Type: "context", Elements: []slackText{mrkdwn("tend · "+nt.Time.UTC().Format(time.RFC3339), maxFieldText)}},
	}
	return slackMessage{Text: clipEscaped(summary, maxFallback), Blocks: blocks}
}
