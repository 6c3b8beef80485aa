#!/usr/bin/env bash
# Build gitopscheck (Argo CD's Lua health checks as Argo CD runs them, and kstatus) from the
# modules pinned in go.mod, into a cache outside git keyed by go.mod, go.sum and main.go:
#   ${MODELSYNC_CACHE:-~/.cache/modelsync}/gitopscheck/<sum>/gitopscheck
# A warm run finds the binary there and builds nothing. Prints the binary's path.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
sum=$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-12)
cache=${MODELSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelsync}
out="$cache/gitopscheck/$sum"
if [ -x "$out/gitopscheck" ]; then
  echo "$out/gitopscheck"; exit 0
fi
command -v go >/dev/null || { echo "build.sh: go is not on PATH" >&2; exit 1; }
tmp="$out.tmp.$$"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"
cd "$here"
echo "building gitopscheck into $out (first run only)" >&2
CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o "$tmp/gitopscheck" . >&2
rm -rf "$out"; mkdir -p "$(dirname "$out")"; mv "$tmp" "$out"
echo "$out/gitopscheck"
