// Command images builds tend's container images without a Docker daemon
// and without pulling a base from any registry: each binary is built
// static (CGO_ENABLED=0, -trimpath) and put on an empty root with CA
// certificates and a non-root user (internal/images), written as an OCI
// image layout archive, and its digest printed. The same commit gives the
// same digests. `make images` runs it.
//
//	go run ./hack/images --out bin/images
//
// Import an archive into containerd with
// `ctr -n k8s.io images import bin/images/tend.oci.tar`, or push it with
// `crane push bin/images/tend.oci.tar REF`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tendops/tend/internal/images"
	"github.com/tendops/tend/mcp/wire"
)

func main() {
	out := flag.String("out", "bin/images", "directory for the OCI archives")
	repo := flag.String("repository", "ghcr.io/tendops", "registry and path the images are named under")
	ca := flag.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "PEM bundle of CA certificates to put in the images (Debian's ca-certificates)")
	arch := flag.String("arch", "amd64", "GOARCH of the images")
	flag.Parse()
	if err := run(*out, *repo, *ca, *arch); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

// binaries are the images: each one binary, named for it.
var binaries = []struct{ name, pkg string }{
	{"tend", "./cmd/tend"},
	{"tend-shim", "./cmd/tend-shim"},
}

func run(out, repo, ca, arch string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	created, revision, err := commit()
	if err != nil {
		return err
	}
	build, err := os.MkdirTemp("", "tend-images-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(build)
	for _, b := range binaries {
		start := time.Now()
		bin := filepath.Join(build, b.name)
		cmd := exec.Command("go", "build", "-trimpath", "-buildvcs=auto", "-ldflags=-s -w -buildid=", "-o", bin, b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("failed to build %s: %w", b.pkg, err)
		}
		ref := fmt.Sprintf("%s/%s:%s", repo, b.name, wire.Version)
		img, err := images.Build(images.Spec{
			Name: b.name, Binary: bin, Ref: ref, CABundle: ca, Created: created,
			Platform: v1.Platform{OS: "linux", Architecture: arch},
			Labels: map[string]string{
				"org.opencontainers.image.title":    b.name,
				"org.opencontainers.image.version":  wire.Version,
				"org.opencontainers.image.revision": revision,
				"org.opencontainers.image.source":   "https://github.com/tendops/tend",
			},
		})
		if err != nil {
			return err
		}
		archive := filepath.Join(out, b.name+".oci.tar")
		if err := images.WriteArchive(archive, map[string]v1.Image{ref: img}); err != nil {
			return fmt.Errorf("failed to write %s: %w", archive, err)
		}
		digest, err := img.Digest()
		if err != nil {
			return err
		}
		size, err := archiveSize(archive)
		if err != nil {
			return err
		}
		fmt.Printf("%s@%s  %s  (%s, %.1fs)\n", ref, digest, archive, size, time.Since(start).Seconds())
	}
	return nil
}

// commit returns the commit's time and hash: the images' creation time, so
// that the same commit builds the same images. SOURCE_DATE_EPOCH, when
// set, is the time instead.
func commit() (time.Time, string, error) {
	rev, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return time.Time{}, "", fmt.Errorf("failed to read the commit (images are built from a git checkout): %w", err)
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, "", fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		return time.Unix(sec, 0).UTC(), strings.TrimSpace(string(rev)), nil
	}
	ct, err := exec.Command("git", "log", "-1", "--format=%ct").Output()
	if err != nil {
		return time.Time{}, "", err
	}
	sec, err := strconv.ParseInt(string(bytes.TrimSpace(ct)), 10, 64)
	if err != nil {
		return time.Time{}, "", err
	}
	return time.Unix(sec, 0).UTC(), strings.TrimSpace(string(rev)), nil
}

func archiveSize(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%.1f MiB", float64(st.Size())/(1<<20)), nil
}
