package agents

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tendops/tend/mcp/wire"
)

// CronJobImage is the runbook for a CronJob whose job template's image was
// changed and whose runs now fail: the pods of its newest Job fail (an image
// that cannot be pulled, a crash loop) while an earlier Job of it, which ran
// other images, completed. It proposes a patch of the job template back to
// the images that Job ran (each with a test of the current image, so a
// newer change is never overwritten); the default policy gives a change of
// what runs to a human. A CronJob's runs have no rollout history to return
// to, so this is its rollback.
type CronJobImage struct {
	// FailFor is how long a pod must fail before it counts. Default 4s.
	FailFor time.Duration
}

var _ Runbook = (*CronJobImage)(nil)

// Name implements Runbook.
func (r *CronJobImage) Name() string { return "cronjob-image" }

// Evaluate implements Runbook.
func (r *CronJobImage) Evaluate(m *Model, now time.Time) []Intent {
	failFor := r.FailFor
	if failFor <= 0 {
		failFor = 4 * time.Second
	}
	var out []Intent
	proposed := map[ObjectKey]bool{}
	for _, key := range sortedKeys(m.Jobs) {
		j := m.Jobs[key]
		o := j.State.Owner
		if o == nil || o.Kind != "CronJob" || j.completed() {
			continue
		}
		ck := ObjectKey{"CronJob", key.Namespace, o.Name}
		c := m.CronJobs[ck]
		cur := j.State.Images
		if c == nil || proposed[ck] || len(c.HealthyImages) == 0 || len(c.HealthyImages) != len(cur) {
			continue
		}
		var changed []int
		for i := range cur {
			if cur[i] != c.HealthyImages[i] {
				changed = append(changed, i)
			}
		}
		if len(changed) == 0 {
			continue
		}
		var bad []string
		refs := []wire.TelemetryRef{j.Ref, c.HealthyRef}
		for _, p := range m.PodsOf(key) {
			detail, failing := podFailure(p.State)
			if !failing || p.FailingSince.IsZero() || !m.lasted(p.FailingSince, failFor, now) {
				continue
			}
			if len(bad) < 5 {
				bad = append(bad, fmt.Sprintf("%s: %s", p.Key.Name, detail))
				refs = append(refs, p.Ref)
			}
		}
		if len(bad) == 0 {
			continue
		}
		patch := make([]wire.PatchOp, 0, 2*len(changed))
		for _, i := range changed {
			path := fmt.Sprintf("/spec/jobTemplate/spec/template/spec/containers/%d/image", i)
			oldV, _ := json.Marshal(cur[i])
			newV, _ := json.Marshal(c.HealthyImages[i])
			patch = append(patch, wire.PatchOp{Op: "test", Path: path, Value: oldV}, wire.PatchOp{Op: "replace", Path: path, Value: newV})
		}
		proposed[ck] = true
		name := key.Namespace + "/" + o.Name
		out = append(out, Intent{PatchWorkload: &wire.PatchWorkloadArgs{
			WorkloadArgs: wire.WorkloadArgs{Namespace: key.Namespace, Kind: "CronJob", Name: o.Name},
			Patch:        patch,
			Common: wire.Common{
				Summary: fmt.Sprintf("CronJob %s: the pods of its Job %s fail (%s) since its job template's image changed; an earlier Job of it, on the previous images, completed.",
					name, key.Name, strings.Join(bad, "; ")),
				Rationale:   "The job template changed only the images this patch puts back, and runs on the previous images completed; returning to them lets the next run complete.",
				Risk:        "Medium",
				Telemetry:   refs,
				Fingerprint: fmt.Sprintf("cronjob-image/%s/%s/%s", key.Namespace, o.Name, wire.Digest(strings.Join(cur, ","))[:12]),
			},
		}})
	}
	return out
}
