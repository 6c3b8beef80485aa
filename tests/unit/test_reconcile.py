"""The reconcile core's decision order, with an in-memory backend and registry reader.

(Integration tests run the same core against the real apiserver and the simulators;
these pin down the decisions one by one.)"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import pytest

from modelsync.backends.base import (
    Backend, CredentialsRejected, NotSettable, Observation, Recoverable, RegistryConnection, Resource, Terminal,
)
from modelsync.kube import NotFound
from modelsync.connections import BackendPool
from modelsync.reconcile import Reconciler, Retry, Stop, backoff


class MemoryBackend(Backend):
    name = "memory"
    kinds = frozenset({"Model"})

    def __init__(self, conn: RegistryConnection) -> None:
        super().__init__(conn)
        self.store: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []
        self.fail: Exception | None = None

    def _desired(self, res: Resource) -> dict[str, Any]:
        return {"description": res.spec.description}

    async def observe(self, res: Resource) -> Observation:
        self.calls.append("observe")
        if self.fail:
            raise self.fail
        obj = self.store.get(res.uid)
        if obj is None:
            return Observation(exists=False)
        d = tuple(k for k, v in self._desired(res).items() if obj.get(k) != v)
        return Observation(exists=True, external_id=res.uid, diff=d, inventory=obj)

    async def create(self, res: Resource) -> Mapping[str, Any]:
        self.calls.append("create")
        if self.fail:
            raise self.fail
        self.store[res.uid] = self._desired(res)
        return self.store[res.uid]

    async def update(self, res: Resource, obs: Observation) -> Mapping[str, Any]:
        self.calls.append(f"update:{','.join(obs.diff)}")
        self.store[res.uid].update({k: self._desired(res)[k] for k in obs.diff})
        return self.store[res.uid]

    async def delete(self, res: Resource) -> None:
        self.store.pop(res.uid, None)

    async def check(self) -> str:
        if self.fail:
            raise self.fail
        return "memory is always there"


class Pool(BackendPool):
    def __init__(self, backend: MemoryBackend | Exception) -> None:
        super().__init__(reader=None)  # type: ignore[arg-type]
        self.the = backend

    version = "v1"

    async def backend(self, ref: Any, namespace: str) -> tuple[Backend, str]:
        if isinstance(self.the, Exception):
            raise self.the
        return self.the, self.version


CONN = RegistryConnection(key="ModelRegistry/ns/r", name="r", kind="ModelRegistry", backend="memory", endpoint="http://m")


def body(generation: int = 1, status: dict[str, Any] | None = None, kind_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "m", "namespace": "ns", "uid": "u1", "generation": generation},
            "spec": {"registries": [{"name": "r"}], "description": "one", **(kind_spec or {})},
            "status": status or {}}


def merged(b: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return {**b, "status": {**b["status"], **patch}}


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend(CONN)


async def test_create_then_unchanged_resync_writes_nothing(backend: MemoryBackend) -> None:
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    b = body()
    out = await r.reconcile("Model", b)
    assert out.error is None and backend.calls == ["create", "observe"]
    assert out.events == []  # a create is in the status (externalId, lastSyncTime): no Event
    conds = {c["type"]: c for c in out.status_patch["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["Synced"]["reason"] == "ReconcileSuccess"
    assert out.status_patch["registries"][0]["externalId"] == "u1"
    b = merged(b, out.status_patch)
    backend.calls.clear()
    again = await r.reconcile("Model", b)
    assert backend.calls == ["observe"]
    assert again.status_patch == {} and again.events == [] and again.error is None


async def test_update_sends_only_the_diff(backend: MemoryBackend) -> None:
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    b = body()
    b = merged(b, (await r.reconcile("Model", b)).status_patch)
    b2 = {**b, "metadata": {**b["metadata"], "generation": 2}, "spec": {**b["spec"], "description": "two"}}
    backend.calls.clear()
    out = await r.reconcile("Model", b2)
    assert backend.calls == ["observe", "update:description", "observe"]
    assert out.status_patch["observedGeneration"] == 2
    assert out.events[0][1] == "Updated"


async def test_recoverable_retries_with_retry_after(backend: MemoryBackend) -> None:
    backend.fail = Recoverable("busy", retry_after=7)
    out = await Reconciler(reader=None, pool=Pool(backend)).reconcile("Model", body())  # type: ignore[arg-type]
    assert isinstance(out.error, Retry) and 7 <= out.error.delay <= 8.1
    synced = {c["type"]: c for c in out.status_patch["conditions"]}["Synced"]
    assert synced["status"] == "False" and synced["reason"] == "RegistryUnavailable"


async def test_terminal_stops_and_is_not_retried_for_the_same_generation(backend: MemoryBackend) -> None:
    backend.fail = Terminal("field[x] is bad", fields=("x",))
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    b = body()
    out = await r.reconcile("Model", b)
    assert isinstance(out.error, Stop) and "field[x] is bad" in out.error.message
    b = merged(b, out.status_patch)
    backend.calls.clear()
    again = await r.reconcile("Model", b)
    assert backend.calls == [] and isinstance(again.error, Stop) and again.status_patch == {}
    # a new generation is tried again
    b3 = {**b, "metadata": {**b["metadata"], "generation": 2}}
    backend.fail = None
    third = await r.reconcile("Model", b3)
    assert third.error is None and "create" in backend.calls


async def test_credentials_rejected_retries_slowly(backend: MemoryBackend) -> None:
    backend.fail = CredentialsRejected("login refused")
    out = await Reconciler(reader=None, pool=Pool(backend)).reconcile("Model", body())  # type: ignore[arg-type]
    assert isinstance(out.error, Retry) and out.error.delay >= 60


async def test_unsupported_kind_is_terminal_and_says_so(backend: MemoryBackend) -> None:
    b = body(kind_spec={})
    b["spec"].pop("description")
    out = await Reconciler(reader=None, pool=Pool(backend)).reconcile("ModelService", b)  # type: ignore[arg-type]
    assert isinstance(out.error, Stop)
    entry = out.status_patch["registries"][0]
    assert entry["reason"] == "Unsupported" and "no counterpart for a ModelService" in entry["message"]
    assert backend.calls == []


async def test_unexpected_exception_is_retried_and_scrubbed(backend: MemoryBackend) -> None:
    backend.fail = RuntimeError("boom https://u:topsecret@h/x")
    out = await Reconciler(reader=None, pool=Pool(backend)).reconcile("Model", body())  # type: ignore[arg-type]
    assert isinstance(out.error, Retry)
    assert "topsecret" not in str(out.status_patch) and "topsecret" not in out.error.message


async def test_missing_registry_waits() -> None:
    pool = Pool(Recoverable("ModelRegistry ns/r not found", reason="RegistryNotFound"))
    out = await Reconciler(reader=None, pool=pool).reconcile("Model", body())  # type: ignore[arg-type]
    assert isinstance(out.error, Retry)
    assert out.status_patch["registries"][0]["reason"] == "RegistryNotFound"


async def test_condition_transition_time_kept_while_status_unchanged(backend: MemoryBackend) -> None:
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    b = body()
    first = await r.reconcile("Model", b)
    b = merged(b, first.status_patch)
    b["status"]["conditions"][0]["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    b2 = {**b, "metadata": {**b["metadata"], "generation": 2}, "spec": {**b["spec"], "description": "two"}}
    out = await r.reconcile("Model", b2)
    ready = {c["type"]: c for c in out.status_patch["conditions"]}["Ready"]
    assert ready["lastTransitionTime"] == "2020-01-01T00:00:00Z" and ready["observedGeneration"] == 2


def test_backoff_grows_with_jitter_and_honours_retry_after() -> None:
    assert all(1 <= backoff(0) <= 1 for _ in range(5))
    samples = {round(backoff(5), 3) for _ in range(20)}
    assert len(samples) > 1 and all(1 <= s <= 32 for s in samples)
    assert all(s <= 30 for s in (backoff(30) for _ in range(50)))  # capped: an outage's end is seen soon
    assert 10 <= backoff(0, retry_after=10) <= 11
    # Retry-After is a floor, not a replacement: a short one does not hammer a registry
    # that keeps failing (503 + Retry-After: 1 for a whole outage)
    late = [backoff(6, retry_after=1) for _ in range(50)]
    assert all(s >= 1 for s in late) and max(late) > 5


async def test_reader_not_found_maps_to_registry_not_found() -> None:
    class Reader:
        async def registry(self, kind: str, name: str, namespace: str) -> Any:
            raise NotFound("ModelRegistry ns/r not found")

    pool = BackendPool(Reader())  # type: ignore[arg-type]
    out = await Reconciler(reader=Reader(), pool=pool).reconcile("Model", body())  # type: ignore[arg-type]
    assert out.status_patch["registries"][0]["reason"] == "RegistryNotFound"


async def test_registry_check_sets_ready_and_retries_outages(backend: MemoryBackend) -> None:
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    reg = {"metadata": {"name": "r", "namespace": "ns", "uid": "r1", "generation": 3}, "status": {}}
    out = await r.check_registry("ModelRegistry", reg)
    ready = out.status_patch["conditions"][0]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("True", "Connected", 3)
    assert out.error is None
    reg["status"] = out.status_patch
    assert (await r.check_registry("ModelRegistry", reg)).status_patch == {}  # nothing changed: no write
    backend.fail = Recoverable("HTTP 503", retry_after=2)
    down = await r.check_registry("ModelRegistry", reg)
    assert down.status_patch["conditions"][0]["status"] == "False" and isinstance(down.error, Retry)
    backend.fail = Terminal("no such model center", reason="RegistryMisconfigured")
    bad = await r.check_registry("ModelRegistry", reg)
    assert bad.status_patch["conditions"][0]["reason"] == "RegistryMisconfigured" and bad.error is None


async def test_unparseable_spec_is_terminal_naming_the_field(backend: MemoryBackend) -> None:
    b = body()
    b["spec"] = {"registries": [], "gpu": {"recommendedCount": ["many"]}}
    out = await Reconciler(reader=None, pool=Pool(backend)).reconcile("Model", b)  # type: ignore[arg-type]
    assert isinstance(out.error, Stop)
    assert "spec.registries" in out.error.message and "spec.gpu.recommendedCount[0]" in out.error.message
    synced = {c["type"]: c for c in out.status_patch["conditions"]}["Synced"]
    assert synced["status"] == "False" and synced["reason"] == "InvalidSpec"
    assert backend.calls == []


async def test_terminal_is_retried_when_the_registry_changes(backend: MemoryBackend) -> None:
    pool = Pool(backend)
    r = Reconciler(reader=None, pool=pool)  # type: ignore[arg-type]
    backend.fail = Terminal("unknown model center")
    b = merged(body(), (await r.reconcile("Model", body())).status_patch)
    assert b["status"]["registries"][0]["registryVersion"] == "v1"
    backend.calls.clear()
    await r.reconcile("Model", b)
    assert backend.calls == []  # same spec, same registry: not called
    pool.version = "v2"  # the registry (or its Secret) was fixed
    backend.fail = None
    out = await r.reconcile("Model", b)
    assert "create" in backend.calls and out.error is None
    assert out.status_patch["registries"][0]["registryVersion"] == "v2"


# ---------------------------------------------------------------- hardening rules


class EchoLessBackend(MemoryBackend):
    """Stores ``tag`` but never shows it back, like ZStack's system tags."""

    def _desired(self, res: Resource) -> dict[str, Any]:
        return {"description": res.spec.description, "tag": res.spec.vendor}

    async def observe(self, res: Resource) -> Observation:
        self.calls.append("observe")
        obj = self.store.get(res.uid)
        if obj is None:
            return Observation(exists=False)
        desired = self._desired(res)
        shown = {k: v for k, v in obj.items() if k != "tag"}
        d = tuple(k for k, v in desired.items() if shown.get(k) != v)
        return Observation(exists=True, external_id=res.uid, diff=d, inventory=shown, desired=desired)


def _with_status(b: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    return {**b, "status": {**b.get("status", {}), **patch}}


async def test_a_field_the_registry_does_not_echo_is_written_once_per_spec() -> None:
    backend = EchoLessBackend(CONN)
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    b = body(kind_spec={"vendor": "acme"})
    out = await r.reconcile("Model", b)
    assert out.error is None and backend.calls == ["create", "observe"]
    entry = out.status_patch["registries"][0]
    assert entry["synced"] and set(entry["unobservedFields"]) == {"tag"}
    assert {c["type"]: c["status"] for c in out.status_patch["conditions"]} == {"Ready": "True", "Synced": "True", "Stalled": "False", "Reconciling": "False"}
    b = _with_status(b, out.status_patch)
    for _ in range(3):  # resyncs: the unreflected field is not sent again
        backend.calls.clear()
        out = await r.reconcile("Model", b)
        assert backend.calls == ["observe"] and out.status_patch == {}
    # its spec value changes: sent once more, then recorded again
    b2 = {**b, "metadata": {**b["metadata"], "generation": 2}, "spec": {**b["spec"], "vendor": "other"}}
    backend.calls.clear()
    out = await r.reconcile("Model", b2)
    assert backend.calls == ["observe", "update:tag", "observe"] and out.error is None
    b2 = _with_status(b2, out.status_patch)
    backend.calls.clear()
    out = await r.reconcile("Model", b2)
    assert backend.calls == ["observe"] and out.status_patch == {}


async def test_transient_failure_keeps_ready_and_flips_synced(backend: MemoryBackend) -> None:
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    b = body()
    b = _with_status(b, (await r.reconcile("Model", b)).status_patch)
    backend.fail = Recoverable("registry down", retry_after=3)
    out = await r.reconcile("Model", b)
    conds = {c["type"]: c for c in out.status_patch["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["Synced"]["status"] == "False"
    assert conds["Synced"]["reason"] == "RegistryUnavailable"
    assert out.events == [("Warning", "RegistryUnavailable", "ModelRegistry r: registry down")]
    assert isinstance(out.error, Retry) and out.error.delay >= 3
    # the same failure again: no status change, no Event
    b = _with_status(b, out.status_patch)
    out = await r.reconcile("Model", b)
    assert out.status_patch == {} and out.events == [] and isinstance(out.error, Retry)
    # a terminal failure does clear Ready
    backend.fail = Terminal("bad field", fields=("spec.description",))
    out = await r.reconcile("Model", b)
    conds = {c["type"]: c for c in out.status_patch["conditions"]}
    assert conds["Ready"]["status"] == "False" and conds["Synced"]["reason"] == "InvalidSpec"


async def test_waiting_on_a_dependency_is_a_normal_event(backend: MemoryBackend) -> None:
    backend.fail = Recoverable("spec.defaultServiceRef: ModelService s not found", reason="DependencyNotReady")
    out = await Reconciler(reader=None, pool=Pool(backend)).reconcile("Model", body())  # type: ignore[arg-type]
    assert [e[:2] for e in out.events] == [("Normal", "DependencyNotReady")]


async def test_large_inventory_texts_are_not_copied_and_status_fits() -> None:
    from modelsync.status import STATUS_BYTES_LIMIT, fit_entries, slim_inventory

    inv = slim_inventory({"uuid": "x", "introduction": "y" * 600_000, "gone": None})
    assert inv == {"uuid": "x", "introduction": "(600000 bytes, not copied)"}
    entries = [{"name": f"r{i}", "inventory": {"k": ["v" * 1000] * 100}, "message": "m"} for i in range(8)]
    fitted = fit_entries(entries)
    import json

    assert len(json.dumps(fitted).encode()) <= STATUS_BYTES_LIMIT
    assert any("trimmed" in e["inventory"] for e in fitted)
    assert entries[0]["inventory"] != fitted[0]["inventory"] or "trimmed" in fitted[-1]["inventory"]


async def test_earlier_bookkeeping_in_status_is_dropped(backend: MemoryBackend) -> None:
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    b = body()
    b = _with_status(b, (await r.reconcile("Model", b)).status_patch)
    b = _with_status(b, {"kopf": {"lastHandledConfiguration": "{...}"}})
    out = await r.reconcile("Model", b)
    assert out.status_patch == {"kopf": None}


@pytest.mark.parametrize("value, cleaned", [
    ("tok\n", "tok"), ("tok\r\n", "tok"), ("tok", "tok"), ("p a\tss", "p a\tss"),
])
def test_credentials_lose_one_trailing_newline(value: str, cleaned: str) -> None:
    from modelsync.connections import clean_credentials

    assert clean_credentials({"token": value}, "Secret ns/s") == {"token": cleaned}


@pytest.mark.parametrize("value", ["zq9\nx", "zq9x\n\n", "zq9x\x01", "zq9ö", "zq9x\x7f"])
def test_credentials_with_illegal_characters_are_refused_without_the_value(value: str) -> None:
    from modelsync.backends.base import CredentialsInvalid
    from modelsync.connections import clean_credentials

    with pytest.raises(CredentialsInvalid) as err:
        clean_credentials({"token": value}, "Secret ns/s")
    assert "Secret ns/s" in err.value.message and "'token'" in err.value.message
    assert "zq9" not in err.value.message


async def test_an_adopted_object_that_differs_gets_one_update() -> None:
    backend = EchoLessBackend(CONN)
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    b = body(kind_spec={"vendor": "acme"})

    async def create(res: Resource) -> Mapping[str, Any]:  # an earlier create, with another description
        backend.calls.append("create")
        backend.store[res.uid] = {"description": "raced in", "tag": "acme"}
        return backend.store[res.uid]

    backend.create = create  # type: ignore[method-assign]
    out = await r.reconcile("Model", b)
    assert backend.calls == ["create", "observe", "update:description", "observe"]
    assert backend.store[b["metadata"]["uid"]]["description"] == "one"
    assert set(out.status_patch["registries"][0]["unobservedFields"]) == {"tag"}


async def test_drift_is_set_back_reported_and_counted(backend: MemoryBackend) -> None:
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    b = body()
    b = _with_status(b, (await r.reconcile("Model", b)).status_patch)
    backend.store["u1"]["description"] = "changed in the UI"  # behind ModelSync's back
    backend.calls.clear()
    out = await r.reconcile("Model", b)
    assert backend.calls == ["observe", "update:description", "observe"]
    assert out.drifts == [("memory", ("description",))]
    assert [e[:2] for e in out.events] == [("Warning", "Drift")] and "description" in out.events[0][2]
    assert out.status_patch["driftCount"] == 1
    assert out.status_patch["registries"][0]["lastDrift"] == ["description"]
    # a spec change is not drift
    b = _with_status(b, out.status_patch)
    b2 = {**b, "metadata": {**b["metadata"], "generation": 2}, "spec": {**b["spec"], "description": "two"}}
    out = await r.reconcile("Model", b2)
    assert out.drifts == [] and [e[1] for e in out.events] == ["Updated"]


def test_drift_reaches_the_metric() -> None:
    from types import SimpleNamespace

    from modelsync import handlers, metrics
    from modelsync.reconcile import Outcome

    def count() -> float:
        return metrics.DRIFT.labels("Model", "zstack")._value.get()

    before = count()
    handlers._count_drift(SimpleNamespace(kind="Model"), {}, Outcome({}, [], None, drifts=[("zstack", ("vendor",))]), 0.1)
    assert count() == before + 1


def test_a_secret_value_that_is_not_utf8_is_credentials_invalid() -> None:
    import base64

    from modelsync.kube import decode_secret_data
    from modelsync.backends.base import CredentialsInvalid
    from modelsync.connections import clean_credentials

    data = decode_secret_data({"token": base64.b64encode(b"zq9\xff\xfe").decode()})
    with pytest.raises(CredentialsInvalid) as err:
        clean_credentials(data, "Secret ns/s")
    assert "'token'" in err.value.message and "zq9" not in err.value.message


class UnsettableBackend(MemoryBackend):
    """A registry whose API has no field for spec.vendor: it reports its own value instead."""

    def _unsettable(self, res: Resource) -> tuple[NotSettable, ...]:
        if res.spec.vendor is None:
            return ()
        return (NotSettable("spec.vendor", "the memory API has no vendor field", registry_value="acme"),)

    async def observe(self, res: Resource) -> Observation:
        obs = await super().observe(res)
        return dataclasses.replace(obs, not_settable=self._unsettable(res)) if obs.exists else obs


@pytest.mark.parametrize("policy", ["Manage", "ObserveOnly"])
async def test_not_settable_fields_are_shown_never_sent_nor_failed(policy: str) -> None:
    backend = UnsettableBackend(CONN)
    backend.store["u1"] = {"description": "one"}
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    b = body(kind_spec={"vendor": "someone", "managementPolicy": policy},
             status={"registries": [{"name": "r", "kind": "ModelRegistry", "externalId": "u1"}]})
    out = await r.reconcile("Model", b)
    assert out.error is None
    assert not [c for c in backend.calls if c.startswith(("create", "update"))]
    entry = out.status_patch["registries"][0]
    assert entry["synced"] is True and entry["reason"] == "Synced"
    assert entry["notSettable"] == [
        {"field": "spec.vendor", "message": "the memory API has no vendor field", "registryValue": "acme"}]
    conds = {c["type"]: c["status"] for c in out.status_patch["conditions"]}
    assert conds["Ready"] == "True" and conds["Stalled"] == "False"
    # a resync of the same spec writes nothing, to the registry or to the resource
    backend.calls.clear()
    again = await r.reconcile("Model", merged(b, out.status_patch))
    assert again.status_patch == {} and backend.calls == ["observe"]


def test_not_settable_status_values_are_strings() -> None:
    assert NotSettable("spec.gpu.recommendedCount", "no field", [1, 2]).status()["registryValue"] == "[1, 2]"
    assert "registryValue" not in NotSettable("spec.license", "no field").status()


# ---------------------------------------------------------------- kstatus and Argo CD verdicts


def _conds(patch: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in patch["conditions"]}


async def test_observe_only_differences_are_ready_with_reason_differs(backend: MemoryBackend) -> None:
    """An entry observed and reported is what ObserveOnly asks for: Ready=True (so kubectl wait,
    kstatus and Argo CD finish), reason Differs naming the fields; never Stalled."""
    backend.store["u1"] = {"description": "changed by hand"}
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    b = body(kind_spec={"managementPolicy": "ObserveOnly"},
             status={"registries": [{"name": "r", "kind": "ModelRegistry", "externalId": "u1"}]})
    out = await r.reconcile("Model", b)
    conds = _conds(out.status_patch)
    assert conds["Ready"] == ("True", "Differs") and conds["Synced"] == ("True", "ReconcileSuccess")
    assert conds["Stalled"][0] == "False" and conds["Reconciling"][0] == "False"
    ready = next(c for c in out.status_patch["conditions"] if c["type"] == "Ready")
    assert "r: differs in description" in ready["message"]
    assert out.status_patch["registries"][0]["synced"] is False  # the entry still says it differs


async def test_observe_only_absent_entry_is_stalled(backend: MemoryBackend) -> None:
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    out = await r.reconcile("Model", body(kind_spec={"managementPolicy": "ObserveOnly"}))
    conds = _conds(out.status_patch)
    assert conds["Ready"] == ("False", "NotSynced") and conds["Stalled"] == ("True", "Absent")
    assert conds["Reconciling"][0] == "False"


async def test_rejected_credentials_are_stalled_not_reconciling(backend: MemoryBackend) -> None:
    """Only a fixed Secret helps (the operator looks again every 5 minutes): kstatus Failed, as
    Argo CD's Degraded."""
    backend.fail = CredentialsRejected("401 Unauthorized")
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    out = await r.reconcile("Model", body())
    conds = _conds(out.status_patch)
    assert conds["Synced"] == ("False", "CredentialsRejected") and conds["Stalled"] == ("True", "CredentialsRejected")
    assert conds["Reconciling"][0] == "False"
    assert isinstance(out.error, Retry) and out.error.delay == 300.0  # still looked at again


@pytest.mark.parametrize("fail, stalled, reconciling", [
    (None, "False", "False"),
    (Recoverable("HTTP 503"), "False", "True"),
    (CredentialsRejected("login refused"), "True", "False"),
    (Terminal("no model center abc", reason="RegistryMisconfigured"), "True", "False"),
])
async def test_registries_have_stalled_and_reconciling(backend: MemoryBackend, fail: Exception | None,
                                                       stalled: str, reconciling: str) -> None:
    backend.fail = fail
    r = Reconciler(reader=None, pool=Pool(backend))  # type: ignore[arg-type]
    reg = {"metadata": {"name": "r", "namespace": "ns", "uid": "r1", "generation": 2}, "status": {}}
    conds = _conds((await r.check_registry("ModelRegistry", reg)).status_patch)
    assert (conds["Stalled"][0], conds["Reconciling"][0]) == (stalled, reconciling)
    assert conds["Ready"][0] == ("True" if fail is None else "False")
