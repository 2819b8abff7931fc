package usage

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// ErrUnsupportedKind is returned for a workload kind whose pods cannot be
// told from their names.
var ErrUnsupportedKind = errors.New("usage: unsupported workload kind")

// Sample is one container's usage at one time.
type Sample struct {
	Time          time.Time
	CPUMillicores int64
	MemoryBytes   int64
}

// Source reads the usage history of one namespace.
type Source interface {
	// Name says where the history comes from, for the evidence.
	Name() string
	// History returns the samples of every container of every pod in
	// namespace taken in [from, to].
	History(ctx context.Context, namespace string, from, to time.Time) (*History, error)
}

// History is the samples of a namespace's pods, by pod and container. It
// is not safe for concurrent use.
type History struct {
	pods map[string]map[string][]Sample
	// byPrefix indexes pods by their names less one and less two
	// "-"-separated suffixes, the names a workload's pods start with.
	byPrefix map[string][]string
}

// NewHistory returns an empty history.
func NewHistory() *History { return &History{pods: map[string]map[string][]Sample{}} }

// Add records one sample of a pod's container.
func (h *History) Add(pod, container string, s Sample) {
	c := h.pods[pod]
	if c == nil {
		c = map[string][]Sample{}
		h.pods[pod] = c
		h.byPrefix = nil
	}
	c[container] = append(c[container], s)
}

// Pods returns the pods the history has samples of, sorted.
func (h *History) Pods() []string {
	out := make([]string, 0, len(h.pods))
	for p := range h.pods {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Workload returns the samples of container in every pod of the workload
// kind/name, in time order. Pods are told by name, as the workload
// controllers name them: a Deployment's <name>-<template hash>-<suffix>, a
// StatefulSet's <name>-<ordinal>, a DaemonSet's <name>-<suffix>.
func (h *History) Workload(kind, name, container string) ([]Sample, error) {
	re, err := podPattern(kind, name)
	if err != nil {
		return nil, err
	}
	if h.byPrefix == nil {
		h.index()
	}
	var out []Sample
	for _, pod := range h.byPrefix[name] {
		if re.MatchString(pod) {
			out = append(out, h.pods[pod][container]...)
		}
	}
	slices.SortFunc(out, func(a, b Sample) int { return a.Time.Compare(b.Time) })
	return out, nil
}

func podPattern(kind, name string) (*regexp.Regexp, error) {
	q := regexp.QuoteMeta(name)
	switch kind {
	case "Deployment", "":
		return regexp.MustCompile("^" + q + "-[a-z0-9]{1,10}-[a-z0-9]{5}$"), nil
	case "StatefulSet":
		return regexp.MustCompile("^" + q + "-[0-9]+$"), nil
	case "DaemonSet":
		return regexp.MustCompile("^" + q + "-[a-z0-9]{5}$"), nil
	}
	return nil, ErrUnsupportedKind
}

func (h *History) index() {
	h.byPrefix = map[string][]string{}
	for pod := range h.pods {
		p := pod
		for range 2 {
			i := strings.LastIndexByte(p, '-')
			if i <= 0 {
				break
			}
			p = p[:i]
			h.byPrefix[p] = append(h.byPrefix[p], pod)
		}
	}
}
