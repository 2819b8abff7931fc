package shim

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tendops/tend/bus"
)

// status answers VerbStatus: the image filesystem's usage and, when asked,
// the newest container of a pod and name. It changes nothing.
func (s *Shim) status(ctx context.Context, p *bus.StatusParams) *bus.ShimReply {
	res := &bus.StatusResult{}
	fs, err := s.imageFS(ctx)
	if err != nil {
		return &bus.ShimReply{Error: failure(err)}
	}
	res.ImageFS = fs
	if t := p.Container; t != nil {
		cs, err := s.rt.ListContainers(ctx)
		if err != nil {
			return &bus.ShimReply{Error: failure(err)}
		}
		var found []*runtimeapi.Container
		for _, c := range cs {
			if ofPod(c, t.Namespace, t.Pod, t.PodUID, t.Container) {
				found = append(found, c)
			}
		}
		if len(found) > 0 {
			newestFirst(found)
			st, err := s.rt.ContainerStatus(ctx, found[0].GetId(), false)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return &bus.ShimReply{Error: failure(err)}
			}
			rc := runtimeContainer(found[0], st.GetStatus())
			res.Container = &rc
		}
	}
	return &bus.ShimReply{Status: res}
}

// imageFS reads the usage of the runtime's image filesystem and, when the
// shim can see that filesystem, its capacity.
func (s *Shim) imageFS(ctx context.Context) (*bus.ImageFSUsage, error) {
	info, err := s.rt.ImageFsInfo(ctx)
	if err != nil {
		return nil, err
	}
	fss := info.GetImageFilesystems()
	if len(fss) == 0 {
		return nil, fmt.Errorf("%w: the runtime reports no image filesystem", ErrRuntimeUnavailable)
	}
	fs := fss[0]
	u := &bus.ImageFSUsage{
		Mountpoint: fs.GetFsId().GetMountpoint(),
		Timestamp:  fromNanos(fs.GetTimestamp()),
		UsedBytes:  int64(fs.GetUsedBytes().GetValue()),
		InodesUsed: int64(fs.GetInodesUsed().GetValue()),
	}
	if u.Mountpoint != "" && filepath.IsAbs(u.Mountpoint) {
		var st unix.Statfs_t
		if err := unix.Statfs(filepath.Join(s.opts.HostRoot, u.Mountpoint), &st); err == nil {
			u.CapacityBytes = int64(st.Blocks) * st.Bsize
			u.AvailableBytes = int64(st.Bavail) * st.Bsize
		}
	}
	return u, nil
}
