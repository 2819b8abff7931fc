package oracle

import (
	"fmt"
	"slices"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// workload is a workload of any kind, as the global rules see it.
type workload struct {
	Kind, Name string
	UID        types.UID
	Template   *corev1.PodTemplateSpec
	// Desired pods: spec.replicas (Scalable), or a DaemonSet's
	// desiredNumberScheduled, or a Job's completions.
	Desired  int32
	Scalable bool
	// Suspended: a CronJob that schedules nothing.
	Suspended bool
	// Unsettled says why its rollout or run is not complete (G3); "" when
	// it is.
	Unsettled string
	// Failed says why it failed (a Job, a CronJob's latest Job), for G2.
	Failed string
}

func (w workload) ref() string { return w.Kind + "/" + w.Name }

const revisionAnnotation = "deployment.kubernetes.io/revision"

// workloads lists every workload of the state: Deployments, StatefulSets,
// DaemonSets, ReplicaSets and Jobs that no other workload owns, and
// CronJobs.
func (s *State) workloads() []workload {
	var out []workload
	for i := range s.Deployments {
		d := &s.Deployments[i]
		want, st := replicas(d.Spec.Replicas), d.Status
		w := workload{Kind: "Deployment", Name: d.Name, UID: d.UID, Template: &d.Spec.Template, Desired: want, Scalable: true}
		if st.ObservedGeneration < d.Generation || st.UpdatedReplicas != want || st.ReadyReplicas != want ||
			st.AvailableReplicas != want || st.Replicas != want {
			w.Unsettled = fmt.Sprintf("%d desired, %d current, %d updated, %d ready, %d available (generation %d, observed %d)",
				want, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, d.Generation, st.ObservedGeneration)
		}
		out = append(out, w)
	}
	for i := range s.StatefulSets {
		ss := &s.StatefulSets[i]
		want, st := replicas(ss.Spec.Replicas), ss.Status
		w := workload{Kind: "StatefulSet", Name: ss.Name, UID: ss.UID, Template: &ss.Spec.Template, Desired: want, Scalable: true}
		if st.ObservedGeneration < ss.Generation || st.Replicas != want || st.ReadyReplicas != want || st.UpdatedReplicas != want ||
			st.AvailableReplicas != want || (st.UpdateRevision != "" && st.CurrentRevision != st.UpdateRevision) {
			w.Unsettled = fmt.Sprintf("%d desired, %d current, %d updated, %d ready, %d available, revision %s of %s (generation %d, observed %d)",
				want, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas, st.AvailableReplicas, st.CurrentRevision, st.UpdateRevision, ss.Generation, st.ObservedGeneration)
		}
		out = append(out, w)
	}
	for i := range s.DaemonSets {
		ds := &s.DaemonSets[i]
		st := ds.Status
		w := workload{Kind: "DaemonSet", Name: ds.Name, UID: ds.UID, Template: &ds.Spec.Template, Desired: st.DesiredNumberScheduled}
		if st.ObservedGeneration < ds.Generation || st.CurrentNumberScheduled != st.DesiredNumberScheduled || st.NumberReady != st.DesiredNumberScheduled ||
			st.UpdatedNumberScheduled != st.DesiredNumberScheduled || st.NumberAvailable != st.DesiredNumberScheduled || st.NumberMisscheduled != 0 {
			w.Unsettled = fmt.Sprintf("%d desired, %d scheduled, %d updated, %d ready, %d available, %d misscheduled (generation %d, observed %d)",
				st.DesiredNumberScheduled, st.CurrentNumberScheduled, st.UpdatedNumberScheduled, st.NumberReady, st.NumberAvailable, st.NumberMisscheduled, ds.Generation, st.ObservedGeneration)
		}
		out = append(out, w)
	}
	for i := range s.ReplicaSets {
		rs := &s.ReplicaSets[i]
		if metav1.GetControllerOf(rs) != nil {
			continue
		}
		want, st := replicas(rs.Spec.Replicas), rs.Status
		w := workload{Kind: "ReplicaSet", Name: rs.Name, UID: rs.UID, Template: &rs.Spec.Template, Desired: want, Scalable: true}
		if st.ObservedGeneration < rs.Generation || st.Replicas != want || st.ReadyReplicas != want || st.AvailableReplicas != want {
			w.Unsettled = fmt.Sprintf("%d desired, %d current, %d ready, %d available", want, st.Replicas, st.ReadyReplicas, st.AvailableReplicas)
		}
		out = append(out, w)
	}
	for i := range s.Jobs {
		j := &s.Jobs[i]
		if metav1.GetControllerOf(j) != nil {
			continue
		}
		w := workload{Kind: "Job", Name: j.Name, UID: j.UID, Template: &j.Spec.Template, Desired: replicas(j.Spec.Completions)}
		switch {
		case jobCondition(j, batchv1.JobFailed):
			w.Failed = "failed: " + jobMessage(j, batchv1.JobFailed)
		case !jobCondition(j, batchv1.JobComplete):
			w.Unsettled = fmt.Sprintf("not complete: %d active, %d succeeded, %d failed", j.Status.Active, j.Status.Succeeded, j.Status.Failed)
		}
		out = append(out, w)
	}
	for i := range s.CronJobs {
		cj := &s.CronJobs[i]
		w := workload{Kind: "CronJob", Name: cj.Name, UID: cj.UID, Template: &cj.Spec.JobTemplate.Spec.Template,
			Suspended: cj.Spec.Suspend != nil && *cj.Spec.Suspend}
		if j := s.latestJob(cj); j != nil && jobCondition(j, batchv1.JobFailed) {
			w.Failed = "its latest Job " + j.Name + " failed: " + jobMessage(j, batchv1.JobFailed)
		}
		out = append(out, w)
	}
	return out
}

func (s *State) workload(kind, name string) *workload {
	for _, w := range s.workloads() {
		if w.Kind == kind && w.Name == name {
			return &w
		}
	}
	return nil
}

// latestJob is the most recently created Job a CronJob owns.
func (s *State) latestJob(cj *batchv1.CronJob) *batchv1.Job {
	var latest *batchv1.Job
	for i := range s.Jobs {
		j := &s.Jobs[i]
		if o := metav1.GetControllerOf(j); o == nil || o.UID != cj.UID {
			continue
		}
		if latest == nil || j.CreationTimestamp.After(latest.CreationTimestamp.Time) ||
			(j.CreationTimestamp.Equal(&latest.CreationTimestamp) && j.Name > latest.Name) {
			latest = j
		}
	}
	return latest
}

func jobCondition(j *batchv1.Job, t batchv1.JobConditionType) bool {
	return slices.ContainsFunc(j.Status.Conditions, func(c batchv1.JobCondition) bool { return c.Type == t && c.Status == corev1.ConditionTrue })
}

func jobMessage(j *batchv1.Job, t batchv1.JobConditionType) string {
	for _, c := range j.Status.Conditions {
		if c.Type == t {
			return c.Reason + " " + c.Message
		}
	}
	return ""
}

// owner is the top-level workload that controls a pod: a Deployment for the
// pods of its ReplicaSets, a CronJob for those of its Jobs.
func (s *State) owner(p *corev1.Pod) (kind, name string, uid types.UID) {
	o := metav1.GetControllerOf(p)
	if o == nil {
		return "", "", ""
	}
	switch o.Kind {
	case "ReplicaSet":
		for i := range s.ReplicaSets {
			if rs := &s.ReplicaSets[i]; rs.UID == o.UID {
				if ro := metav1.GetControllerOf(rs); ro != nil && ro.Kind == "Deployment" {
					return ro.Kind, ro.Name, ro.UID
				}
			}
		}
	case "Job":
		for i := range s.Jobs {
			if j := &s.Jobs[i]; j.UID == o.UID {
				if jo := metav1.GetControllerOf(j); jo != nil && jo.Kind == "CronJob" {
					return jo.Kind, jo.Name, jo.UID
				}
			}
		}
	}
	return o.Kind, o.Name, o.UID
}

// jobPod reports whether a Job (or a CronJob's Job) runs the pod.
func (s *State) jobPod(p *corev1.Pod) bool {
	o := metav1.GetControllerOf(p)
	return o != nil && o.Kind == "Job"
}

// currentPods are the live pods of a workload's current template.
func (s *State) currentPods(w *workload) []corev1.Pod {
	var current func(*corev1.Pod) bool
	switch w.Kind {
	case "Deployment":
		var d *appsv1.Deployment
		for i := range s.Deployments {
			if s.Deployments[i].UID == w.UID {
				d = &s.Deployments[i]
			}
		}
		var rsUID types.UID
		for i := range s.ReplicaSets {
			rs := &s.ReplicaSets[i]
			if o := metav1.GetControllerOf(rs); o != nil && o.UID == w.UID && d != nil && rs.Annotations[revisionAnnotation] == d.Annotations[revisionAnnotation] {
				rsUID = rs.UID
			}
		}
		current = func(p *corev1.Pod) bool {
			o := metav1.GetControllerOf(p)
			return o != nil && rsUID != "" && o.UID == rsUID
		}
	case "StatefulSet":
		rev := ""
		for i := range s.StatefulSets {
			if s.StatefulSets[i].UID == w.UID {
				rev = s.StatefulSets[i].Status.UpdateRevision
			}
		}
		current = func(p *corev1.Pod) bool {
			o := metav1.GetControllerOf(p)
			return o != nil && o.UID == w.UID && (rev == "" || p.Labels[appsv1.ControllerRevisionHashLabelKey] == rev)
		}
	case "DaemonSet":
		hash, newest := "", int64(-1)
		for i := range s.ControllerRevisions {
			cr := &s.ControllerRevisions[i]
			if o := metav1.GetControllerOf(cr); o != nil && o.UID == w.UID && cr.Revision > newest {
				newest, hash = cr.Revision, cr.Labels[appsv1.ControllerRevisionHashLabelKey]
			}
		}
		current = func(p *corev1.Pod) bool {
			o := metav1.GetControllerOf(p)
			return o != nil && o.UID == w.UID && (hash == "" || p.Labels[appsv1.ControllerRevisionHashLabelKey] == hash)
		}
	default:
		current = func(p *corev1.Pod) bool { o := metav1.GetControllerOf(p); return o != nil && o.UID == w.UID }
	}
	var out []corev1.Pod
	for _, p := range s.LivePods() {
		if current(&p) {
			out = append(out, p)
		}
	}
	return out
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
