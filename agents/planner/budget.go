package planner

import (
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Usage is what model calls consumed.
type Usage struct {
	InputTokens  int     `json:"inputTokens"`
	OutputTokens int     `json:"outputTokens"`
	CostUSD      float64 `json:"costUSD"`
}

// Tokens is the total of input and output tokens.
func (u Usage) Tokens() int { return u.InputTokens + u.OutputTokens }

func (u *Usage) add(v Usage) {
	u.InputTokens += v.InputTokens
	u.OutputTokens += v.OutputTokens
	u.CostUSD += v.CostUSD
}

// Limits bound a planner's model calls. Zero means no limit of that kind.
type Limits struct {
	// MaxSteps is the most model calls per incident.
	MaxSteps int
	// TokensPerIncident and CostPerIncident (US dollars) bound the running
	// totals of one incident.
	TokensPerIncident int
	CostPerIncident   float64
	// TokensPerHour and CostPerHour bound the running totals of every
	// incident in the last hour.
	TokensPerHour int
	CostPerHour   float64
	// MaxOutputTokens bounds one answer of the model; 1024 when zero.
	MaxOutputTokens int
}

// Prices turn tokens into US dollars.
type Prices struct {
	// InputPerMillion and OutputPerMillion are the prices of a million
	// input and output tokens.
	InputPerMillion, OutputPerMillion float64
}

func (p Prices) cost(in, out int) float64 {
	return (float64(in)*p.InputPerMillion + float64(out)*p.OutputPerMillion) / 1e6
}

// Ledger keeps the running totals of the last hour across incidents. One
// Ledger is shared by every incident a planner handles.
type Ledger struct {
	Clock clock.PassiveClock

	mu      sync.Mutex
	entries []ledgerEntry
}

type ledgerEntry struct {
	at time.Time
	Usage
}

func (l *Ledger) now() time.Time {
	if l.Clock == nil {
		return time.Now()
	}
	return l.Clock.Now()
}

// record adds a model call's usage.
func (l *Ledger) record(u Usage) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, ledgerEntry{at: l.now(), Usage: u})
}

// LastHour is the usage of the last hour.
func (l *Ledger) LastHour() Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	cut := l.now().Add(-time.Hour)
	i := 0
	for i < len(l.entries) && !l.entries[i].at.After(cut) {
		i++
	}
	l.entries = l.entries[i:]
	var u Usage
	for _, e := range l.entries {
		u.add(e.Usage)
	}
	return u
}

// exhausted says which budget, if any, is spent: before every model call
// the totals so far are compared with the limits, so that the last call may
// overshoot a budget by at most one answer, and none follows it.
func (lim Limits) exhausted(incident, hour Usage) string {
	switch {
	case lim.TokensPerIncident > 0 && incident.Tokens() >= lim.TokensPerIncident:
		return "the incident's token budget"
	case lim.CostPerIncident > 0 && incident.CostUSD >= lim.CostPerIncident:
		return "the incident's cost budget"
	case lim.TokensPerHour > 0 && hour.Tokens() >= lim.TokensPerHour:
		return "the hourly token budget"
	case lim.CostPerHour > 0 && hour.CostUSD >= lim.CostPerHour:
		return "the hourly cost budget"
	}
	return ""
}

// maxOutput is how many tokens the next answer may use: the limit of one
// answer, and no more than what remains of the token budgets.
func (lim Limits) maxOutput(incident, hour Usage) int {
	n := lim.MaxOutputTokens
	if n == 0 {
		n = 1024
	}
	if lim.TokensPerIncident > 0 {
		n = min(n, lim.TokensPerIncident-incident.Tokens())
	}
	if lim.TokensPerHour > 0 {
		n = min(n, lim.TokensPerHour-hour.Tokens())
	}
	return max(n, 1)
}
