package harness

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strings"
)

// Report renders the markdown report.
func Report(s *Summary) string {
	var b strings.Builder
	o := s.Overall
	fmt.Fprintf(&b, "# tend eval report\n\n")
	fmt.Fprintf(&b, "Brain `%s`, gate policy `%s`, %d scenarios × %d runs, seed %d, %s wall time (%s).\n\n",
		s.Brain, s.Policy, o.Scenarios, s.Runs, s.Seed, fmtSeconds(&s.WallSeconds), s.StartedAt.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "**Mitigated (pass@1): %.2f** (95%% CI over scenarios %.2f–%.2f; ± %.2f s.e. over runs) · detected %.0f%% of faulty runs · mean time to detect %s · mean time to mitigate %s (median %s and %s)\n\n",
		o.PassAt1, o.CI95.Low, o.CI95.High, o.StdErr, 100*o.Detected, fmtSeconds(o.MeanTTDSeconds), fmtSeconds(o.MeanTTMSeconds), fmtSeconds(o.MedianTTDSeconds), fmtSeconds(o.MedianTTMSeconds))
	fmt.Fprintf(&b, "Proposals %d (denied %d, applied %d, of which %d without a human's approval) · unsafe attempted %d, applied %d · proposals on healthy-expected scenarios %d, actions on the healthy control %d",
		o.Proposals, o.Denials, o.Applied, o.AutoApplied, o.UnsafeAttempted, o.UnsafeApplied, o.FalsePositives, o.ControlActions)
	if o.LLM.Tokens == nil {
		b.WriteString(" · LLM tokens, steps and cost: n/a (deterministic brain)")
	} else {
		fmt.Fprintf(&b, " · LLM %d tokens, %d steps, $%.4f (by scenario below)", *o.LLM.Tokens, *o.LLM.Steps, *o.LLM.CostUSD)
	}
	fmt.Fprintf(&b, "\n\nHarness errors: %d runs (counted as not mitigated; listed apart below) · expected failures: %d runs, %d for the expected reason, %d unexpected passes\n",
		o.Errors, o.ExpectedFailures, o.ExpectedRightReason, o.UnexpectedPasses)
	for _, n := range s.Notes {
		fmt.Fprintf(&b, "\n> %s\n", mdEscape(n))
	}
	b.WriteString("\n![pass rate and time to mitigate per category](chart.svg)\n\n")
	b.WriteString("## By category\n\n| category | scenarios | pass@1 | 95% CI | detected | mean TTM | median TTD | median TTM | proposals | denied | unsafe (attempted/applied) | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, c := range s.Categories {
		fmt.Fprintf(&b, "| %s | %d | %.2f | %.2f–%.2f | %.0f%% | %s | %s | %s | %d | %d | %d/%d | %d |\n", c.Category, c.Scenarios, c.PassAt1, c.CI95.Low, c.CI95.High,
			100*c.Detected, fmtSeconds(c.MeanTTMSeconds), fmtSeconds(c.MedianTTDSeconds), fmtSeconds(c.MedianTTMSeconds), c.Proposals, c.Denials, c.UnsafeAttempted, c.UnsafeApplied, c.Errors)
	}
	b.WriteString("\n## By scenario\n\n| scenario | category | difficulty | corresponds to | pass@1 | detected | mean TTD | mean TTM | proposals | denied | unsafe | notes |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sc := range s.Scenarios {
		var refs []string
		for _, r := range sc.Benchmarks {
			if r.Suite == "none" {
				refs = append(refs, "—")
				continue
			}
			refs = append(refs, string(r.Suite)+": "+r.Problem)
		}
		det, ttd, ttm := fmt.Sprintf("%d/%d", sc.DetectedRuns, sc.Runs), fmtSeconds(sc.MeanTTDSeconds), fmtSeconds(sc.MeanTTMSeconds)
		if sc.ExpectHealthy {
			det, ttd, ttm = fmt.Sprintf("%d false positives", sc.FalsePositives), "n/a", "n/a"
		}
		var notes []string
		if sc.ExpectedFailure != "" {
			notes = append(notes, "expected to fail")
		}
		if len(sc.Parameters) > 0 {
			notes = append(notes, "varies "+strings.Join(sc.Parameters, ", "))
		}
		if sc.Exclusive {
			notes = append(notes, "ran alone")
		}
		if sc.Errors > 0 {
			notes = append(notes, fmt.Sprintf("%d harness errors", sc.Errors))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d/%d | %s | %s | %s | %d | %d | %d/%d | %s |\n", sc.Name, sc.Category, sc.Difficulty,
			mdEscape(strings.Join(refs, "; ")), sc.MitigatedRuns, sc.Runs, det, ttd, ttm,
			sc.Proposals, sc.Denials, sc.UnsafeAttempted, sc.UnsafeApplied, strings.Join(notes, "; "))
	}
	writeLLM(&b, s)
	b.WriteString("\n## Expected failures\n\nScenarios nothing in tend fixes today; they score 0 until something does, and each run must fail for the reason given.\n\n")
	anyExpected := false
	for _, sc := range s.Scenarios {
		if sc.ExpectedFailure == "" {
			continue
		}
		anyExpected = true
		fmt.Fprintf(&b, "- **%s**: %s\n", sc.Name, mdEscape(sc.ExpectedFailure))
		for _, r := range sc.Results {
			fmt.Fprintf(&b, "  - run %d: %s\n", r.Run, mdEscape(r.Expected))
		}
	}
	if !anyExpected {
		b.WriteString("None.\n")
	}
	b.WriteString("\n## Harness errors\n\nRuns the harness could not score; they count as not mitigated, and say nothing about the agents.\n\n")
	anyErr := false
	for _, sc := range s.Scenarios {
		for _, r := range sc.Results {
			if r.Error == "" {
				continue
			}
			anyErr = true
			fmt.Fprintf(&b, "- **%s** run %d (%s, seed %d%s): %s: %s\n", sc.Name, r.Run, r.Namespace, r.Seed, values(r), r.ErrorKind, mdEscape(r.Error))
		}
	}
	if !anyErr {
		b.WriteString("None.\n")
	}
	b.WriteString("\n## Failed runs\n\nWhy each run failed at the end, and every proposal it made with the gate's decision.\n\n")
	anyFailed := false
	for _, sc := range s.Scenarios {
		for _, r := range sc.Results {
			if r.Mitigated || r.Error != "" {
				continue
			}
			anyFailed = true
			fmt.Fprintf(&b, "- **%s** run %d (%s, seed %d%s): %s\n", sc.Name, r.Run, r.Namespace, r.Seed, values(r), mdEscape(r.Failure))
			writeProposals(&b, r)
		}
	}
	if !anyFailed {
		b.WriteString("None.\n")
	}
	return b.String()
}

func values(r RunResult) string {
	if len(r.Values) == 0 {
		return ""
	}
	return ", " + r.Values.String()
}

func writeProposals(b *strings.Builder, r RunResult) {
	if len(r.ProposalLog) == 0 {
		b.WriteString("  - no proposals\n")
	}
	for _, p := range r.ProposalLog {
		fmt.Fprintf(b, "  - proposal `%s`: %s on %s, %s", p.Name, p.Action, p.Target, orNone(p.Phase))
		if p.Outcome != "" {
			fmt.Fprintf(b, ", decided %s", p.Outcome)
		}
		if len(p.Reasons) > 0 {
			fmt.Fprintf(b, " (%s)", mdEscape(strings.Join(p.Reasons, "; ")))
		}
		if len(p.ApprovedBy) > 0 {
			fmt.Fprintf(b, ", by %s", strings.Join(p.ApprovedBy, ", "))
		}
		if p.Unsafe != "" {
			fmt.Fprintf(b, ", **unsafe**: %s", mdEscape(p.Unsafe))
		}
		b.WriteString("\n")
	}
	for _, a := range r.Approvals {
		fmt.Fprintf(b, "  - approver %s\n", mdEscape(a))
	}
}

func orNone(s string) string {
	if s == "" {
		return "no phase yet"
	}
	return s
}

func fmtSeconds(p *float64) string {
	if p == nil {
		return "∞"
	}
	return fmt.Sprintf("%.1fs", *p)
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s)
}

// Chart renders an SVG bar chart of pass@1 and mean time to mitigate per
// category.
func Chart(s *Summary) string {
	const (
		rowH, left, barW, gap, top = 26, 130, 260, 60, 50
	)
	width := left + 2*barW + gap + 80
	height := top + rowH*len(s.Categories) + 40
	maxTTM := 1.0
	for _, c := range s.Categories {
		if c.MeanTTMSeconds != nil && *c.MeanTTMSeconds > maxTTM {
			maxTTM = *c.MeanTTMSeconds
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	text := func(x, y int, anchor, weight, s string) {
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="%s" font-weight="%s">`, x, y, anchor, weight)
		_ = xml.EscapeText(&b, []byte(s))
		b.WriteString("</text>\n")
	}
	text(left, 20, "start", "bold", "pass@1 per category (95% CI over scenarios)")
	text(left+barW+gap, 20, "start", "bold", "mean time to mitigate (s; ∞ = never)")
	for i, c := range s.Categories {
		y := top + i*rowH
		text(left-8, y+13, "end", "normal", string(c.Category))
		// pass@1 bar with its standard error.
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="16" fill="#eee"/>`+"\n", left, y, barW)
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="16" fill="#2a7ab9"/>`+"\n", left, y, float64(barW)*c.PassAt1)
		lo, hi := clamp01(c.CI95.Low), clamp01(c.CI95.High)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="black"/>`+"\n", float64(left)+float64(barW)*lo, float64(left)+float64(barW)*hi, y+8, y+8)
		text(left+barW+4, y+13, "start", "normal", fmt.Sprintf("%.2f", c.PassAt1))
		// time to mitigate bar.
		x := left + barW + gap
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="16" fill="#eee"/>`+"\n", x, y, barW)
		if c.MeanTTMSeconds != nil {
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="16" fill="#d9822b"/>`+"\n", x, y, float64(barW)**c.MeanTTMSeconds/maxTTM)
		}
		text(x+barW+4, y+13, "start", "normal", fmtSeconds(c.MeanTTMSeconds))
	}
	text(left, height-12, "start", "normal", fmt.Sprintf("overall pass@1 %.2f (95%% CI %.2f–%.2f) over %d scenarios × %d runs; brain %s; seed %d",
		s.Overall.PassAt1, s.Overall.CI95.Low, s.Overall.CI95.High, s.Overall.Scenarios, s.Runs, s.Brain, s.Seed))
	b.WriteString("</svg>\n")
	return b.String()
}

func clamp01(x float64) float64 {
	return max(0, min(1, x))
}
