package critest

import (
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet's labels and annotation on pods and containers.
const (
	LabelPodName       = "io.kubernetes.pod.name"
	LabelPodNamespace  = "io.kubernetes.pod.namespace"
	LabelPodUID        = "io.kubernetes.pod.uid"
	LabelContainerName = "io.kubernetes.container.name"
	annotationRestarts = "io.kubernetes.container.restartCount"
)

// Pod is a pod sandbox on the host network, created as the kubelet would.
type Pod struct {
	Namespace, Name, UID string
	SandboxID            string
	// Env is the environment of the containers Start starts from now on.
	Env    map[string]string
	config *runtimeapi.PodSandboxConfig
	c      *Containerd
}

// RunPod runs a pod sandbox.
func (c *Containerd) RunPod(namespace, name string) *Pod {
	c.t.Helper()
	return c.RunPodUID(namespace, name, randomHex(16))
}

// RunPodUID runs a pod sandbox for the pod of that UID, as the kubelet does
// for a pod the API server holds.
func (c *Containerd) RunPodUID(namespace, name, uid string) *Pod {
	c.t.Helper()
	labels := map[string]string{LabelPodName: name, LabelPodNamespace: namespace, LabelPodUID: uid}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: namespace, Uid: uid},
		LogDirectory: filepath.Join(c.LogRoot, namespace+"_"+name+"_"+uid),
		Labels:       labels,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE},
			},
		},
	}
	ctx, cancel := c.ctx()
	defer cancel()
	id, err := c.Runtime.RunPodSandbox(ctx, cfg, "")
	if err != nil {
		c.t.Fatalf("failed to run pod %s/%s: %v\n%s", namespace, name, err, c.Log())
	}
	return &Pod{Namespace: namespace, Name: name, UID: uid, SandboxID: id, config: cfg, c: c}
}

// Start creates and starts a container of the pod from image, with the
// image's command, as attempt attempt of that container (the kubelet's
// restart count), and returns its ID.
func (p *Pod) Start(name, image string, attempt uint32) string {
	c := p.c
	c.t.Helper()
	cfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: name, Attempt: attempt},
		Image:    &runtimeapi.ImageSpec{Image: image},
		LogPath:  filepath.Join(name, strconv.Itoa(int(attempt))+".log"),
		Labels: map[string]string{
			LabelPodName: p.Name, LabelPodNamespace: p.Namespace, LabelPodUID: p.UID, LabelContainerName: name,
		},
		Annotations: map[string]string{annotationRestarts: strconv.Itoa(int(attempt))},
		Linux: &runtimeapi.LinuxContainerConfig{
			SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER},
			},
		},
	}
	for k, v := range p.Env {
		cfg.Envs = append(cfg.Envs, &runtimeapi.KeyValue{Key: k, Value: []byte(v)})
	}
	ctx, cancel := c.ctx()
	defer cancel()
	id, err := c.Runtime.CreateContainer(ctx, p.SandboxID, cfg, p.config)
	if err != nil {
		c.t.Fatalf("failed to create container %s of pod %s/%s: %v", name, p.Namespace, p.Name, err)
	}
	if err := c.Runtime.StartContainer(ctx, id); err != nil {
		c.t.Fatalf("failed to start container %s of pod %s/%s: %v", name, p.Namespace, p.Name, err)
	}
	return id
}

// Containers returns the pod's containers of that name, newest first.
func (p *Pod) Containers(name string) []*runtimeapi.Container {
	var found []*runtimeapi.Container
	for _, ct := range p.c.ListContainers() {
		l := ct.GetLabels()
		if l[LabelPodUID] == p.UID && l[LabelContainerName] == name {
			found = append(found, ct)
		}
	}
	for i := 1; i < len(found); i++ {
		for j := i; j > 0 && found[j].GetCreatedAt() > found[j-1].GetCreatedAt(); j-- {
			found[j], found[j-1] = found[j-1], found[j]
		}
	}
	return found
}

// Restart plays the kubelet after a container exited: it starts the next
// attempt of the pod's container name. It fails the test if the newest
// container of that name is still running.
func (p *Pod) Restart(name string) string {
	p.c.t.Helper()
	cs := p.Containers(name)
	if len(cs) == 0 {
		p.c.t.Fatalf("pod %s/%s has no container %s", p.Namespace, p.Name, name)
	}
	if cs[0].GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
		p.c.t.Fatalf("container %s of pod %s/%s is still running", name, p.Namespace, p.Name)
	}
	return p.Start(name, cs[0].GetImage().GetImage(), cs[0].GetMetadata().GetAttempt()+1)
}

// WaitExited waits until a container has exited (for a test, not a handler).
func (c *Containerd) WaitExited(id string, timeout time.Duration) *runtimeapi.ContainerStatus {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := c.ContainerStatus(id)
		if st.GetState() == runtimeapi.ContainerState_CONTAINER_EXITED {
			return st
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("container %s did not exit in %s (%s)", id, timeout, st.GetState())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// String names the pod.
func (p *Pod) String() string { return fmt.Sprintf("%s/%s", p.Namespace, p.Name) }
