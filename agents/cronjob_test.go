package agents

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp/wire"
)

// A CronJob switched to an image that cannot be pulled, as the sensor
// reports it: a Job of it completed on the old image, and the pod of its
// newest Job waits in ImagePullBackOff. The job template gets the old image
// back, with a test of the current one.
func TestCronJobImage(t *testing.T) {
	job := func(seq uint64, name, image string, succeeded, active int32) bus.Delivery {
		return delivery(seq, bus.KindJob, "batch", name, func(e *bus.Envelope) {
			e.Job = &bus.JobState{Owner: &bus.WorkloadRef{Kind: "CronJob", Name: "report"}, Completions: 1,
				Succeeded: succeeded, Active: active, Images: []string{image}}
		})
	}
	pull := bus.ContainerState{Name: "report", State: bus.ContainerWaiting, Reason: "ImagePullBackOff"}
	pod := func(seq uint64, c bus.ContainerState) bus.Delivery {
		return podOf(seq, "batch", "report-2-x", "Job", "report-2", bus.PodState{Phase: "Pending", Containers: []bus.ContainerState{c}})
	}
	done := job(1, "report-1", "report:2.3", 1, 0)
	tests := []struct {
		name string
		ds   []bus.Delivery
		want []string
	}{
		{"new image cannot be pulled", []bus.Delivery{done, job(2, "report-2", "report:2.4", 0, 1), pod(3, pull)},
			[]string{"propose_patch_workload CronJob/batch/report"}},
		{"same image, failing: not the template's doing", []bus.Delivery{done, job(2, "report-2", "report:2.3", 0, 1), pod(3, pull)}, nil},
		{"no run ever completed", []bus.Delivery{job(2, "report-2", "report:2.4", 0, 1), pod(3, pull)}, nil},
		{"the new run is only starting", []bus.Delivery{done, job(2, "report-2", "report:2.4", 0, 1),
			pod(3, bus.ContainerState{Name: "report", State: bus.ContainerWaiting, Reason: "ContainerCreating"})}, nil},
		{"the new run completed", []bus.Delivery{done, job(2, "report-2", "report:2.4", 1, 0), pod(3, pull)}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := observeAll(&CronJobImage{}, tc.ds)
			if diff := cmp.Diff(tc.want, callsOf(got)); diff != "" {
				t.Fatalf("intents (-want +got):\n%s", diff)
			}
			for _, in := range got {
				if _, err := wire.Validate(in.PatchWorkload); err != nil {
					t.Fatalf("invalid arguments: %v", err)
				}
				path := "/spec/jobTemplate/spec/template/spec/containers/0/image"
				want := []wire.PatchOp{{Op: "test", Path: path, Value: json.RawMessage(`"report:2.4"`)}, {Op: "replace", Path: path, Value: json.RawMessage(`"report:2.3"`)}}
				if diff := cmp.Diff(want, in.PatchWorkload.Patch); diff != "" {
					t.Errorf("patch (-want +got):\n%s", diff)
				}
			}
		})
	}
}
