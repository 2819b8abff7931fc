package policies

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	v1alpha1 "github.com/tendops/tend/api/v1alpha1"
)

// Default guard limits, used where no policy sets one.
const (
	DefaultMaxDisruptedPercent     = 50
	DefaultMaxNodesDisrupted       = 1
	DefaultMaxApplyingPerNamespace = 3
	DefaultMaxApplyingPerCluster   = 10
	DefaultRateLimitWindow         = 10 * time.Minute
	DefaultRateLimitMax            = 30
	DefaultRateLimitPerProposer    = 10
	DefaultRateLimitPerTarget      = 3
	DefaultBreakerMaxFailures      = 10
	DefaultBreakerMaxProposals     = 50
	DefaultBreakerPerProposer      = 3
	DefaultBreakerPerTarget        = 2
	DefaultBreakerWindow           = time.Hour
)

// Limits are the built-in guards' limits in force: the strictest value any
// valid policy sets, or the default.
type Limits struct {
	MaxDisruptedPercent     int64
	MaxNodesDisrupted       int64
	MaxApplyingPerNamespace int64
	MaxApplyingPerCluster   int64
	RateLimits              []RateLimit
	// BreakerMaxFailures and BreakerMaxProposals trip the cluster breaker.
	BreakerMaxFailures  int64
	BreakerMaxProposals int64
	// BreakerPerProposer and BreakerPerTarget failures hold one proposer's
	// or one target's proposals.
	BreakerPerProposer int64
	BreakerPerTarget   int64
	BreakerWindow      time.Duration
	// WindowSets holds, per policy that sets change windows, its windows:
	// automatic approval needs now inside a window of every set.
	WindowSets [][]ChangeWindow
	Freezes    []v1alpha1.Freeze
	// PatchPathSets holds, per policy that lists allowed patch paths, its
	// prefixes: a path must be allowed by every set.
	PatchPathSets [][]string
}

// RateLimit is a compiled rate limit.
type RateLimit struct {
	Action string
	// Per is what proposals are counted per.
	Per    v1alpha1.RateScope
	Max    int64
	Window time.Duration
}

// ChangeWindow is a compiled change window.
type ChangeWindow struct {
	Schedule cron.Schedule
	Spec     string
	Duration time.Duration
	Location *time.Location
}

// LongestWindow is how far back a gatherer must look for State.Recent.
func (l Limits) LongestWindow() time.Duration {
	w := l.BreakerWindow
	for _, r := range l.RateLimits {
		w = max(w, r.Window)
	}
	return w
}

// DefaultLimits are the limits when no policy sets any.
func DefaultLimits() Limits {
	return Limits{
		MaxDisruptedPercent:     DefaultMaxDisruptedPercent,
		MaxNodesDisrupted:       DefaultMaxNodesDisrupted,
		MaxApplyingPerNamespace: DefaultMaxApplyingPerNamespace,
		MaxApplyingPerCluster:   DefaultMaxApplyingPerCluster,
		RateLimits:              DefaultRateLimits(),
		BreakerMaxFailures:      DefaultBreakerMaxFailures,
		BreakerMaxProposals:     DefaultBreakerMaxProposals,
		BreakerPerProposer:      DefaultBreakerPerProposer,
		BreakerPerTarget:        DefaultBreakerPerTarget,
		BreakerWindow:           DefaultBreakerWindow,
	}
}

// DefaultRateLimits are the rate limits when no policy sets any: every
// action, in the cluster, per proposer and per target, so that one busy
// proposer or one flapping target cannot use up the others' budget.
func DefaultRateLimits() []RateLimit {
	return []RateLimit{
		{Action: "*", Per: v1alpha1.RateScopeCluster, Max: DefaultRateLimitMax, Window: DefaultRateLimitWindow},
		{Action: "*", Per: v1alpha1.RateScopeProposer, Max: DefaultRateLimitPerProposer, Window: DefaultRateLimitWindow},
		{Action: "*", Per: v1alpha1.RateScopeTarget, Max: DefaultRateLimitPerTarget, Window: DefaultRateLimitWindow},
	}
}

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// compileGuards validates one policy's guard limits.
func compileGuards(g *v1alpha1.GuardLimits) (policyLimits, error) {
	var pl policyLimits
	if g == nil {
		return pl, nil
	}
	pl.set = g
	var errs []error
	for i, r := range g.RateLimits {
		if r.Action != "*" && !knownAction(r.Action) {
			errs = append(errs, fmt.Errorf("rateLimits[%d]: action %q is not in the catalogue", i, r.Action))
		}
		if r.Window.Duration <= 0 {
			errs = append(errs, fmt.Errorf("rateLimits[%d]: window must be positive", i))
		}
		per := r.Per
		if per == "" {
			per = v1alpha1.RateScopeCluster
		}
		pl.rates = append(pl.rates, RateLimit{Action: r.Action, Per: per, Max: int64(r.Max), Window: r.Window.Duration})
	}
	if cb := g.CircuitBreaker; cb != nil && cb.Window != nil && cb.Window.Duration <= 0 {
		errs = append(errs, errors.New("circuitBreaker.window must be positive"))
	}
	for i, w := range g.ChangeWindows {
		loc := time.UTC
		if w.TimeZone != "" {
			l, err := time.LoadLocation(w.TimeZone)
			if err != nil {
				errs = append(errs, fmt.Errorf("changeWindows[%d]: time zone %q: %w", i, w.TimeZone, err))
				continue
			}
			loc = l
		}
		s, err := cronParser.Parse(w.Schedule)
		if err != nil {
			errs = append(errs, fmt.Errorf("changeWindows[%d]: schedule %q: %w", i, w.Schedule, err))
			continue
		}
		if w.Duration.Duration <= 0 {
			errs = append(errs, fmt.Errorf("changeWindows[%d]: duration must be positive", i))
			continue
		}
		pl.windows = append(pl.windows, ChangeWindow{Schedule: s, Spec: w.Schedule, Duration: w.Duration.Duration, Location: loc})
	}
	for i, f := range g.Freezes {
		if !f.End.After(f.Start.Time) {
			errs = append(errs, fmt.Errorf("freezes[%d] %q: end must be after start", i, f.Name))
		}
	}
	for i, p := range g.AllowedPatchPaths {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("allowedPatchPaths[%d]: %q is not a JSON pointer", i, p))
		}
	}
	if len(errs) > 0 {
		return policyLimits{}, fmt.Errorf("%w: guards: %w", ErrInvalidPolicy, errors.Join(errs...))
	}
	return pl, nil
}

// policyLimits is one policy's validated guard settings.
type policyLimits struct {
	set     *v1alpha1.GuardLimits
	rates   []RateLimit
	windows []ChangeWindow
}

// mergeLimits folds the valid policies' settings into the limits in force.
func mergeLimits(all []policyLimits) Limits {
	l := DefaultLimits()
	strictest := func(cur *int64, v *int32, seen *bool) {
		if v == nil {
			return
		}
		if !*seen || int64(*v) < *cur {
			*cur = int64(*v)
		}
		*seen = true
	}
	var sDis, sNodes, sNs, sCl, sFail, sProp, sFailP, sFailT bool
	var rates []RateLimit
	for _, pl := range all {
		g := pl.set
		if g == nil {
			continue
		}
		strictest(&l.MaxDisruptedPercent, g.MaxDisruptedPercent, &sDis)
		strictest(&l.MaxNodesDisrupted, g.MaxNodesDisrupted, &sNodes)
		strictest(&l.MaxApplyingPerNamespace, g.MaxApplyingPerNamespace, &sNs)
		strictest(&l.MaxApplyingPerCluster, g.MaxApplyingPerCluster, &sCl)
		if cb := g.CircuitBreaker; cb != nil {
			strictest(&l.BreakerMaxFailures, cb.MaxFailures, &sFail)
			strictest(&l.BreakerMaxProposals, cb.MaxProposals, &sProp)
			strictest(&l.BreakerPerProposer, cb.MaxFailuresPerProposer, &sFailP)
			strictest(&l.BreakerPerTarget, cb.MaxFailuresPerTarget, &sFailT)
			if cb.Window != nil && cb.Window.Duration > l.BreakerWindow {
				// A longer window counts more: stricter.
				l.BreakerWindow = cb.Window.Duration
			}
		}
		rates = append(rates, pl.rates...)
		if len(pl.windows) > 0 {
			l.WindowSets = append(l.WindowSets, pl.windows)
		}
		l.Freezes = append(l.Freezes, g.Freezes...)
		if len(g.AllowedPatchPaths) > 0 {
			l.PatchPathSets = append(l.PatchPathSets, slices.Clone(g.AllowedPatchPaths))
		}
	}
	// A scope no policy limits keeps its default: a policy that sets a
	// cluster-wide limit does not lift the per-proposer one.
	for _, d := range DefaultRateLimits() {
		if !slices.ContainsFunc(rates, func(r RateLimit) bool { return r.Per == d.Per }) {
			rates = append(rates, d)
		}
	}
	l.RateLimits = rates
	return l
}

// inWindow reports whether now falls inside an occurrence of w.
func (w ChangeWindow) inWindow(now time.Time) bool {
	t := now.In(w.Location)
	start := w.Schedule.Next(t.Add(-w.Duration))
	return !start.After(t)
}
