#!/usr/bin/env bash
# Make sure docker (Debian's docker.io, with dockerd running) and debootstrap are here. Needs root.
set -euo pipefail
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  nohup dockerd >/var/log/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done
  echo "dockerd did not start; see /var/log/dockerd.log" >&2; exit 1
fi
