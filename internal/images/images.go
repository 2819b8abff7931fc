package images

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRoot is the user and group the images run as.
const NonRoot = 65532

// BinDir is where an image's binary is.
const BinDir = "/usr/local/bin"

// CABundle is where an image's CA certificates are.
const CABundle = "/etc/ssl/certs/ca-certificates.crt"

// Spec is one image.
type Spec struct {
	// Name is the binary's name in the image, and the entrypoint.
	Name string
	// Binary is the path of a static Linux binary.
	Binary string
	// Ref is the image's reference, recorded in the archive's index
	// (org.opencontainers.image.ref.name), e.g. ghcr.io/tendops/tend:0.1.0.
	Ref string
	// CABundle is the path of a PEM bundle of CA certificates.
	CABundle string
	// Created is the image's creation time; a fixed one (the commit's)
	// keeps builds reproducible.
	Created time.Time
	// Labels are the image config's labels (org.opencontainers.image.*).
	Labels map[string]string
	// Platform is the image's OS and architecture (default linux/amd64).
	Platform v1.Platform
}

// Build assembles the image. It refuses a binary that is not a static
// Linux executable: the image has no libc for it to load.
func Build(s Spec) (v1.Image, error) {
	if s.Name == "" || s.Binary == "" || s.CABundle == "" {
		return nil, errors.New("images: a name, a binary and a CA bundle are required")
	}
	if err := checkStatic(s.Binary); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, fmt.Errorf("images: %w", err)
	}
	ca, err := os.ReadFile(s.CABundle)
	if err != nil {
		return nil, fmt.Errorf("images: the CA bundle: %w", err)
	}
	if !bytes.Contains(ca, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("images: %s holds no PEM certificate", s.CABundle)
	}
	base, err := layer([]file{
		{path: "etc/", mode: 0o755 | fs.ModeDir},
		{path: "etc/passwd", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRoot, NonRoot))},
		{path: "etc/group", mode: 0o644, data: []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", NonRoot))},
		{path: "etc/ssl/", mode: 0o755 | fs.ModeDir},
		{path: "etc/ssl/certs/", mode: 0o755 | fs.ModeDir},
		{path: CABundle[1:], mode: 0o644, data: ca},
		{path: "home/", mode: 0o755 | fs.ModeDir},
		{path: "home/nonroot/", mode: 0o700 | fs.ModeDir, uid: NonRoot},
		{path: "tmp/", mode: 0o777 | fs.ModeDir | fs.ModeSticky},
	}, s.Created)
	if err != nil {
		return nil, err
	}
	app, err := layer([]file{
		{path: "usr/", mode: 0o755 | fs.ModeDir},
		{path: "usr/local/", mode: 0o755 | fs.ModeDir},
		{path: "usr/local/bin/", mode: 0o755 | fs.ModeDir},
		{path: filepath.Join(BinDir, s.Name)[1:], mode: 0o755, data: bin},
	}, s.Created)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), base, app)
	if err != nil {
		return nil, err
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	p := s.Platform
	if p.OS == "" {
		p = v1.Platform{OS: "linux", Architecture: "amd64"}
	}
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: s.Created.UTC()}
	cf.Config.User = strconv.Itoa(NonRoot) + ":" + strconv.Itoa(NonRoot)
	cf.Config.Entrypoint = []string{filepath.Join(BinDir, s.Name)}
	cf.Config.WorkingDir = "/home/nonroot"
	cf.Config.Env = []string{"PATH=" + BinDir, "SSL_CERT_FILE=" + CABundle, "HOME=/home/nonroot"}
	cf.Config.Labels = s.Labels
	cf.History = nil
	return mutate.ConfigFile(img, cf)
}

// file is one entry of a layer.
type file struct {
	path string
	mode fs.FileMode
	uid  int
	data []byte
}

// layer writes files as a tar layer with fixed times and owners, in the
// order given (parents first), so the same files give the same digest.
func layer(files []file, mtime time.Time) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	sort.SliceStable(files, func(i, j int) bool { return files[i].path < files[j].path })
	for _, f := range files {
		h := &tar.Header{
			Name: f.path, Mode: int64(f.mode.Perm()), ModTime: mtime.UTC(), Uid: f.uid, Gid: f.uid,
			Format: tar.FormatPAX,
		}
		if f.mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		if f.mode.IsDir() {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// checkStatic refuses anything but a statically linked Linux ELF
// executable.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("images: %s is not a Linux executable: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("images: %s is dynamically linked (build it with CGO_ENABLED=0)", path)
		}
	}
	return nil
}

// WriteArchive writes images as one OCI image layout, tarred with fixed
// times, to path; each image's Ref names it in the index.
func WriteArchive(path string, imgs map[string]v1.Image) error {
	dir, err := os.MkdirTemp("", "tend-images-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	refs := make([]string, 0, len(imgs))
	for ref := range imgs {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	for _, ref := range refs {
		if err := lp.AppendImage(imgs[ref], layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": ref,
			// containerd reads the full reference from this one.
			"io.containerd.image.name": ref,
		})); err != nil {
			return err
		}
	}
	return tarDir(dir, path)
}

// tarDir tars a directory's files with fixed times and owners, in name
// order.
func tarDir(dir, path string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(out)
	for _, p := range names {
		rel, _ := filepath.Rel(dir, p)
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: time.Unix(0, 0).UTC(), Format: tar.FormatPAX}
		if st.IsDir() {
			h.Name += "/"
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			continue
		}
		h.Typeflag, h.Size = tar.TypeReg, st.Size()
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return out.Close()
}
