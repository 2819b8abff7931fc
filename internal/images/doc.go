// Package images assembles tend's container images from static binaries,
// with no Docker daemon and no base image: an empty root with CA
// certificates, a non-root user and the binary, written as an OCI image
// layout archive that containerd (`ctr images import`) and registries
// (`crane push`) take. The same inputs always give the same digest.
//
// It must never pull anything from a registry, run a container, or put a
// shell or package manager in an image.
package images
