#!/usr/bin/env bash
# Lua for the Argo CD health-check tests (tests/integration/test_argocd.py): Debian's lua5.4, and
# lua5.1, the dialect of the gopher-lua interpreter inside Argo CD. A no-op when both are here.
# As root with apt-get it installs them (CI, a fresh Debian machine); otherwise it says how and
# carries on, and those tests skip.
set -euo pipefail
missing=()
command -v lua5.4 >/dev/null || missing+=(lua5.4)
command -v lua5.1 >/dev/null || missing+=(lua5.1)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-lua.sh: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "ensure-lua.sh: ${missing[*]} not installed and not root; the Argo CD health-check tests will skip" \
     "(install with: sudo apt-get install ${missing[*]})" >&2
