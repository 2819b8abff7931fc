package agents

import (
	"fmt"
	"slices"

	"github.com/tendops/tend/bus"
)

// Facts the runbooks share, read from typed fields only. Reasons are the
// kubelet's and the scheduler's machine-readable codes; a reason that is not
// a short code is treated as unknown, and message text is never read.

// failingWaitingReasons are the waiting reasons of a container that cannot
// start without a change to its spec or its environment.
var failingWaitingReasons = []string{
	"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull",
	"CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PreStartHookError", "PostStartHookError",
}

// failingTerminatedReasons are the termination reasons of a container that
// failed.
var failingTerminatedReasons = []string{"OOMKilled", "Error", "StartError", "ContainerCannotRun", "DeadlineExceeded"}

// pullReasons are the waiting reasons of an image that cannot be pulled.
var pullReasons = []string{"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}

// minRestarts is the restart count from which a container that is not
// ready counts as crash-looping even without a CrashLoopBackOff reason.
const minRestarts = 3

// podFailure reports whether a pod is failing, with a short account built
// from codes and numbers only: a container (or init container) that
// cannot start or keeps failing, or a pod the scheduler cannot place.
func podFailure(st *bus.PodState) (string, bool) {
	if st == nil {
		return "", false
	}
	if c := scheduled(st); c != nil && c.Status == "False" && reasonCode(c.Reason) == "Unschedulable" {
		return "unschedulable", true
	}
	for _, list := range []struct {
		kind string
		cs   []bus.ContainerState
	}{{"init container", st.InitContainers}, {"container", st.Containers}} {
		for _, c := range list.cs {
			if d, ok := containerFailure(c, list.kind == "init container"); ok {
				return fmt.Sprintf("%s %s %s", list.kind, textName(c.Name), d), true
			}
		}
	}
	return "", false
}

// containerFailure is a container's failure, if it is failing.
func containerFailure(c bus.ContainerState, init bool) (string, bool) {
	if c.Ready || (init && c.State == bus.ContainerTerminated && c.Reason == "Completed") {
		return "", false
	}
	reason := reasonCode(c.Reason)
	failing := false
	switch c.State {
	case bus.ContainerWaiting:
		failing = slices.Contains(failingWaitingReasons, reason)
	case bus.ContainerTerminated:
		failing = slices.Contains(failingTerminatedReasons, reason)
	}
	if !failing && c.RestartCount >= minRestarts {
		failing = true
	}
	if !failing {
		return "", false
	}
	detail := fmt.Sprintf("%s, %d restarts", orDefault(reason, orDefault(c.State, "not started")), c.RestartCount)
	if c.LastTerminationReason != "" {
		detail += fmt.Sprintf(", last exit %d", c.LastExitCode)
		if code := reasonCode(c.LastTerminationReason); code != "" {
			detail += " (" + code + ")"
		}
	}
	return detail, true
}

// scheduled returns the pod's PodScheduled condition, nil if absent.
func scheduled(st *bus.PodState) *bus.Condition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == "PodScheduled" {
			return &st.Conditions[i]
		}
	}
	return nil
}

// oomKilled reports whether a container's last run ended OOMKilled.
func oomKilled(c bus.ContainerState) bool {
	return c.LastTerminationReason == "OOMKilled" || (c.State == bus.ContainerTerminated && c.Reason == "OOMKilled")
}

// pullFailure reports whether a container waits on an image it cannot pull.
func pullFailure(c bus.ContainerState) bool {
	return c.State == bus.ContainerWaiting && slices.Contains(pullReasons, c.Reason)
}

// nodePressure returns the first pressure condition a node reports
// (MemoryPressure, DiskPressure, PIDPressure), "" if none.
func nodePressure(st *bus.NodeState) string {
	for _, c := range st.Conditions {
		switch c.Type {
		case "MemoryPressure", "DiskPressure", "PIDPressure":
			if c.Status == "True" {
				return c.Type
			}
		}
	}
	return ""
}

// condition returns the condition of type t, nil if absent.
func condition(conds []bus.Condition, t string) *bus.Condition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// reasonCode returns s if it is a short machine-readable reason such as
// CrashLoopBackOff or OOMKilled, and "" for anything else: free text in a
// reason field is never copied into a proposal.
func reasonCode(s string) string {
	if len(s) == 0 || len(s) > 64 {
		return ""
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return ""
		}
	}
	return s
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
