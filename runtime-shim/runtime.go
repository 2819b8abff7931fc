package shim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	remote "k8s.io/cri-client/pkg"
)

// Runtime is what the shim needs from the node's container runtime.
type Runtime interface {
	ListContainers(ctx context.Context) ([]*runtimeapi.Container, error)
	ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error)
	ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error)
	ListContainerStats(ctx context.Context) ([]*runtimeapi.ContainerStats, error)
	// StopContainer stops a container, giving it gracePeriod seconds
	// before it is killed.
	StopContainer(ctx context.Context, id string, gracePeriod int64) error
	ListImages(ctx context.Context) ([]*runtimeapi.Image, error)
	ImageStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ImageStatusResponse, error)
	RemoveImage(ctx context.Context, id string) error
	ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error)
	// Status returns the runtime's status, with its configuration when
	// verbose is set.
	Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error)
}

// Errors of a Runtime, wrapped by what its methods return.
var (
	// ErrRuntimeUnavailable: the runtime's socket is missing, or the runtime
	// did not answer in time.
	ErrRuntimeUnavailable = errors.New("shim: container runtime unavailable")
	// ErrNotFound: the runtime has no such container or image.
	ErrNotFound = errors.New("shim: not found")
)

// CRI is the Runtime of a CRI endpoint, through k8s.io/cri-client. It
// connects on first use and again after a failed connection, so a shim
// started before its runtime, or outliving a runtime restart, keeps working.
type CRI struct {
	endpoint string
	timeout  time.Duration

	mu  sync.Mutex
	rt  internalapi.RuntimeService
	img internalapi.ImageManagerService
}

var _ Runtime = (*CRI)(nil)

// NewCRI returns the Runtime of the CRI endpoint ("unix:///run/containerd/containerd.sock").
// timeout bounds each call (a stop adds its grace period).
func NewCRI(endpoint string, timeout time.Duration) *CRI {
	return &CRI{endpoint: endpoint, timeout: timeout}
}

// services returns the connected runtime and image services, connecting
// first if needed.
func (c *CRI) services(ctx context.Context) (internalapi.RuntimeService, internalapi.ImageManagerService, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rt != nil {
		return c.rt, c.img, nil
	}
	// A nil tracer provider installs no tracing at all.
	rt, err := remote.NewRemoteRuntimeServiceBuilder().WithEndpoint(c.endpoint).
		WithConnectionTimeout(c.timeout).WithTracerProvider(nil).Build(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: failed to connect to %s: %w", ErrRuntimeUnavailable, c.endpoint, err)
	}
	img, err := remote.NewRemoteImageServiceBuilder().WithEndpoint(c.endpoint).
		WithConnectionTimeout(c.timeout).WithTracerProvider(nil).Build(ctx)
	if err != nil {
		_ = rt.Close(ctx)
		return nil, nil, fmt.Errorf("%w: failed to connect to the image service at %s: %w", ErrRuntimeUnavailable, c.endpoint, err)
	}
	c.rt, c.img = rt, img
	return rt, img, nil
}

// Close closes the connections.
func (c *CRI) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rt == nil {
		return nil
	}
	err := errors.Join(c.rt.Close(ctx), c.img.Close(ctx))
	c.rt, c.img = nil, nil
	if err != nil {
		return fmt.Errorf("failed to close the CRI connections: %w", err)
	}
	return nil
}

// classify wraps a CRI error with ErrNotFound or ErrRuntimeUnavailable where
// it is one.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	switch status.Code(err) {
	case codes.NotFound:
		return fmt.Errorf("%w: %s: %w", ErrNotFound, op, err)
	case codes.Unavailable:
		return fmt.Errorf("%w: %s: %w", ErrRuntimeUnavailable, op, err)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s: no answer in time: %w", ErrRuntimeUnavailable, op, err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s: no answer in time: %w", ErrRuntimeUnavailable, op, err)
	}
	return fmt.Errorf("failed to %s: %w", op, err)
}

// ListContainers lists every container of the runtime.
func (c *CRI) ListContainers(ctx context.Context) ([]*runtimeapi.Container, error) {
	rt, _, err := c.services(ctx)
	if err != nil {
		return nil, err
	}
	cs, err := rt.ListContainers(ctx, &runtimeapi.ContainerFilter{})
	return cs, classify("list containers", err)
}

// ContainerStatus returns a container's status, with the runtime's
// verbose information when verbose is set.
func (c *CRI) ContainerStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ContainerStatusResponse, error) {
	rt, _, err := c.services(ctx)
	if err != nil {
		return nil, err
	}
	st, err := rt.ContainerStatus(ctx, id, verbose)
	return st, classify("read the status of container "+id, err)
}

// ContainerStats returns a container's stats.
func (c *CRI) ContainerStats(ctx context.Context, id string) (*runtimeapi.ContainerStats, error) {
	rt, _, err := c.services(ctx)
	if err != nil {
		return nil, err
	}
	st, err := rt.ContainerStats(ctx, id)
	return st, classify("read the stats of container "+id, err)
}

// ListContainerStats returns the stats of every container.
func (c *CRI) ListContainerStats(ctx context.Context) ([]*runtimeapi.ContainerStats, error) {
	rt, _, err := c.services(ctx)
	if err != nil {
		return nil, err
	}
	st, err := rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
	return st, classify("list container stats", err)
}

// StopContainer stops a container.
func (c *CRI) StopContainer(ctx context.Context, id string, gracePeriod int64) error {
	rt, _, err := c.services(ctx)
	if err != nil {
		return err
	}
	return classify("stop container "+id, rt.StopContainer(ctx, id, gracePeriod))
}

// ListImages lists the runtime's images.
func (c *CRI) ListImages(ctx context.Context) ([]*runtimeapi.Image, error) {
	_, img, err := c.services(ctx)
	if err != nil {
		return nil, err
	}
	imgs, err := img.ListImages(ctx, &runtimeapi.ImageFilter{})
	return imgs, classify("list images", err)
}

// ImageStatus returns an image's status; a nil image in the response means
// the runtime has no such image.
func (c *CRI) ImageStatus(ctx context.Context, id string, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	_, img, err := c.services(ctx)
	if err != nil {
		return nil, err
	}
	st, err := img.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: id}, verbose)
	return st, classify("read the status of image "+id, err)
}

// RemoveImage removes an image by ID, with all its tags.
func (c *CRI) RemoveImage(ctx context.Context, id string) error {
	_, img, err := c.services(ctx)
	if err != nil {
		return err
	}
	return classify("remove image "+id, img.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: id}))
}

// ImageFsInfo returns the usage of the runtime's image filesystems.
func (c *CRI) ImageFsInfo(ctx context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	_, img, err := c.services(ctx)
	if err != nil {
		return nil, err
	}
	info, err := img.ImageFsInfo(ctx)
	return info, classify("read the image filesystem usage", err)
}

// Status returns the runtime's status.
func (c *CRI) Status(ctx context.Context, verbose bool) (*runtimeapi.StatusResponse, error) {
	rt, _, err := c.services(ctx)
	if err != nil {
		return nil, err
	}
	st, err := rt.Status(ctx, verbose)
	return st, classify("read the runtime status", err)
}
