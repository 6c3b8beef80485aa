# ModelSync: `make demo` and `make test` do all set-up on a fresh machine.
PY      ?= python3
VENV    ?= .venv
PYTHON  := $(VENV)/bin/python
PYTEST_ARGS ?=
# pytest processes (pytest-xdist); each starts its own control plane, operator and MLflow server.
# Four on 2 cores: the suite is mostly waiting (its processes use about a quarter of the CPU
# time it takes); on 2026-12-06 four ran it in 7m30s-8m04s against 11m48s for two (pytest alone, warm).
TEST_WORKERS ?= 4

.PHONY: typecheck help venv controlplane gitopscheck mlflow test lint unit integration demo crds bench image image-smoke clean

help:
	@echo "make demo   local control plane + ZStack simulator + operator + examples, then their synced status"
	@echo "make test   everything the suite needs, then the whole suite"
	@echo "make crds   regenerate crds/ from operator/modelsync/api.py"
	@echo "make image  the operator image (modelsync:VERSION); make image-smoke runs it against the local control plane"

# The virtualenv is rebuilt when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -U pip
	$(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# kube-apiserver, etcd and kubectl from the pinned Go modules; cached in ~/.cache/modelsync.
controlplane:
	@bash tools/controlplane/build.sh >/dev/null

# Argo CD's Lua health checks (gopher-lua, as Argo CD runs them) and kstatus, for tests/integration/test_argocd.py;
# cached in ~/.cache/modelsync.
gitopscheck:
	@bash tools/gitopscheck/build.sh >/dev/null

# The real MLflow server (tools/mlflow/version.env) in a virtualenv of its own; cached in ~/.cache/modelsync.
mlflow:
	@bash tools/mlflow/ensure.sh >/dev/null

test: venv controlplane gitopscheck mlflow lint
	$(PYTHON) -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) $(PYTEST_ARGS)

# mypy --strict (pyproject's [tool.mypy]) on the modules that pass it; the others are listed there
typecheck: venv
	$(VENV)/bin/mypy -p modelsync

# ruff, the import-linter contracts (the layers) and mypy --strict on the whole package
lint: venv
	$(VENV)/bin/ruff check operator tests tools bench
	cd operator && ../$(VENV)/bin/lint-imports --config ../pyproject.toml
	$(VENV)/bin/mypy -p modelsync

unit: venv
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) tests/unit tests/conformance $(PYTEST_ARGS)

integration: venv controlplane gitopscheck mlflow
	$(PYTHON) -m pytest -q -n $(TEST_WORKERS) tests/integration $(PYTEST_ARGS)

demo: venv controlplane mlflow
	$(PYTHON) tools/demo.py $(DEMO_ARGS)

crds: venv
	$(PYTHON) -m modelsync.crdgen crds/

# The operator image without an image registry (`docker build .` needs python:3.12-slim from one):
# the Dockerfile on a debootstrap + docker import base, with wheels built on the host (tools/image/build.sh).
image: venv
	bash tools/image/ensure-docker.sh
	bash tools/image/build.sh

image-smoke: image controlplane
	$(PYTHON) tools/image/smoke.py

# The scale table (bench/scale.py): 1,000 Models + 1,000 ModelServices against a no-op kopf
# floor, 10 ms registry latency, a restart, unchanged resyncs, 10,000 Models; JSON in bench/results.json.
bench: venv controlplane
	$(PYTHON) bench/scale.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
