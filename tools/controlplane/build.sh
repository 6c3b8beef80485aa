#!/usr/bin/env bash
# Build kube-apiserver, kubectl and etcd from the official Go modules pinned in
# go.mod, into a cache outside git keyed by version and by go.sum:
#   ${MODELSYNC_CACHE:-~/.cache/modelsync}/controlplane/<k8s>-<etcd>-<sum>/bin
# A warm run finds the binaries there and builds nothing. Prints the bin dir.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
sum=$(cat "$here/go.mod" "$here/go.sum" "$here/cmd/etcd/main.go" | sha256sum | cut -c1-12)
cache=${MODELSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelsync}
out="$cache/controlplane/${KUBERNETES_VERSION}-${ETCD_VERSION}-${sum}/bin"
if [ -x "$out/kube-apiserver" ] && [ -x "$out/etcd" ] && [ -x "$out/kubectl" ]; then
  echo "$out"; exit 0
fi
command -v go >/dev/null || { echo "build.sh: go is not on PATH" >&2; exit 1; }
tmp="$out.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
cd "$here"
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w
 -X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION}
 -X k8s.io/component-base/version.gitMajor=1
 -X k8s.io/component-base/version.gitMinor=${minor}
 -X k8s.io/component-base/version.gitTreeState=clean
 -X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_VERSION}"
echo "building kube-apiserver, kubectl ${KUBERNETES_VERSION} and etcd ${ETCD_VERSION} into $out (first run only)" >&2
CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "$ldflags" -o "$tmp/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl ./cmd/etcd >&2
rm -rf "$out"; mkdir -p "$(dirname "$out")"; mv "$tmp" "$out"
echo "$out"
