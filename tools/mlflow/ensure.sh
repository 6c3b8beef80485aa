#!/usr/bin/env bash
# Install the real MLflow server, at the version pinned in version.env, into a virtualenv of its own,
# outside git and outside the project's .venv (MLflow brings pandas, scikit-learn, SQLAlchemy, Flask…;
# the operator needs none of them):
#   ${MODELSYNC_CACHE:-~/.cache/modelsync}/mlflow-<version>/bin/mlflow
# A warm run finds it there and installs nothing. Prints the path of the mlflow executable.
# The tests (tests/mlflow_server.py) and `make demo DEMO_ARGS="--backend mlflow"` start it from there.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$(sed -n 's/^MLFLOW_VERSION=//p' "$here/version.env")
cache=${MODELSYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/modelsync}
out="$cache/mlflow-${version}"
if [ -f "$out/.installed" ] && [ -x "$out/bin/mlflow" ]; then
  echo "$out/bin/mlflow"; exit 0
fi
mkdir -p "$cache"
exec 9>"$out.lock"
flock 9  # one install at a time; a second caller waits, then finds it installed
if [ ! -f "$out/.installed" ]; then
  echo "installing mlflow ${version} into $out (first run only)" >&2
  rm -rf "$out"  # a half-made install (interrupted) is started over
  "${PY:-python3}" -m venv "$out"
  "$out/bin/pip" install -q --disable-pip-version-check "mlflow==${version}" >&2
  "$out/bin/mlflow" --version >&2
  touch "$out/.installed"
fi
echo "$out/bin/mlflow"
