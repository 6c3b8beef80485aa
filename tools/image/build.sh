#!/usr/bin/env bash
# Build the operator image without any image registry (`docker build .` needs python:3.12-slim):
#  1. a Debian bookworm base made with debootstrap and `docker import` (cached as modelsync-base:bookworm);
#  2. wheels for modelsync and its runtime dependencies, for the base's CPython 3.11, fetched and built
#     on the host into build/wheels;
#  3. `docker build` of ./Dockerfile with BASE=that base and WHEELS=build/wheels: it downloads nothing.
# Needs root, docker (Debian's docker.io) with dockerd running, and debootstrap.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
base=${MODELSYNC_BASE_IMAGE:-modelsync-base:bookworm}
tag=${MODELSYNC_IMAGE:-modelsync:$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/pyproject.toml")}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
py=${PYTHON:-$root/.venv/bin/python}

if ! docker image inspect "$base" >/dev/null 2>&1; then
  rootfs=$(mktemp -d)
  trap 'rm -rf "$rootfs"' EXIT
  echo "debootstrap bookworm into $rootfs (first build only)" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" "$mirror" >&2
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import - "$base" >&2
fi

wheels="$root/build/wheels"
rm -rf "$wheels" && mkdir -p "$wheels"
# Wheels for the image's CPython 3.11 (bookworm's), whatever Python runs this script.
"$py" -m pip download -q --dest "$wheels" --only-binary=:all: --python-version 3.11 --implementation cp \
  --abi cp311 --abi abi3 --abi none --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_28_x86_64 --platform any "$root"
"$py" -m pip wheel -q --no-deps --wheel-dir "$wheels" "$root"
docker build -t "$tag" --build-arg "BASE=$base" --build-arg WHEELS=build/wheels -f "$root/Dockerfile" "$root" >&2
echo "$tag"
