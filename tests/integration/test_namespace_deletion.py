"""Deleting a namespace that holds a registry, its Secret and the Models using it, as the
namespace controller does it (and as an Argo CD prune or a Flux garbage collection deletes such a
directory): everything in it deleted at once. The registry and its Secret are held (finalizer
``modelsync.io/in-use``) until no Model has entries left in the registry, so every Model removes
its entry, also while the registry fails for 30 s, and the namespace goes.

The test control plane runs no controller-manager: the test deletes the namespace's content the
way the namespace controller does (a deletecollection of every namespaced kind in it, all at
once, while the namespace is Terminating), waits for it to be empty, then finalizes the namespace."""
from __future__ import annotations

import concurrent.futures
import time
import uuid
from typing import Any, Iterator

import pytest
from kubernetes.client.rest import ApiException

from modelsync.api import GROUP, VERSION
from modelsync.testing import K8s, OperatorProcess, eventually

from .conftest import Sim, model, start_sim

pytestmark = pytest.mark.integration
CENTER = "ebf96ce1de2c46fa8af9d503c29bb93d"
PASSWORD = "ns-Pa55-delete"
MODELS = 20
OUTAGE = 30.0


@pytest.fixture(scope="module")
def zsim() -> Iterator[Sim]:
    yield from start_sim("zstack", account="admin", password=PASSWORD, model_center_uuid=CENTER)


def _content(k8s: K8s, ns: str) -> dict[str, list[str]]:
    out = {plural: [o["metadata"]["name"] for o in k8s.custom.list_namespaced_custom_object(
        GROUP, VERSION, ns, plural)["items"]] for plural in ("models", "modelservices", "modelregistries")}
    out["secrets"] = [s.metadata.name for s in k8s.core.list_namespaced_secret(ns).items]
    return {k: v for k, v in out.items() if v}


def _delete_as_the_namespace_controller_does(k8s: K8s, ns: str) -> None:
    """The namespace Terminating, then a deletecollection of each kind in it, all at once."""
    k8s.core.delete_namespace(ns)
    calls = [lambda p=plural: k8s.custom.delete_collection_namespaced_custom_object(GROUP, VERSION, ns, p)
             for plural in ("models", "modelservices", "modelregistries")]
    calls += [lambda: k8s.core.delete_collection_namespaced_secret(ns),
              lambda: k8s.core.delete_collection_namespaced_config_map(ns),
              lambda: k8s.core.delete_collection_namespaced_event(ns)]
    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        for f in [pool.submit(c) for c in calls]:
            f.result()


def _finalize_namespace(k8s: K8s, ns: str) -> None:
    """The namespace controller's last step once the namespace is empty."""
    body = k8s.core.read_namespace(ns)
    body.spec.finalizers = []
    k8s.core.replace_namespace_finalize(ns, body)


@pytest.mark.parametrize("failing", [True, False], ids=["registry-failing-30s", "registry-healthy"])
def test_a_namespace_with_its_registry_secret_and_models_deletes_completely(
        k8s: K8s, operator: OperatorProcess, zsim: Sim, failing: bool) -> None:
    ns = f"nsdel-{uuid.uuid4().hex[:8]}"
    k8s.create_namespace(ns)
    k8s.secret("zstack-creds", ns, {"accountName": "admin", "password": PASSWORD})
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": "zstack"}, "spec": {
        "backend": "zstack", "endpoint": zsim.url, "credentialsSecretRef": {"name": "zstack-creds"},
        "zstack": {"modelCenterUuid": CENTER}, "requestTimeout": "5s"}}, ns)
    for i in range(MODELS):
        k8s.create(model(f"m{i}", ["zstack"], description=f"model {i}", installPath=f"/models/{ns}/m{i}",
                         vendor="Qwen", version="1.0.0", task="text-generation"), ns)
    ids = []
    for i in range(MODELS):
        obj = k8s.wait_condition("Model", f"m{i}", ns, "Ready", timeout=60)
        ids.append(obj["status"]["registries"][0]["externalId"])
    state = zsim.app["zstack"]
    assert all(eid in state.models for eid in ids)
    # held while Models have entries in it: the registry and the Secret it logs in with
    reg = k8s.get("ModelRegistry", "zstack", ns)
    assert "modelsync.io/in-use" in reg["metadata"]["finalizers"]
    assert "modelsync.io/in-use" in (k8s.core.read_namespaced_secret("zstack-creds", ns).metadata.finalizers or [])
    log_from = len(operator.log())

    if failing:
        zsim.faults(error_rate=1.0, error_status=503, match="")
    started = time.monotonic()
    try:
        _delete_as_the_namespace_controller_does(k8s, ns)
        if failing:
            time.sleep(OUTAGE / 2)  # the outage lasts OUTAGE seconds (not a wait for a state)
            left = _content(k8s, ns)
            assert len(left.get("models", [])) == MODELS, left  # their entries cannot go yet
            assert left.get("modelregistries") == ["zstack"] and left.get("secrets") == ["zstack-creds"], left
            time.sleep(OUTAGE - (time.monotonic() - started))
    finally:
        zsim.faults(error_rate=0.0)
    healed = time.monotonic()
    left: dict[str, Any] = {}

    def emptied() -> bool:
        nonlocal left
        left = _content(k8s, ns)
        return not left

    try:
        eventually(emptied, "empty namespace", timeout=60, interval=0.5)
    except TimeoutError:
        raise AssertionError(f"still there {time.monotonic() - healed:.0f}s after the registry recovered: {left}") from None
    print(f"namespace content gone {time.monotonic() - healed:.1f}s after the registry "
          f"{'recovered' if failing else 'was asked'} ({time.monotonic() - started:.1f}s after the delete)")
    _finalize_namespace(k8s, ns)
    with pytest.raises(ApiException) as gone:
        for _ in range(50):
            k8s.core.read_namespace(ns)
            time.sleep(0.1)
    assert gone.value.status == 404
    assert [eid for eid in ids if eid in state.models] == [], "entries left in the registry"
    # posting Events into the terminating namespace is refused: no ERROR line about it
    errors = [line for line in operator.log()[log_from:].splitlines() if " ERROR " in line or '"ERROR"' in line]
    assert errors == [], "\n".join(errors[:20])
