"""The backend contract end to end, for every registry: the real apiserver, the operator as a process,
each vendor's simulator (tests/conformance/adapters.py says how to drive it).

The scenarios that matter through the whole operator: a create whose reply is lost leaves one entry;
an entry of ours that is already there is adopted, one that is not ours is NameTaken (or, where names
are not unique, left beside ours) and never touched; deleting a Model whose entry is already gone
completes; an entry removed behind ModelSync's back is made again by the next update. The backend
alone is held to the whole contract in tests/conformance/test_contract.py.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, Iterator

import pytest

from modelsync import api
from modelsync.backends import make_backend
from modelsync.testing import K8s, OperatorProcess, eventually
from modelsync.testing.k8s import PLURALS, condition

from ..conformance.adapters import ADAPTERS, Adapter, Scope
from .conftest import RESYNC_SECONDS, Sim, model, service, start_sim

pytestmark = pytest.mark.integration


@pytest.fixture(params=ADAPTERS, ids=[a.id for a in ADAPTERS])
def adapter(request: pytest.FixtureRequest) -> Adapter:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def sim(adapter: Adapter, request: pytest.FixtureRequest) -> Iterator[Sim]:
    """A simulator of this test's own: what it holds and its journal are this test's alone."""
    fixtures = {name: request.getfixturevalue(name) for name in adapter.fixtures}
    yield from start_sim(adapter.vendor, **adapter.options(fixtures))


def registry(k8s: K8s, adapter: Adapter, sim: Sim, scope: Scope, name: str = "reg") -> None:
    spec: dict[str, Any] = {"backend": adapter.vendor, "endpoint": sim.url, "requestTimeout": "10s"}
    settings = adapter.settings(scope)
    if settings:
        spec[adapter.vendor] = settings
    credentials = adapter.credentials()
    if credentials:
        k8s.secret(f"{name}-creds", scope.namespace, credentials)
        spec["credentialsSecretRef"] = {"name": f"{name}-creds"}
    k8s.create({"kind": "ModelRegistry", "metadata": {"name": name}, "spec": spec}, scope.namespace)


@pytest.fixture
def scope(k8s: K8s, ns: str, adapter: Adapter, sim: Sim, operator: OperatorProcess) -> Iterator[Scope]:
    """This test's namespace with registry ``reg`` on its simulator, Ready. On teardown its Models,
    ModelServices and registries are deleted (the control plane has no namespace controller), while
    the simulator still answers, so nothing keeps resyncing against a stopped one."""
    scope = Scope(prefix=f"c{uuid.uuid4().hex[:8]}-", namespace=ns)
    registry(k8s, adapter, sim, scope)
    k8s.wait_condition("ModelRegistry", "reg", ns, "Ready")
    yield scope
    for kinds in (("Model", "ModelService"), ("ModelRegistry",)):  # the registries last
        for kind in kinds:
            for obj in k8s.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, ns, PLURALS[kind])["items"]:
                k8s.delete(kind, obj["metadata"]["name"], ns)
        eventually(lambda: not any(
            k8s.custom.list_namespaced_custom_object(api.GROUP, api.VERSION, ns, PLURALS[kind])["items"]
            for kind in kinds), f"{'/'.join(kinds)} of {ns} deleted", timeout=30)


def external_id(obj: dict[str, Any]) -> str:
    return str(obj["status"]["registries"][0]["externalId"])


def test_lost_create_reply_leaves_one_entry(k8s: K8s, adapter: Adapter, sim: Sim, scope: Scope) -> None:
    sim.faults(lose_next=1, match=adapter.create_match)
    k8s.create(model("lost", ["reg"], **adapter.model_spec()), scope.namespace)
    obj = k8s.wait_condition("Model", "lost", scope.namespace, "Ready", timeout=90)
    assert sim.http.get("/_sim/faults").json()["lose_next"] == 0, "the reply was not lost: nothing was proven"
    assert adapter.entries(sim, scope) == [external_id(obj)]
    # the one create reached the registry (its reply was dropped); the next try read first and found it
    creates = [e for e in sim.journal() if f"{e['method']} {e['path']}".startswith(adapter.create_match)]
    assert len(creates) == 1, creates


def test_an_entry_of_ours_already_there_is_adopted(k8s: K8s, adapter: Adapter, sim: Sim, scope: Scope) -> None:
    """What a create whose status was lost leaves: our entry, made before the operator's first try
    (which creates without reading first, meets it and adopts it)."""
    spec = adapter.model_spec()
    # the entry needs the Model's uid: the Model first, naming a registry that does not exist yet
    obj = k8s.create(model("adoptee", ["late"], **spec), scope.namespace)
    res = adapter.resource(scope, spec, name="adoptee", uid=obj["metadata"]["uid"], registry="late")

    async def premake() -> None:
        backend = make_backend(adapter.connection(sim, scope, registry="late"))
        try:
            await backend.create(res)
        finally:
            await backend.aclose()

    asyncio.run(premake())
    made = adapter.entries(sim, scope)
    assert len(made) == 1
    registry(k8s, adapter, sim, scope, name="late")
    obj = k8s.wait_condition("Model", "adoptee", scope.namespace, "Ready", timeout=90)
    assert external_id(obj) == made[0]
    assert adapter.entries(sim, scope) == made  # the same entry, no second one


def test_an_entry_not_ours_is_name_taken_and_never_touched(k8s: K8s, adapter: Adapter, sim: Sim,
                                                          scope: Scope) -> None:
    name = f"{scope.prefix}taken"
    theirs = adapter.put_foreign(sim, scope, name)
    before = adapter.snapshot(sim, theirs)
    k8s.create(model("clash", ["reg"], **adapter.named(adapter.model_spec(), name)), scope.namespace)
    if adapter.exclusive_names:
        obj = k8s.wait_condition("Model", "clash", scope.namespace, "Synced", status="False", timeout=60)
        synced = condition(obj, "Synced")
        assert synced["reason"] == "NameTaken", synced
        assert name in synced["message"] and "not managed by this resource" in synced["message"]
        assert adapter.name_field in synced["message"] and f"externalId: {theirs}" in synced["message"]
        assert condition(obj, "Ready")["status"] == "False"
    else:  # names are not unique here: ours is an entry of its own
        obj = k8s.wait_condition("Model", "clash", scope.namespace, "Ready", timeout=60)
        assert external_id(obj) != theirs
    time.sleep(RESYNC_SECONDS * 2)  # a quiet period: resyncs look again and must leave it alone
    assert adapter.snapshot(sim, theirs) == before
    if adapter.exclusive_names:  # another name fixes it
        k8s.patch("Model", "clash", scope.namespace, {"spec": adapter.named({}, f"{scope.prefix}mine")})
        obj = k8s.wait_condition("Model", "clash", scope.namespace, "Ready", timeout=60)
        assert external_id(obj) != theirs and len(adapter.entries(sim, scope)) == 2
    k8s.delete("Model", "clash", scope.namespace)
    k8s.wait_gone("Model", "clash", scope.namespace)
    assert adapter.snapshot(sim, theirs) == before
    assert adapter.entries(sim, scope) == [theirs]


def test_delete_twice_is_success(k8s: K8s, adapter: Adapter, sim: Sim, scope: Scope) -> None:
    ns = scope.namespace
    k8s.create(model("first", ["reg"], **adapter.model_spec()), ns)
    k8s.wait_condition("Model", "first", ns, "Ready")
    k8s.delete("Model", "first", ns)
    k8s.wait_gone("Model", "first", ns)
    assert adapter.entries(sim, scope) == []
    # the entry is already gone when the Model is deleted: "not found" is success, the finalizer is released
    obj = k8s.create(model("second", ["reg"], **adapter.model_spec()), ns)
    obj = k8s.wait_condition("Model", "second", ns, "Ready")
    adapter.remove(sim, external_id(obj))
    k8s.delete("Model", "second", ns)
    k8s.wait_gone("Model", "second", ns)
    assert adapter.entries(sim, scope) == []


def test_an_entry_vanished_before_an_update_is_made_again(k8s: K8s, adapter: Adapter, sim: Sim,
                                                         scope: Scope) -> None:
    ns = scope.namespace
    spec = adapter.model_spec()
    k8s.create(model("gone", ["reg"], **spec), ns)
    obj = k8s.wait_condition("Model", "gone", ns, "Ready")
    adapter.remove(sim, external_id(obj))
    assert adapter.entries(sim, scope) == []
    k8s.patch("Model", "gone", ns, {"spec": {"description": adapter.changed(spec)["description"]}})
    obj = k8s.wait_condition("Model", "gone", ns, "Ready", timeout=90)
    assert obj["metadata"]["generation"] == 2
    assert adapter.entries(sim, scope) == [external_id(obj)]


def test_a_model_service_is_unsupported_where_the_registry_has_none(k8s: K8s, adapter: Adapter, sim: Sim,
                                                                   scope: Scope) -> None:
    ns = scope.namespace
    if adapter.service:
        spec = adapter.service_spec()
        assert spec is not None
        k8s.create(service("svc", ["reg"], **spec), ns)
        k8s.wait_condition("ModelService", "svc", ns, "Ready")
        return
    k8s.create(service("svc", ["reg"], description="vLLM", framework="vLLM"), ns)
    obj = k8s.wait_condition("ModelService", "svc", ns, "Synced", status="False")
    synced = condition(obj, "Synced")
    assert synced["reason"] == "Unsupported" and "ModelService" in synced["message"], synced
    assert condition(obj, "Ready")["status"] == "False"
    assert obj["status"]["registries"][0]["reason"] == "Unsupported"
    assert adapter.entries(sim, scope) == []
