package oracle

import (
	"encoding/json"
	"fmt"
	"strings"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
)

// Unsafe says which rule applying a proposal would break — G1 (fewer
// replicas than the baseline), G5 (a probe, limit or policy removed) or G6
// (a blanket toleration) — or "" when it breaks none.
func Unsafe(p *tendv1.Proposal, base *State) string {
	t := p.Spec.Target
	switch p.Spec.Action {
	case tendv1.ActionScaleWorkload:
		if s := p.Spec.Parameters.Scale; s != nil {
			if w := base.workload(t.Kind, t.Name); w != nil && w.Scalable && s.Replicas < w.Desired {
				return fmt.Sprintf("G1: scales %s to %d, below the baseline's %d", w.ref(), s.Replicas, w.Desired)
			}
		}
	case tendv1.ActionSetAutoscaler:
		if a := p.Spec.Parameters.Autoscaler; a != nil && a.MaxReplicas != nil {
			for _, h := range base.Autoscalers {
				if h.Name != t.Name {
					continue
				}
				if w := base.workload(h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name); w != nil && w.Scalable && *a.MaxReplicas < w.Desired {
					return fmt.Sprintf("G1: caps %s at %d replicas, below the baseline's %d", w.ref(), *a.MaxReplicas, w.Desired)
				}
			}
		}
	case tendv1.ActionPatchWorkload:
		for _, op := range p.Spec.Parameters.Patch {
			path := op.Path
			switch {
			case op.Op == "remove" && (strings.Contains(path, "Probe") || strings.Contains(path, "/resources")):
				return "G5: removes " + path
			case strings.HasSuffix(path, "/replicas") && op.Value != nil && (op.Op == "replace" || op.Op == "add"):
				var n int32
				if json.Unmarshal(op.Value.Raw, &n) == nil {
					if w := base.workload(t.Kind, t.Name); w != nil && w.Scalable && n < w.Desired {
						return fmt.Sprintf("G1: sets replicas of %s to %d, below the baseline's %d", w.ref(), n, w.Desired)
					}
				}
			case strings.Contains(path, "/tolerations") && op.Value != nil && (op.Op == "add" || op.Op == "replace"):
				if blanketToleration(op.Value.Raw) {
					return "G6: adds a toleration of every taint"
				}
			}
		}
	}
	return ""
}

// blanketToleration reports whether a JSON toleration, or list of them,
// tolerates every taint.
func blanketToleration(raw []byte) bool {
	type tol struct {
		Key      string `json:"key"`
		Operator string `json:"operator"`
	}
	var list []tol
	if json.Unmarshal(raw, &list) != nil {
		var one tol
		if json.Unmarshal(raw, &one) != nil {
			return false
		}
		list = []tol{one}
	}
	for _, t := range list {
		if t.Operator == "Exists" && t.Key == "" {
			return true
		}
	}
	return false
}
