package critest

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageOptions describe an image to build.
type ImageOptions struct {
	// ExtraBytes adds a layer with that many random bytes, so that images
	// have distinct sizes and share no content but the base.
	ExtraBytes int
	// Created is the creation time in the image's configuration. Default now.
	Created time.Time
	// Command is the image's entrypoint. Default: a shell that logs a line
	// and waits for SIGTERM.
	Command []string
}

// DefaultCommand runs until SIGTERM, on which it exits 0. It logs "started"
// once it handles SIGTERM: before, as a container's first process, it
// ignores it.
var DefaultCommand = []string{"/bin/sh", "-c", `trap 'echo stopping; exit 0' TERM; echo "started $(date +%s)"; while :; do sleep 1 & wait $!; done`}

// buildBase builds the busybox base layout that every image starts from.
func (c *Containerd) buildBase() {
	t := c.t
	c.base = filepath.Join(c.Dir, "images", "base")
	run(t, "umoci", "init", "--layout", c.base)
	run(t, "umoci", "new", "--image", c.base+":base")
	bundle := filepath.Join(c.Dir, "images", "base-bundle")
	run(t, "umoci", "unpack", "--image", c.base+":base", bundle)
	bin := filepath.Join(bundle, "rootfs", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "sleep", "echo", "cat", "date", "ls", "true"} {
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "umoci", "repack", "--image", c.base+":base", bundle)
	if err := os.RemoveAll(bundle); err != nil {
		t.Fatal(err)
	}
}

// ImportImage builds an image from the busybox base, imports it as ref
// (registry.tend.local/<name>:<tag>) and returns its ID.
func (c *Containerd) ImportImage(ref string, opts ImageOptions) string {
	c.t.Helper()
	return c.ImportArchive(ref, c.BuildImage(ref, opts))
}

// BuildImage builds an image from the busybox base into an OCI archive
// whose image is ref's tag, and returns the archive's path. ImportArchive
// imports it, as often as needed.
func (c *Containerd) BuildImage(ref string, opts ImageOptions) string {
	t := c.t
	t.Helper()
	_, tag, ok := strings.Cut(ref, ":")
	if !ok || strings.Contains(tag, "/") {
		t.Fatalf("image %q: want <repository>:<tag>", ref)
	}
	c.n++
	work := filepath.Join(c.Dir, "images", strconv.Itoa(c.n))
	layout := filepath.Join(work, "layout")
	if err := os.MkdirAll(work, 0o700); err != nil {
		t.Fatal(err)
	}
	run(t, "cp", "-a", c.base, layout)
	bundle := filepath.Join(work, "bundle")
	run(t, "umoci", "unpack", "--image", layout+":base", bundle)
	// Every image gets content of its own, so that no two share an ID.
	marker := []byte(ref + " " + randomHex(8) + "\n")
	if err := os.WriteFile(filepath.Join(bundle, "rootfs", "image"), marker, 0o644); err != nil {
		t.Fatal(err)
	}
	if opts.ExtraBytes > 0 {
		blob := make([]byte, opts.ExtraBytes)
		_, _ = rand.Read(blob)
		if err := os.WriteFile(filepath.Join(bundle, "rootfs", "blob"), blob, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run(t, "umoci", "repack", "--image", layout+":base", bundle)
	created := opts.Created
	if created.IsZero() {
		created = time.Now()
	}
	command := opts.Command
	if len(command) == 0 {
		command = DefaultCommand
	}
	args := []string{"config", "--image", layout + ":base", "--tag", tag, "--created", created.UTC().Format(time.RFC3339), "--clear=config.entrypoint", "--clear=config.cmd"}
	for _, a := range command {
		args = append(args, "--config.entrypoint", a)
	}
	run(t, "umoci", args...)
	run(t, "umoci", "rm", "--image", layout+":base")
	run(t, "umoci", "gc", "--layout", layout)
	archive := filepath.Join(c.Dir, "images", strconv.Itoa(c.n)+".tar")
	run(t, "tar", "-C", layout, "-cf", archive, ".")
	if err := os.RemoveAll(work); err != nil {
		t.Fatal(err)
	}
	return archive
}

// ImportArchive imports an archive BuildImage built for ref and returns
// the image's ID.
func (c *Containerd) ImportArchive(ref, archive string) string {
	t := c.t
	t.Helper()
	repo, _, _ := strings.Cut(ref, ":")
	run(t, "ctr", "--address", c.Socket, "--connect-timeout", "10s", "--namespace", "k8s.io", "images", "import", "--base-name", repo, archive)
	return c.ImageID(ref)
}

// ImageID returns the ID of the image ref names.
func (c *Containerd) ImageID(ref string) string {
	c.t.Helper()
	ctx, cancel := c.ctx()
	defer cancel()
	st, err := c.Images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil || st.GetImage() == nil {
		c.t.Fatalf("image %s is not in the runtime: %v", ref, err)
	}
	return st.GetImage().GetId()
}

// RemoveImage removes an image, as `crictl rmi` does.
func (c *Containerd) RemoveImage(id string) {
	ctx, cancel := c.ctx()
	defer cancel()
	if err := c.Images.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: id}); err != nil {
		c.t.Fatalf("failed to remove image %s: %v", id, err)
	}
}
