package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tendops/tend/bus"
)

// Bounds of what CollectDiagnostics keeps per container.
const (
	maxLogBytes  = 256 << 10
	maxInfoBytes = 64 << 10
	// perName is how many containers of one name are kept: the current one
	// and the one before it, as `kubectl logs --previous` shows.
	perName = 2
	// maxDiagnosed bounds the containers in one diagnostics object.
	maxDiagnosed = 16
)

// diagnosticsAction stores a pod's container inspect output, stats and log
// tails in the diagnostics object store, or for the node (no pod) every
// container's state and usage and the node's images. It only reads the
// node; the plan is the object's name, derived from the attempt, so a
// retry writes that object at most once.
type diagnosticsAction struct {
	s       *Shim
	p       *bus.CollectDiagnosticsParams
	attempt string
}

func (a diagnosticsAction) plan(ctx context.Context) (*attemptPlan, *bus.ShimError) {
	cs, err := a.containers(ctx)
	if err != nil {
		return nil, failure(err)
	}
	if len(cs) == 0 && !a.node() {
		what := "pod " + a.p.Namespace + "/" + a.p.Pod
		if a.p.Container != "" {
			what = "container " + a.p.Container + " of " + what
		}
		return nil, shimErr(bus.ShimNotFound, "no %s on node %s", what, a.s.opts.Node)
	}
	return &attemptPlan{Object: bus.DiagnosticsObject(a.s.opts.Cluster, a.s.opts.Node, a.attempt)}, nil
}

// node reports whether the diagnostics are the node's rather than a pod's.
func (a diagnosticsAction) node() bool { return a.p.Pod == "" }

// containers lists the pod's containers on this node, newest first, at
// most perName of each name; for the node, every container, newest first.
func (a diagnosticsAction) containers(ctx context.Context) ([]*runtimeapi.Container, error) {
	all, err := a.s.rt.ListContainers(ctx)
	if err != nil {
		return nil, err
	}
	if a.node() {
		newestFirst(all)
		return all[:min(len(all), bus.MaxNodeContainers)], nil
	}
	var cs []*runtimeapi.Container
	for _, c := range all {
		if ofPod(c, a.p.Namespace, a.p.Pod, a.p.PodUID, a.p.Container) {
			cs = append(cs, c)
		}
	}
	newestFirst(cs)
	seen := map[string]int{}
	kept := cs[:0]
	for _, c := range cs {
		name := c.GetLabels()[labelContainerName]
		if seen[name] < perName && len(kept) < maxDiagnosed {
			kept = append(kept, c)
		}
		seen[name]++
	}
	return kept, nil
}

func (a diagnosticsAction) execute(ctx context.Context, p *attemptPlan, resumed bool) (*bus.ShimReply, error) {
	obs, err := a.s.objectStore(ctx)
	if err != nil {
		return nil, err
	}
	if resumed {
		// An earlier try may have stored it already.
		info, err := obs.GetInfo(ctx, p.Object)
		switch {
		case err == nil && !info.Deleted:
			return a.reply(info), nil
		case err != nil && !errors.Is(err, jetstream.ErrObjectNotFound):
			return nil, fmt.Errorf("%w: failed to look up %s: %w", errStore, p.Object, err)
		}
	}
	doc, err := a.collect(ctx)
	if err != nil {
		return nil, err
	}
	data, err := bus.EncodeDiagnostics(doc)
	if err != nil {
		return nil, err
	}
	info, err := obs.Put(ctx, jetstream.ObjectMeta{
		Name:        p.Object,
		Description: a.description(),
		Metadata:    map[string]string{"containers": strconv.Itoa(len(doc.Containers))},
	}, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: failed to store %s: %w", errStore, p.Object, err)
	}
	if err := a.s.step("stored"); err != nil {
		return nil, err
	}
	return a.reply(info), nil
}

func (a diagnosticsAction) description() string {
	if a.node() {
		return "diagnostics of node " + a.s.opts.Node
	}
	return fmt.Sprintf("diagnostics of pod %s/%s on node %s", a.p.Namespace, a.p.Pod, a.s.opts.Node)
}

func (a diagnosticsAction) reply(info *jetstream.ObjectInfo) *bus.ShimReply {
	n, _ := strconv.Atoi(info.Metadata["containers"])
	return &bus.ShimReply{CollectDiagnostics: &bus.CollectDiagnosticsResult{
		Bucket: info.Bucket, Object: info.Name, Size: int64(info.Size), Digest: info.Digest, Containers: n,
	}}
}

// collect reads what the diagnostics hold.
func (a diagnosticsAction) collect(ctx context.Context) (*bus.Diagnostics, error) {
	cs, err := a.containers(ctx)
	if err != nil {
		return nil, err
	}
	doc := &bus.Diagnostics{
		Cluster: a.s.opts.Cluster, Node: a.s.opts.Node, AttemptID: a.attempt, CollectedAt: a.s.opts.Now().UTC(),
		Namespace: a.p.Namespace, Pod: a.p.Pod, PodUID: a.p.PodUID, Containers: []bus.ContainerDiagnostics{},
	}
	if fs, err := a.s.imageFS(ctx); err == nil {
		doc.ImageFS = fs
	}
	if a.node() {
		return a.collectNode(ctx, cs, doc)
	}
	tail := int(a.p.TailLines)
	if tail == 0 {
		tail = bus.DefaultTailLines
	}
	for _, c := range cs {
		st, err := a.s.rt.ContainerStatus(ctx, c.GetId(), true)
		if errors.Is(err, ErrNotFound) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, err
		}
		d := bus.ContainerDiagnostics{Container: runtimeContainer(c, st.GetStatus()), LogPath: st.GetStatus().GetLogPath()}
		if info, ok := st.GetInfo()["info"]; ok {
			d.Info = clipText(redactEnv(info), maxInfoBytes)
		}
		if stats, err := a.s.rt.ContainerStats(ctx, c.GetId()); err == nil {
			d.Usage = containerUsage(d.Container, stats)
		}
		d.Log, d.LogTruncated, err = a.s.tailLog(d.LogPath, tail)
		if err != nil {
			d.LogError = clipText(err.Error(), maxText)
		}
		doc.Containers = append(doc.Containers, d)
	}
	return doc, nil
}

// tailLog returns the last lines of a container log, at most maxLogBytes.
// It reads only files under the pod log root.
func (s *Shim) tailLog(logPath string, lines int) (string, bool, error) {
	if logPath == "" {
		return "", false, errors.New("the runtime reports no log path")
	}
	clean := filepath.Clean(logPath)
	root := filepath.Clean(s.opts.PodLogRoot)
	if !filepath.IsAbs(clean) || !strings.HasPrefix(clean, root+string(filepath.Separator)) {
		return "", false, fmt.Errorf("log %s is outside the pod log root %s", logPath, root)
	}
	// No symbolic link may lead out of the log root.
	realRoot, err := filepath.EvalSymlinks(filepath.Join(s.opts.HostRoot, root))
	if err != nil {
		return "", false, fmt.Errorf("failed to resolve the pod log root: %w", err)
	}
	path, err := filepath.EvalSymlinks(filepath.Join(s.opts.HostRoot, clean))
	if err != nil {
		return "", false, fmt.Errorf("failed to resolve log %s: %w", logPath, err)
	}
	if !strings.HasPrefix(path, realRoot+string(filepath.Separator)) {
		return "", false, fmt.Errorf("log %s leads outside the pod log root %s", logPath, root)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", false, fmt.Errorf("failed to open log %s: %w", logPath, err)
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return "", false, fmt.Errorf("failed to read log %s: %w", logPath, err)
	}
	start := max(end-maxLogBytes, 0)
	buf := make([]byte, end-start)
	if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
		return "", false, fmt.Errorf("failed to read log %s: %w", logPath, err)
	}
	truncated := start > 0
	if truncated {
		// Drop the partial first line.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	text := strings.TrimSuffix(string(buf), "\n")
	if text == "" {
		return "", truncated, nil
	}
	all := strings.Split(text, "\n")
	if len(all) > lines {
		all, truncated = all[len(all)-lines:], true
	}
	return strings.ToValidUTF8(strings.Join(all, "\n")+"\n", "\uFFFD"), truncated, nil
}

// redacted replaces what diagnostics must not carry.
const redacted = "<redacted>"

// redactEnv removes environment values from a runtime's verbose inspect
// output, which may hold Secrets the kubelet passed as environment: the
// values of containerd's "envs" ({"key", "value"} objects) and of OCI
// "env" lists ("NAME=value"), wherever they are. Names stay. Output that is
// not JSON is dropped whole rather than kept unredacted.
func redactEnv(info string) string {
	// The runtime's own format, not a shape tend knows: walk it generically.
	var v any
	if err := json.Unmarshal([]byte(info), &v); err != nil {
		return ""
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(redactValue("", v)); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

func redactValue(key string, v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			v[k] = redactValue(k, child)
		}
		if key == "envs" {
			if _, ok := v["value"]; ok {
				v["value"] = redacted
			}
		}
		return v
	case []any:
		for i, child := range v {
			if s, ok := child.(string); ok && key == "env" {
				name, _, _ := strings.Cut(s, "=")
				v[i] = name + "=" + redacted
				continue
			}
			v[i] = redactValue(key, child)
		}
		return v
	}
	return v
}

// collectNode fills in a node's diagnostics: every container's state and
// usage, and the images.
func (a diagnosticsAction) collectNode(ctx context.Context, cs []*runtimeapi.Container, doc *bus.Diagnostics) (*bus.Diagnostics, error) {
	stats, err := a.s.rt.ListContainerStats(ctx)
	if err != nil {
		return nil, err
	}
	usage := make(map[string]*runtimeapi.ContainerStats, len(stats))
	for _, st := range stats {
		usage[st.GetAttributes().GetId()] = st
	}
	for _, c := range cs {
		st, err := a.s.rt.ContainerStatus(ctx, c.GetId(), false)
		if errors.Is(err, ErrNotFound) {
			continue // removed since it was listed
		}
		if err != nil {
			return nil, err
		}
		d := bus.ContainerDiagnostics{Container: runtimeContainer(c, st.GetStatus()), LogPath: st.GetStatus().GetLogPath()}
		if u, ok := usage[c.GetId()]; ok {
			d.Usage = containerUsage(d.Container, u)
		}
		doc.Containers = append(doc.Containers, d)
	}
	images, err := a.s.nodeImages(ctx)
	if err != nil {
		return nil, err
	}
	doc.Images = images[:min(len(images), bus.MaxNodeImages)]
	return doc, nil
}

// containerUsage is the usage in one container's stats.
func containerUsage(c bus.RuntimeContainer, st *runtimeapi.ContainerStats) *bus.RuntimeContainerUsage {
	return &bus.RuntimeContainerUsage{
		ID: c.ID, Namespace: c.Namespace, Pod: c.Pod, Name: c.Name,
		CPUCoreNanoseconds:    int64(st.GetCpu().GetUsageCoreNanoSeconds().GetValue()),
		MemoryWorkingSetBytes: int64(st.GetMemory().GetWorkingSetBytes().GetValue()),
		WritableLayerBytes:    int64(st.GetWritableLayer().GetUsedBytes().GetValue()),
	}
}
