#!/usr/bin/env bash
# Builds tend's pinned tools from the Go module proxy into bin/, reusing a
# per-user cache so that a fresh clone does not rebuild them.
#
#   hack/tools.sh [tool...]     tools: etcd kube node kwok controller-gen helm (default: all)
#                               and crictl (only when named: make bench BENCH=shim)
#
# Each tool is pinned by hack/tools/<tool>/go.mod and go.sum; the cache key is
# the hash of those two files, so bumping a version rebuilds only that tool.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="${root}/bin"
cache="${TEND_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tend/tools}"
mkdir -p "${bin}" "${cache}"

# tool -> "package[ package...]"
declare -A pkgs=(
  [etcd]="go.etcd.io/etcd/server/v3"
  [kube]="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler"
  [node]="k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy"
  [kwok]="sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl"
  [controller-gen]="sigs.k8s.io/controller-tools/cmd/controller-gen"
  [helm]="helm.sh/helm/v3/cmd/helm"
  [crictl]="sigs.k8s.io/cri-tools/cmd/crictl"
)
# tool -> "binary[ binary...]" as they land in bin/
declare -A outs=(
  [etcd]="etcd"
  [kube]="kube-apiserver kube-controller-manager kube-scheduler"
  [node]="kubelet kube-proxy"
  [kwok]="kwok kwokctl"
  [controller-gen]="controller-gen"
  [helm]="helm"
  [crictl]="crictl"
)
# node (the install test's real node) after kube: it reuses most of kube's
# compiled packages from the Go build cache.
order=(etcd kwok controller-gen helm kube node)

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=("${order[@]}")

build_one() {
  local tool=$1 dir="${root}/hack/tools/$1"
  [ -n "${pkgs[$tool]:-}" ] || { echo "tools: unknown tool '${tool}' (known: ${order[*]} crictl)" >&2; return 2; }
  local key version
  key=$(cat "${dir}/go.mod" "${dir}/go.sum" | sha256sum | cut -c1-16)
  version=$(awk '/^require /{print $3; exit}' "${dir}/go.mod")
  local dest="${cache}/${tool}-${key}"

  if [ ! -f "${dest}/.complete" ]; then
    local start=$SECONDS
    echo "tools: building ${tool} ${version} (not cached; this takes a while)..."
    rm -rf "${dest}.tmp" && mkdir -p "${dest}.tmp"
    # shellcheck disable=SC2086
    (cd "${dir}" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "${dest}.tmp/" ${pkgs[$tool]})
    # etcd's main package (go.etcd.io/etcd/server/v3) builds as "server".
    if [ "${tool}" = etcd ] && [ -f "${dest}.tmp/server" ]; then mv "${dest}.tmp/server" "${dest}.tmp/etcd"; fi
    touch "${dest}.tmp/.complete"
    rm -rf "${dest}" && mv "${dest}.tmp" "${dest}"
    echo "tools: built ${tool} ${version} in $((SECONDS - start))s"
  else
    echo "tools: ${tool} ${version} cached"
  fi
  local b
  for b in ${outs[$tool]}; do
    [ -x "${dest}/${b}" ] || { echo "tools: ${tool} build did not produce ${b}" >&2; return 1; }
    # Copy rather than link so bin/ survives a cache cleanup.
    if ! cmp -s "${dest}/${b}" "${bin}/${b}"; then cp -f "${dest}/${b}" "${bin}/${b}"; fi
  done
}

total=$SECONDS
for t in "${tools[@]}"; do build_one "$t"; done
echo "tools: ready in bin/ ($((SECONDS - total))s): $(cd "${bin}" && ls | tr '\n' ' ')"
