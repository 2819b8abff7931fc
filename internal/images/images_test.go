package images_test

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/tendops/tend/internal/images"
)

// buildHello builds a small static program, with cgo on or off.
func buildHello(t *testing.T, cgo bool) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	prog := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hello\") }\n"
	if cgo {
		prog = "package main\n\n// int one(void) { return 1; }\nimport \"C\"\n\nfunc main() { println(C.one()) }\n"
	}
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, src)
	cmd.Env = append(os.Environ(), "GOOS=linux", "GO111MODULE=off", "GOFLAGS=")
	if cgo {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=1")
	} else {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestImageIsReproducibleNonRootAndHasOnlyItsFiles(t *testing.T) {
	bin := buildHello(t, false)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := images.Spec{Name: "hello", Binary: bin, CABundle: ca, Created: time.Unix(1_700_000_000, 0),
		Labels: map[string]string{"org.opencontainers.image.version": "0.0.1"}}
	a, err := images.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := images.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("the same inputs built %s and %s", da, db)
	}
	// Another creation time is another image.
	spec.Created = spec.Created.Add(time.Second)
	c, err := images.Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc == da {
		t.Error("the creation time does not reach the digest")
	}

	cf, err := a.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || cf.Config.Entrypoint[0] != "/usr/local/bin/hello" || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("config: user %q entrypoint %v platform %s/%s", cf.Config.User, cf.Config.Entrypoint, cf.OS, cf.Architecture)
	}
	if !cf.Created.Time.Equal(time.Unix(1_700_000_000, 0)) {
		t.Errorf("created %v", cf.Created)
	}
	files := map[string]*tar.Header{}
	layers, err := a.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimSuffix(h.Name, "/")] = h
		}
		rc.Close()
	}
	for _, want := range []string{"etc/passwd", "etc/group", "etc/ssl/certs/ca-certificates.crt", "usr/local/bin/hello", "tmp", "home/nonroot"} {
		if files[want] == nil {
			t.Errorf("no %s in the image", want)
		}
	}
	for name, h := range files {
		if strings.HasPrefix(name, "bin") || strings.HasSuffix(name, "/sh") {
			t.Errorf("the image has %s: no shell belongs in it", name)
		}
		if !h.ModTime.Equal(time.Unix(1_700_000_000, 0)) {
			t.Errorf("%s has time %v", name, h.ModTime)
		}
	}
	if h := files["usr/local/bin/hello"]; h.Mode&0o111 == 0 || h.Uid != 0 {
		t.Errorf("the binary: mode %o uid %d", h.Mode, h.Uid)
	}
	if h := files["home/nonroot"]; h.Uid != images.NonRoot {
		t.Errorf("the home of nonroot is owned by %d", h.Uid)
	}

	// The archive is an OCI layout naming the image, the same bytes twice.
	dir := t.TempDir()
	for _, name := range []string{"a.tar", "b.tar"} {
		if err := images.WriteArchive(filepath.Join(dir, name), map[string]v1.Image{"example.test/hello:0.0.1": a}); err != nil {
			t.Fatal(err)
		}
	}
	ab, _ := os.ReadFile(filepath.Join(dir, "a.tar"))
	bb, _ := os.ReadFile(filepath.Join(dir, "b.tar"))
	if string(ab) != string(bb) {
		t.Error("two archives of the same image differ")
	}
	unpacked := t.TempDir()
	if out, err := exec.Command("tar", "-xf", filepath.Join(dir, "a.tar"), "-C", unpacked).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	lp, err := layout.FromPath(unpacked)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Digest != da || m.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "example.test/hello:0.0.1" {
		t.Errorf("index: %+v", m.Manifests)
	}
}

func TestImageRefusesBadInput(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "run.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	static := buildHello(t, false)
	cases := map[string]struct {
		spec images.Spec
		want string
	}{
		"a script":     {images.Spec{Name: "x", Binary: script, CABundle: ca}, "not a Linux executable"},
		"no CA bundle": {images.Spec{Name: "x", Binary: static}, "required"},
		"not PEM":      {images.Spec{Name: "x", Binary: static, CABundle: notPEM}, "no PEM certificate"},
	}
	if _, err := exec.LookPath("gcc"); err == nil && runtime.GOOS == "linux" {
		cases["dynamically linked"] = struct {
			spec images.Spec
			want string
		}{images.Spec{Name: "x", Binary: buildHello(t, true), CABundle: ca}, "CGO_ENABLED=0"}
	}
	for name, tc := range cases {
		if _, err := images.Build(tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", name, err, tc.want)
		}
	}
}
